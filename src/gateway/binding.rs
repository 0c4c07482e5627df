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
            // A batch proof that does not hold (docs/design.md §14): the quote does not carry this nonce.
            BindingError::QuoteInvalid(QuoteError::Batch(e)) => e.code(),
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
    // The quote may come from the host agent's batch (docs/design.md §14): then the proof must lead from
    // this nonce to its extraData, or the binding is not proved.
    let shared = tpm.quote_nonce(&nonce, &selection)?;
    let q = &shared.quote;
    let evidence = QuoteEvidence { attest: &q.attest, signature: &q.signature, pcrs: &q.pcrs };
    let options = QuoteOptions {
        allow_sha1: false,
        expected_selection: Some(&selection),
        previous_clock: None,
        nonce_batch: shared.batch.as_ref(),
    };
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
    use std::path::Path;

    use runtrust_attestation::batch::NonceBatch;
    use runtrust_attestation::clock::ClockError;
    use runtrust_attestation::{Attest, HashAlg, PcrValues, Public};

    use super::*;
    use crate::token::{ConfirmationKey, EAT_PROFILE};
    use crate::tpm::{NonceQuote, Quote, TpmInfo};

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

    fn vector(file: &str) -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("attestation/tests/vectors/batch").join(file);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// A host agent that answers every nonce with the recorded batch quote (a genuine quote by the AK, over
    /// another batch's root) and a proof it made up for the gateway's nonce.
    struct OtherBatchAgent;

    impl Tpm for OtherBatchAgent {
        fn info(&mut self) -> Result<TpmInfo, TpmError> {
            Err(TpmError::Unexpected { what: "test", detail: "unused".into() })
        }
        fn pcr_read(&mut self, _: &PcrSelection) -> Result<PcrValues, TpmError> {
            Err(TpmError::Unexpected { what: "test", detail: "unused".into() })
        }
        fn pcr_extend(&mut self, _: HashAlg, _: u8, _: &[u8]) -> Result<(), TpmError> {
            Ok(())
        }
        fn ek_public(&mut self) -> Result<Public, TpmError> {
            self.ak_public()
        }
        fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, TpmError> {
            Ok(None)
        }
        fn ek_intermediates(&mut self) -> Result<Vec<Vec<u8>>, TpmError> {
            Ok(Vec::new())
        }
        fn ak_public(&mut self) -> Result<Public, TpmError> {
            Ok(Public::from_tpm2b(&vector("ak.pub")).unwrap())
        }
        fn quote(&mut self, _: &[u8], _: &PcrSelection) -> Result<Quote, TpmError> {
            Err(TpmError::Unexpected { what: "test", detail: "unused".into() })
        }
        fn quote_nonce(&mut self, nonce: &[u8], _: &PcrSelection) -> Result<NonceQuote, TpmError> {
            let quote = Quote {
                attest: vector("attest"),
                signature: vector("signature"),
                pcrs: serde_json::from_slice(&vector("pcrs.json")).unwrap(),
            };
            let made_up = NonceBatch::new(&[nonce, &[7u8; 32][..]]).unwrap().proof(0);
            Ok(NonceQuote { quote, batch: made_up })
        }
        fn activate_credential(&mut self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, TpmError> {
            Ok(vec![])
        }
    }

    #[test]
    fn a_batch_proof_that_does_not_hold_for_the_gateways_nonce_is_nonce_mismatch() {
        let ak = Public::from_tpm2b(&vector("ak.pub")).unwrap();
        let digest = Attest::parse_quote(&vector("attest")).unwrap().quote.pcr_digest;
        let claims = Claims {
            iss: "test".into(),
            sub: format!("sha256:{}", "ab".repeat(32)),
            aud: "gw".into(),
            exp: 2,
            nbf: 0,
            iat: 0,
            cti: vec![1; 16],
            cnf: ConfirmationKey::from_public(&ak).unwrap(),
            eat_nonce: vec![2; 32],
            eat_profile: EAT_PROFILE.into(),
            scope: "deploy/*".into(),
            initiator: "alice".into(),
            policy_id: "web".into(),
            policy_hash: vec![3; 32],
            pcr_bank: "sha256".into(),
            pcr_selection: "sha256:0,1,2,3,4,5,6,7".into(),
            pcr_digest: digest,
            parent_cti: None,
            delegation_depth: 0,
            audit_index: None,
            single_use: false,
        };
        let e = prove_binding(&mut OtherBatchAgent, &claims).unwrap_err();
        assert!(matches!(e, BindingError::QuoteInvalid(QuoteError::Batch(_))), "{e}");
        assert_eq!(e.code(), DenialCode::NonceMismatch);
    }
}
