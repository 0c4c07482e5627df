//! Execution tokens (docs/design.md §7, `docs/token.md`): a tagged COSE_Sign1 (RFC 9052 §4.2) signed with EdDSA
//! (Ed25519) or ES256, whose payload is a CWT claims map (RFC 8392) with EAT claims (RFC 9711) and
//! runtrust's private claims, binding the token to the host's AK (cnf, RFC 8747) and to the PCR state
//! it quoted. The issuer key is named by its COSE Key Thumbprint (RFC 9679).
//!
//! Everything is parsed strictly and bounded: tag 18 required, exactly the expected header and claims,
//! each once and of its type, deterministic encoding only, no trailing bytes, at most
//! [`MAX_TOKEN_BYTES`].
//!
//! ```text
//! issuer:  IssuerKey::sign(&Claims) ──► COSE_Sign1 bytes
//! gateway: verify(bytes, &KeySet, &Expectations) ──► Claims, then a fresh quote by claims.ak_key()
//! ```

mod cbor;
mod claims;
mod cnf;
mod cose;
mod error;
mod json;
mod keys;
pub mod labels;
pub mod pem;

pub use claims::{Claims, CTI_LEN, EAT_NONCE_MAX, EAT_NONCE_MIN, EAT_PROFILE, MAX_TEXT, MAX_TIME, POLICY_HASH_LEN};
pub use cnf::ConfirmationKey;
pub use cose::{
    decode_unverified, verify, verify_detached, Expectations, TokenHeader, DEFAULT_LEEWAY_SECS, MAX_LEEWAY_SECS,
    MAX_TOKEN_BYTES,
};
pub use error::TokenError;
pub use json::{claims_json, rfc3339, rfc3339_unix};
pub use keys::{IssuerKey, KeySet, SigningAlg, VerifyingKey, MAX_KEYS, MAX_KEYSET_BYTES};

/// A fresh token id: [`CTI_LEN`] random bytes.
pub fn new_cti(rng: &dyn ring::rand::SecureRandom) -> Result<Vec<u8>, TokenError> {
    let mut cti = vec![0u8; CTI_LEN];
    rng.fill(&mut cti).map_err(|_| TokenError::Crypto("random cti"))?;
    Ok(cti)
}

#[cfg(test)]
mod tests;
