//! The one question every later check asks (docs/design.md §11): is this token, host or policy version
//! revoked — a token through itself, any ancestor, the host of any of them, or the policy version any of
//! them was issued under.

use std::collections::VecDeque;

use runtrust_attestation::DenialCode;
use serde_json::{json, Value};

use super::super::DenialReason;
use crate::model::{lift_key, revoked_key, HostId, Revocation, RevocationKind, TokenRecord};
use crate::policy::MAX_DELEGATION_DEPTH;
use crate::store::{Store, StoreError};
use crate::token::rfc3339_unix as at;

/// Bound on the tokens one revocation lists (the revoked index still covers the rest by ancestry).
pub const MAX_LISTED: usize = 100_000;

/// Why a token no longer holds: the revocation, and what it named (`token …`, `ancestor …`, `host …`,
/// `policy …`).
#[derive(Clone, Debug)]
pub struct Revoked {
    pub revocation: Revocation,
    pub via: String,
}

impl Revoked {
    pub fn detail(&self) -> String {
        let r = &self.revocation;
        format!("revoked ({}) by {} at {}: {}", self.via, r.by, at(r.time), r.reason)
    }
}

/// A revocation that refuses a request (`revoked`).
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("host {host} was revoked by {} at {}: {}", revocation.by, at(revocation.time), revocation.reason)]
    Host { host: HostId, revocation: Box<Revocation> },
    #[error("policy {id} version {hash} was revoked: {}", revocation.reason)]
    Policy { id: String, hash: String, revocation: Box<Revocation> },
    #[error("{}", .0.detail())]
    Token(Box<Revoked>),
    #[error("parent token {cti}: {}", revoked.detail())]
    Parent { cti: String, revoked: Box<Revoked> },
    #[error("host {host}: its {what} was revoked ({}): {}", revocation.target, revocation.reason)]
    DelegationTarget { host: String, what: &'static str, revocation: Box<Revocation> },
}

impl DenialReason for RevocationError {
    fn code(&self) -> DenialCode {
        DenialCode::Revoked
    }

    fn diagnostics(&self) -> Value {
        match self {
            RevocationError::Token(r) => {
                json!({ "via": r.via, "seq": r.revocation.seq, "reason": r.revocation.reason })
            }
            _ => Value::Null,
        }
    }
}

super::super::denial_from!(RevocationError);

/// The revocation of `host`, if any (a lifted one is not: the host may be issued tokens again).
pub fn host_revoked(s: &dyn Store, host: &str) -> Result<Option<Revocation>, StoreError> {
    s.revoked(&revoked_key(RevocationKind::Host, host))
}

/// For a token issued to `host` at audit index `issued_at`: the host revocation a later lift lifted, if the
/// token was issued before that lift (`runtrust hosts unrevoke` does not revive earlier tokens).
fn lifted_host_revoked(s: &dyn Store, host: &str, issued_at: u64) -> Result<Option<Revoked>, StoreError> {
    let Some(lift) = s.revoked(&lift_key(host))? else { return Ok(None) };
    if issued_at >= lift.audit_index {
        return Ok(None);
    }
    // Name the revocation that was lifted (the lift itself only says why it was lifted).
    let lifted = match lift.lifts {
        Some(seq) => s.revocations(seq, 1)?.into_iter().find(|r| r.seq == seq),
        None => None,
    };
    let via = format!("host {host}, revoked before the lift at seq {}", lift.seq);
    Ok(Some(Revoked { via, revocation: lifted.unwrap_or(lift) }))
}

/// The revocation of the policy version `hash` (hex), if any.
pub fn policy_revoked(s: &dyn Store, hash: &str) -> Result<Option<Revocation>, StoreError> {
    s.revoked(&revoked_key(RevocationKind::Policy, hash))
}

