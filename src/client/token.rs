//! The host's half of a token request (DESIGN §6): challenge, quote, request.

use super::{quote_challenge, Client, HostFlowError};
use crate::api::{ChallengeResponse, TokenRequest, TokenResponse};
use crate::tpm::Tpm;

/// What to ask for.
#[derive(Clone, Debug)]
pub struct Ask {
    pub scope: String,
    pub audience: String,
    pub ttl_secs: Option<u64>,
    pub parent: Option<Vec<u8>>,
    /// Delegate the parent to this other enrolled host.
    pub for_host: Option<String>,
}

pub fn request_token(client: &Client, tpm: &mut dyn Tpm, ask: &Ask) -> Result<TokenResponse, HostFlowError> {
    let challenge: ChallengeResponse = client.post("/v1/challenge", &serde_json::json!({}))?;
    let ak = tpm.ak_public()?;
    let quote = quote_challenge(tpm, &challenge.nonce, &challenge.pcr_selection)?;
    let request = TokenRequest {
        nonce: challenge.nonce,
        scope: ask.scope.clone(),
        audience: ask.audience.clone(),
        ttl_secs: ask.ttl_secs,
        ak_name: hex::encode(ak.name()),
        quote,
        parent: ask.parent.clone(),
        for_host: ask.for_host.clone(),
    };
    Ok(client.post("/v1/tokens", &request)?)
}
