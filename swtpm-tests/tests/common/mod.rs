//! Shared by the swtpm suites that speak the token API directly (tokens.rs, replicas.rs, governed.rs,
//! measured_boot.rs); each suite uses part of it.
#![allow(dead_code)]

use runtrust::api::{ChallengeResponse, QuoteEvidence, TokenRequest};
use runtrust::client::Client;
use runtrust::tpm::{Tpm, TssTpm};
use runtrust_attestation::PcrSelection;

/// A complete token request (scope deploy/web/api, audience gw-1) for a fresh challenge from `c`, quoted by an
/// open `t`.
pub fn raw_request(c: &Client, t: &mut TssTpm) -> TokenRequest {
    request_for(c.post("/v1/challenge", &serde_json::json!({})).unwrap(), t)
}

/// The token request (scope deploy/web/api, audience gw-1) answering challenge `ch`, quoted by an open `t`.
pub fn request_for(ch: ChallengeResponse, t: &mut TssTpm) -> TokenRequest {
    let sel: PcrSelection = ch.pcr_selection.parse().unwrap();
    let q = t.quote(&hex::decode(&ch.nonce).unwrap(), &sel).unwrap();
    TokenRequest {
        nonce: ch.nonce,
        scope: "deploy/web/api".into(),
        audience: "gw-1".into(),
        ttl_secs: None,
        ak_name: hex::encode(t.ak_public().unwrap().name()),
        quote: QuoteEvidence { attest: q.attest, signature: q.signature, pcrs: q.pcrs, batch: None },
        parent: None,
        for_host: None,
        event_log: None,
    }
}
