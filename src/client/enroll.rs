//! The host's half of enrollment (docs/design.md §5): present the EK and AK, activate the credential in the TPM,
//! answer with the secret and a first quote.

use super::{quote_challenge, Client, HostFlowError};
use crate::api::{routes, ActivationAnswer, EnrollChallenge, EnrollRequest, Enrolled};
use crate::tpm::Tpm;

/// Enrolls this host's TPM with `tags`. The EK certificate's path is completed by `ek_intermediates` (DER,
/// e.g. from `--ek-intermediates`) and by the chain the TPM keeps in NV (Intel PTT), each certificate sent once.
pub fn enroll(
    client: &Client,
    tpm: &mut dyn Tpm,
    tags: &[String],
    ek_intermediates: Vec<Vec<u8>>,
) -> Result<Enrolled, HostFlowError> {
    let ek_public = tpm.ek_public()?;
    let ek_certificate = tpm.ek_certificate()?;
    let mut intermediates = ek_intermediates;
    if ek_certificate.is_some() {
        for cert in tpm.ek_intermediates()? {
            if !intermediates.contains(&cert) {
                intermediates.push(cert);
            }
        }
    }
    let request = EnrollRequest {
        ek_certificate,
        ek_intermediates: intermediates,
        ek_public: ek_public.to_tpm2b(),
        ak_public: tpm.ak_public()?.to_tpm2b(),
        tags: tags.to_vec(),
    };
    let challenge: EnrollChallenge = client.post(routes::ENROLL, &request)?;
    let secret = tpm.activate_credential(&challenge.credential_blob, &challenge.encrypted_secret)?;
    let quote = quote_challenge(tpm, &challenge.nonce, &challenge.pcr_selection)?;
    let answer = ActivationAnswer { secret, quote };
    Ok(client.post(&routes::path(routes::ENROLL_ACTIVATE, &[&challenge.enrollment_id]), &answer)?)
}
