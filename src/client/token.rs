//! The host's half of a token request (docs/design.md §6): challenge, quote, event log when asked, request.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{quote_challenge, Client, HostFlowError};
use crate::api::{routes, ChallengeResponse, TokenRequest, TokenResponse, MAX_EVENT_LOG_BYTES};
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
    /// The TCG event log to send when the challenge asks for it ([`DEFAULT_EVENT_LOG`] by default).
    pub event_log: PathBuf,
}

/// Where Linux exposes the firmware's TCG event log (readable by root only).
pub const DEFAULT_EVENT_LOG: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";

/// Reads an event log, at most MAX_EVENT_LOG_BYTES.
pub fn read_event_log(path: &Path) -> Result<Vec<u8>, HostFlowError> {
    let err = |detail: String| HostFlowError::EventLog { path: path.to_owned(), detail };
    let f = std::fs::File::open(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (reading the firmware event log needs root)"
        } else {
            ""
        };
        err(format!("{e}{hint}"))
    })?;
    let mut bytes = Vec::new();
    f.take(MAX_EVENT_LOG_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(|e| err(e.to_string()))?;
    if bytes.len() > MAX_EVENT_LOG_BYTES {
        return Err(err(format!("larger than the {MAX_EVENT_LOG_BYTES}-byte limit")));
    }
    Ok(bytes)
}

pub fn request_token(client: &Client, tpm: &mut dyn Tpm, ask: &Ask) -> Result<TokenResponse, HostFlowError> {
    let challenge: ChallengeResponse = client.post(routes::CHALLENGE, &serde_json::json!({}))?;
    let ak = tpm.ak_public()?;
    // Read the log before quoting: a log that can change only grows, and a longer log still replays to
    // the PCRs quoted afterwards only if nothing was extended in between (then a retry helps).
    let event_log = if challenge.event_log { Some(read_event_log(&ask.event_log)?) } else { None };
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
        event_log,
    };
    Ok(client.post(routes::TOKENS, &request)?)
}
