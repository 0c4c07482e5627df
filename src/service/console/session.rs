//! Console sign-in (docs/design.md §17): a one-time link's code, exchanged once for a session cookie.
//!
//! The link's code is 256 random bits; the store keeps only its SHA-256, and taking it removes it (single use
//! across replicas). The session is a cookie the service signs with its newest issuer key, so every replica
//! that shares the keys accepts it without a store write; it names the principal and a digest of its current
//! credential, so removing or rotating the principal ends its sessions.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};

use crate::model::{Principal, Role};
use crate::service::{AppState, Fault};

/// The session cookie's name.
pub const COOKIE: &str = "runtrust_console";
/// How long a sign-in link may wait to be used.
pub const LINK_TTL_SECS: u64 = 300;
/// How long a console session lasts; then the operator asks `runtrust console` for a new link.
pub const SESSION_TTL_SECS: u64 = 1800;
/// Bound on a cookie value we read (a session is ~300 bytes).
const MAX_COOKIE_BYTES: usize = 2048;
/// Domain separation: a session signature is never valid as anything else the issuer key signs.
const CONTEXT: &[u8] = b"runtrust console session v1\0";

/// The roles that may use the console (it is read-only: what `hosts list`, `lineage` and `audit` show).
pub const ROLES: &[Role] = &[Role::Admin, Role::Auditor];

/// Why a session cookie is not accepted (`authorization_missing`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("no console session")]
    Missing,
    #[error("malformed console session")]
    Malformed,
    #[error("the console session's signature does not verify")]
    Signature,
    #[error("the console session expired")]
    Expired,
    #[error("the session's principal was removed, rotated or lost its role")]
    Principal,
}

/// What a session cookie says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Principal id.
    pub sub: String,
    /// Principal name, for display.
    pub name: String,
    pub iat: u64,
    pub exp: u64,
    /// [`credential_binding`] of the principal when signed in.
    pub cred: String,
    /// The signing key's kid (hex).
    pub kid: String,
}

/// A new link code: 32 random bytes, base64url.
pub fn new_code(state: &AppState) -> Result<String, Fault> {
    Ok(B64.encode(state.random::<32>()?))
}

/// The stored id of a link code: SHA-256 (hex). Codes of the wrong shape get an id no link has.
pub fn link_id(code: &str) -> String {
    hex::encode(digest(&SHA256, code.as_bytes()))
}

/// Binds a session to the principal's credential as it is now (its stored SHA-256, hashed again).
pub fn credential_binding(p: &Principal) -> String {
    let mut input = CONTEXT.to_vec();
    input.extend_from_slice(p.secret_sha256.as_bytes());
    hex::encode(&digest(&SHA256, &input).as_ref()[..16])
}

/// A signed session for `p` from `now`: `base64url(claims JSON) "." base64url(signature)`.
pub fn issue(state: &AppState, p: &Principal, now: u64) -> Result<String, Fault> {
    let keys = state.issuer.read().map_err(|_| Fault::Poisoned("issuer keys"))?;
    let (_, key) = keys.last().ok_or(Fault::NoIssuerKey)?;
    let claims = Claims {
        sub: p.id.clone(),
        name: p.name.clone(),
        iat: now,
        exp: now.saturating_add(SESSION_TTL_SECS),
        cred: credential_binding(p),
        kid: hex::encode(key.kid()),
    };
    let payload = serde_json::to_vec(&claims).map_err(|e| Fault::Signing(format!("console session: {e}")))?;
    let sig = key
        .sign_raw(&signed_bytes(&payload), &state.rng)
        .map_err(|e| Fault::Signing(format!("console session: {e}")))?;
    Ok(format!("{}.{}", B64.encode(&payload), B64.encode(sig)))
}

/// Checks a cookie value's form, signature (by any of the service's issuer keys) and expiry. The caller then
/// checks the principal against the store ([`principal_still_holds`]).
pub fn verify(state: &AppState, value: &str, now: u64) -> Result<Claims, SessionError> {
    if value.len() > MAX_COOKIE_BYTES {
        return Err(SessionError::Malformed);
    }
    let (payload, sig) = value.split_once('.').ok_or(SessionError::Malformed)?;
    let payload = B64.decode(payload).map_err(|_| SessionError::Malformed)?;
    let sig = B64.decode(sig).map_err(|_| SessionError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| SessionError::Malformed)?;
    let kid = hex::decode(&claims.kid).map_err(|_| SessionError::Malformed)?;
    {
        let keys = state.issuer.read().map_err(|_| SessionError::Signature)?;
        let key = keys.iter().map(|(_, k)| k).find(|k| k.kid() == kid).ok_or(SessionError::Signature)?;
        key.public().verify(&signed_bytes(&payload), &sig).map_err(|_| SessionError::Signature)?;
    }
    if now >= claims.exp || claims.iat > now.saturating_add(60) {
        return Err(SessionError::Expired);
    }
    Ok(claims)
}

/// Whether the session's principal still exists with a console role and the credential it signed in with.
pub fn principal_still_holds(claims: &Claims, p: Option<&Principal>) -> Result<(), SessionError> {
    match p {
        Some(p)
            if ROLES.contains(&p.role)
                && runtrust_attestation::ct_eq(credential_binding(p).as_bytes(), claims.cred.as_bytes()) =>
        {
            Ok(())
        }
        _ => Err(SessionError::Principal),
    }
}

fn signed_bytes(payload: &[u8]) -> Vec<u8> {
    let mut m = CONTEXT.to_vec();
    m.extend_from_slice(payload);
    m
}

/// The session cookie's value from a Cookie header (RFC 6265 §5.4: `name=value` pairs joined by "; ").
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header.split(';').map(str::trim).find_map(|pair| pair.strip_prefix(COOKIE)?.strip_prefix('='))
}

/// The Set-Cookie value for a new session (RFC 6265 §4.1): only over HTTPS, never to scripts, never sent on
/// a request another site starts.
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE}={value}; Path=/console; Max-Age={SESSION_TTL_SECS}; HttpOnly; Secure; SameSite=Strict")
}

/// The Set-Cookie value that ends a session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}
