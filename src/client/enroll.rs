//! The host's half of enrollment (DESIGN §5): present the EK and AK, activate the credential in the TPM,
//! answer with the secret and a first quote.

use runtrust_attestation::PcrSelection;

use super::{Client, ClientError};
use crate::api::{ActivationAnswer, EnrollChallenge, EnrollRequest, Enrolled, QuoteEvidence};
use crate::tpm::{Tpm, TpmError};

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(transparent)]
    Tpm(#[from] TpmError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the service sent an unusable challenge: {0}")]
    Challenge(String),
}

/// Enrolls this host's TPM with `tags`; `ek_intermediates` (DER) complete the EK certificate's path.
pub fn enroll(
    client: &Client,
    tpm: &mut dyn Tpm,
    tags: &[String],
    ek_intermediates: Vec<Vec<u8>>,
) -> Result<Enrolled, EnrollError> {
    let ek_public = tpm.ek_public()?;
    let request = EnrollRequest {
        ek_certificate: tpm.ek_certificate()?,
        ek_intermediates,
        ek_public: ek_public.to_tpm2b(),
        ak_public: tpm.ak_public()?.to_tpm2b(),
        tags: tags.to_vec(),
    };
    let challenge: EnrollChallenge = client.post("/v1/enroll", &request)?;
    let secret = tpm.activate_credential(&challenge.credential_blob, &challenge.encrypted_secret)?;
    let nonce = hex::decode(&challenge.nonce).map_err(|e| EnrollError::Challenge(format!("nonce: {e}")))?;
    let selection: PcrSelection =
        challenge.pcr_selection.parse().map_err(|e| EnrollError::Challenge(format!("PCR selection: {e}")))?;
    let q = tpm.quote(&nonce, &selection)?;
    let answer =
        ActivationAnswer { secret, quote: QuoteEvidence { attest: q.attest, signature: q.signature, pcrs: q.pcrs } };
    Ok(client.post(&format!("/v1/enroll/{}", challenge.enrollment_id), &answer)?)
}