/// Whether `token` is revoked: itself or any ancestor, the host of any of them, or the policy version any of
/// them was issued under.
pub fn why_revoked(s: &dyn Store, token: &TokenRecord) -> Result<Option<Revoked>, StoreError> {
    let mut current = token.clone();
    // A chain is at most MAX_DELEGATION_DEPTH deep; the bound also stops a corrupt cycle.
    for _ in 0..=MAX_DELEGATION_DEPTH + 1 {
        // Every host on the chain counts: a child delegated across hosts dies with its ancestor's host.
        if let Some(r) = host_revoked(s, &current.host_id)? {
            return Ok(Some(Revoked { via: format!("host {}", current.host_id), revocation: r }));
        }
        if let Some(r) = lifted_host_revoked(s, &current.host_id, current.audit_index)? {
            return Ok(Some(r));
        }
        if let Some(r) = policy_revoked(s, &current.policy_hash)? {
            return Ok(Some(Revoked {
                via: format!("policy {} {}", current.policy_id, current.policy_hash),
                revocation: r,
            }));
        }
        if let Some(r) = s.revoked(&revoked_key(RevocationKind::Token, &current.cti))? {
            // Marked directly, or by the cascade of an ancestor's (or a host's, or a policy's) revocation: name
            // what was revoked.
            let via = match r.kind {
                RevocationKind::Token if r.target == token.cti => format!("token {}", token.cti),
                RevocationKind::Token => format!("ancestor {}", r.target),
                kind => format!("{} {}", kind.name(), r.target),
            };
            return Ok(Some(Revoked { via, revocation: r }));
        }
        let Some(parent) = &current.parent_cti else { return Ok(None) };
        current = s.token(parent)?.ok_or_else(|| StoreError::Corrupt {
            key: format!("tokens/{parent}"),
            detail: format!("parent of {} is missing", current.cti),
        })?;
    }
    Err(StoreError::Corrupt { key: format!("tokens/{}", token.cti), detail: "ancestry too deep".into() })
}

/// The revoked-index keys of `token`'s chain, in [`why_revoked`]'s order: for itself and each ancestor, its
/// host, its policy version, its cti. `start_execution` checks them inside its transaction (docs/design.md
/// §15), so a revocation answered before the start commits always refuses it.
pub fn chain_keys(s: &dyn Store, token: &TokenRecord) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    let mut current = token.clone();
    for _ in 0..=MAX_DELEGATION_DEPTH + 1 {
        keys.push(revoked_key(RevocationKind::Host, &current.host_id));
        keys.push(revoked_key(RevocationKind::Policy, &current.policy_hash));
        keys.push(revoked_key(RevocationKind::Token, &current.cti));
        let Some(parent) = &current.parent_cti else { return Ok(keys) };
        current = s.token(parent)?.ok_or_else(|| StoreError::Corrupt {
            key: format!("tokens/{parent}"),
            detail: format!("parent of {} is missing", current.cti),
        })?;
    }
    Err(StoreError::Corrupt { key: format!("tokens/{}", token.cti), detail: "ancestry too deep".into() })
}

/// What a revoked chain key names, as [`why_revoked`] says it.
pub fn revoked_via(key: &str, token: &TokenRecord, revocation: Revocation) -> Revoked {
    let via = match key.split_once(':') {
        Some(("host", host)) => format!("host {host}"),
        Some(("policy", hash)) if hash == token.policy_hash => format!("policy {} {hash}", token.policy_id),
        Some(("policy", hash)) => format!("policy {hash}"),
        _ if revocation.target == token.cti => format!("token {}", token.cti),
        _ => format!("ancestor {}", revocation.target),
    };
    Revoked { via, revocation }
}

/// Every descendant of `cti` (breadth first, bounded).
pub fn descendants(s: &dyn Store, cti: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let mut queue = VecDeque::from([cti.to_owned()]);
    while let Some(next) = queue.pop_front() {
        for child in s.children(&next)? {
            if out.len() >= MAX_LISTED {
                return Ok(out);
            }
            out.push(child.clone());
            queue.push_back(child);
        }
    }
    Ok(out)
}
