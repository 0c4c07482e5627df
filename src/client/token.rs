//! The host's half of a token request (DESIGN §6): challenge, quote, request.

use runtrust_attestation::PcrSelection;

use super::{Client, ClientError};
use crate::api::{ChallengeResponse, QuoteEvidence, TokenRequest, TokenResponse};
use crate::tpm::{Tpm, TpmError};

#[derive(Debug, thiserror::Error)]
pub enum TokenRequestError {
    #[error(transparent)]
    Tpm(#[from] TpmError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the service sent an unusable challenge: {0}")]
    Challenge(String),
}

/// What to ask for.
#[derive(Clone, Debug)]
pub struct Ask {
    pub scope: String,
    pub audience: String,
    pub ttl_secs: Option<u64>,
    pub parent: Option<Vec<u8>>,
}

pub fn request_token(client: &Client, tpm: &mut dyn Tpm, ask: &Ask) -> Result<TokenResponse, TokenRequestError> {
    let challenge: ChallengeResponse = client.post("/v1/challenge", &serde_json::json!({}))?;
    let nonce = hex::decode(&challenge.nonce).map_err(|e| TokenRequestError::Challenge(format!("nonce: {e}")))?;
    let selection: PcrSelection =
        challenge.pcr_selection.parse().map_err(|e| TokenRequestError::Challenge(format!("PCR selection: {e}")))?;
    let ak = tpm.ak_public()?;
    let q = tpm.quote(&nonce, &selection)?;
    let request = TokenRequest {
        nonce: challenge.nonce,
        scope: ask.scope.clone(),
        audience: ask.audience.clone(),
        ttl_secs: ask.ttl_secs,
        ak_name: hex::encode(ak.name()),
        quote: QuoteEvidence { attest: q.attest, signature: q.signature, pcrs: q.pcrs },
        parent: ask.parent.clone(),
    };
    Ok(client.post("/v1/tokens", &request)?)
}
