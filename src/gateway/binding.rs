//! The runtime binding (docs/design.md §2 stage 7), the gateway's check that needs no service. A fresh
//! quote by this host's TPM, under a nonce the gateway makes, must be signed by the AK in the token's `cnf`
//! (RFC 8747 proof of possession) and carry the token's pcrDigest (TPM 2.0 Part 2 §10.12.1 TPMS_QUOTE_INFO).

use ring::rand::{SecureRandom, SystemRandom};
use runtrust_attestation::quote::verify_quote_with_key;
use runtrust_attestation::{DenialCode, PcrSelection, QuoteError, QuoteEvidence, QuoteOptions};
use serde_json::json;

use crate::token::Claims;
use crate::tpm::{Tpm, TpmError};

#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error("this host's TPM is not the one the token is bound to: its AK is not the token's cnf key (token for host {host})")]
    OtherTpm { host: String },
    #[error("the fresh quote does not verify with the token's cnf key: {0}")]
    QuoteInvalid(QuoteError),
    #[error("the PCRs changed since the token was issued: pcrDigest over {selection} is {actual}, the token's is {expected}")]
    PcrChanged { selection: String, expected: String, actual: String, pcrs: serde_json::Value },
    #[error("the token's PCR selection {0:?} is not usable")]
    Selection(String),
    #[error("cannot prove the binding: {0}")]
    Tpm(#[from] TpmError),
    #[error("random generator failed")]
    Random,
}

impl BindingError {
    pub fn code(&self) -> DenialCode {
        match self {
            // A TPM clock that is unsafe or ran back is its own condition (an unclean shutdown, a cleared or
            // restored TPM), not a different TPM: the quote's own code, clock_regressed (docs/design.md §4).
            BindingError::QuoteInvalid(e @ QuoteError::Clock(_)) => e.code(),
            BindingError::OtherTpm { .. } | BindingError::QuoteInvalid(_) => DenialCode::RuntimeIdentityMismatch,
            BindingError::PcrChanged { .. } => DenialCode::PcrMismatch,
            BindingError::Selection(_) => DenialCode::SignatureInvalid,
            BindingError::Tpm(_) | BindingError::Random => DenialCode::VerifierUnavailable,
        }
    }

    /// The PCR values now, for a pcr_mismatch.
    pub fn diagnostics(&self) -> serde_json::Value {
        match self {
            BindingError::PcrChanged { selection, expected, actual, pcrs } => {
                json!({ "selection": selection, "token_pcr_digest": expected, "pcr_digest": actual, "pcrs": pcrs })
            }
            BindingError::QuoteInvalid(e) => e.hint().map_or(serde_json::Value::Null, |hint| json!({ "hint": hint })),
            _ => serde_json::Value::Null,
        }
    }
}

/// Proves that `claims` is bound to this host's TPM and to its PCR state now.
pub fn prove_binding(tpm: &mut dyn Tpm, claims: &Claims) -> Result<(), BindingError> {
    let ak = tpm.ak_public()?;
    if !claims.cnf.matches(&ak) {
        return Err(BindingError::OtherTpm { host: claims.sub.clone() });
    }
    let selection: PcrSelection =
        claims.pcr_selection.parse().map_err(|_| BindingError::Selection(claims.pcr_selection.clone()))?;
    let mut nonce = [0u8; 32];
    SystemRandom::new().fill(&mut nonce).map_err(|_| BindingError::Random)?;
    let q = tpm.quote(&nonce, &selection)?;
    let evidence = QuoteEvidence { attest: &q.attest, signature: &q.signature, pcrs: &q.pcrs };
    let options = QuoteOptions { allow_sha1: false, expected_selection: Some(&selection), previous_clock: None };
    let (key, scheme) = claims.ak_key();
    let verified =
        verify_quote_with_key(key, scheme, &evidence, &nonce, &options).map_err(BindingError::QuoteInvalid)?;
    let actual = &verified.attest.quote.pcr_digest;
    if !runtrust_attestation::ct_eq(actual, &claims.pcr_digest) {
        return Err(BindingError::PcrChanged {
            selection: claims.pcr_selection.clone(),
            expected: hex::encode(&claims.pcr_digest),
            actual: hex::encode(actual),
            pcrs: serde_json::to_value(&verified.pcrs).unwrap_or_default(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use runtrust_attestation::clock::ClockError;

    use super::*;

    #[test]
    fn an_unsafe_or_regressed_clock_is_clock_regressed_with_a_hint() {
        for e in [ClockError::Unsafe, ClockError::Regressed { field: "resetCount", previous: 3, current: 0 }] {
            let b = BindingError::QuoteInvalid(QuoteError::Clock(e));
            assert_eq!(b.code(), DenialCode::ClockRegressed);
            assert!(b.diagnostics()["hint"].as_str().is_some_and(|h| h.contains("TPM")), "{}", b.diagnostics());
        }
        let other = BindingError::QuoteInvalid(QuoteError::NonceMismatch);
        assert_eq!(other.code(), DenialCode::RuntimeIdentityMismatch);
    }
}
