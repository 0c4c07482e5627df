//! The gateway's expected issuer (issue 11 finding 11): tokens must carry it as `iss`; it comes from
//! `--issuer`, or the service id cached with the keys; keys from a file name none.

use std::sync::Arc;

use ring::rand::SystemRandom;
use runtrust_attestation::{DenialCode, Public};

use super::{Gateway, GatewayError, IssuerKeys, KeysError, ISSUER_CACHE, KEY_CACHE};
use crate::client::{Client, ClientError};
use crate::model::ManualClock;
use crate::token::{Claims, ConfirmationKey, IssuerKey, KeySet, SigningAlg, EAT_PROFILE};

const NOW: u64 = 1_800_000_000;

fn offline() -> Result<Client, ClientError> {
    Err(ClientError::NoServer)
}

/// Claims of a plausible token (the ECC AK of the test vectors as cnf), at NOW for five minutes.
pub(super) fn claims_for_tests() -> Claims {
    let ak = std::fs::read(format!("{}/attestation/tests/vectors/ecc/ak.pub", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let now = i64::try_from(NOW).unwrap();
    Claims {
        iss: "svc".into(),
        sub: format!("sha256:{}", "ab".repeat(32)),
        aud: "gw-1".into(),
        exp: now + 300,
        nbf: now,
        iat: now,
        cti: vec![1; 16],
        cnf: ConfirmationKey::from_public(&Public::from_tpm2b(&ak).unwrap()).unwrap(),
        eat_nonce: vec![2; 32],
        eat_profile: EAT_PROFILE.into(),
        scope: "deploy/*".into(),
        initiator: "web-01".into(),
        policy_id: "web".into(),
        policy_hash: vec![3; 32],
        pcr_bank: "sha256".into(),
        pcr_selection: "sha256:0".into(),
        pcr_digest: vec![4; 32],
        parent_cti: None,
        delegation_depth: 0,
        audit_index: None,
        single_use: false,
    }
}

fn token(key: &IssuerKey, iss: &str) -> Vec<u8> {
    let claims = Claims { iss: iss.into(), ..claims_for_tests() };
    key.sign(&claims, &SystemRandom::new()).unwrap()
}

fn gateway<'a>(keys: IssuerKeys<'a>, issuer: Option<&str>) -> Gateway<'a> {
    Gateway {
        keys,
        issuer: issuer.map(Into::into),
        connect: &offline,
        clock: Arc::new(ManualClock::at(NOW)),
        leeway_secs: 0,
        offline: None,
    }
}

fn code(r: Result<Claims, GatewayError>) -> Option<DenialCode> {
    r.unwrap_err().denial().map(|(code, _)| code)
}

#[test]
fn keys_from_a_file_need_the_issuer_given() {
    let dir = tempfile::tempdir().unwrap();
    let key = IssuerKey::generate(SigningAlg::EdDsa, &SystemRandom::new()).unwrap().0;
    let file = dir.path().join("keys.cose");
    std::fs::write(&file, KeySet::from(key.public()).to_cose_keyset()).unwrap();
    let good = token(&key, "runtrust");

    let none = gateway(IssuerKeys::File(file.clone()), None);
    let err = none.verify_offline(&good, None, None).unwrap_err();
    assert!(matches!(err, GatewayError::Keys(KeysError::NoIssuer)), "{err}");
    assert!(err.to_string().contains("--issuer"), "{err}");

    let given = gateway(IssuerKeys::File(file), Some("runtrust"));
    assert_eq!(given.verify_offline(&good, Some("gw-1"), Some("deploy/web")).unwrap().iss, "runtrust");
    let evil = token(&key, "evil");
    assert_eq!(code(given.verify_offline(&evil, None, None)), Some(DenialCode::SignatureInvalid));
}

#[test]
fn the_cached_service_id_is_the_default_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let key = IssuerKey::generate(SigningAlg::EdDsa, &SystemRandom::new()).unwrap().0;
    std::fs::write(dir.path().join(KEY_CACHE), KeySet::from(key.public()).to_cose_keyset()).unwrap();
    let cached = || IssuerKeys::Cached { state_dir: dir.path().to_owned(), connect: &offline };

    // Keys cached without a service id: it is fetched, and here the service is unreachable.
    let err = gateway(cached(), None).verify_offline(&token(&key, "runtrust"), None, None).unwrap_err();
    assert!(matches!(err, GatewayError::Keys(KeysError::Fetch(ClientError::NoServer))), "{err}");

    std::fs::write(dir.path().join(ISSUER_CACHE), "runtrust\n").unwrap();
    let g = gateway(cached(), None);
    assert_eq!(g.expected_issuer().unwrap(), "runtrust");
    assert!(g.verify_offline(&token(&key, "runtrust"), None, None).is_ok());
    assert_eq!(code(g.verify_offline(&token(&key, "evil"), None, None)), Some(DenialCode::SignatureInvalid));
    // --issuer wins over the cache.
    let g = gateway(cached(), Some("evil"));
    assert!(g.verify_offline(&token(&key, "evil"), None, None).is_ok());
    assert_eq!(code(g.verify_offline(&token(&key, "runtrust"), None, None)), Some(DenialCode::SignatureInvalid));
    // A cached id that is not one (empty, control characters) is no issuer: fetched again.
    std::fs::write(dir.path().join(ISSUER_CACHE), "run\u{7}trust\n").unwrap();
    assert!(gateway(cached(), None).expected_issuer().is_err());
}

/// `--leeway` (docs/design.md §9): clock skew between this gateway and the service, up to its bound.
#[test]
fn leeway_allows_clock_skew_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let key = IssuerKey::generate(SigningAlg::EdDsa, &SystemRandom::new()).unwrap().0;
    let file = dir.path().join("keys.cose");
    std::fs::write(&file, KeySet::from(key.public()).to_cose_keyset()).unwrap();
    let t = token(&key, "runtrust"); // valid from NOW to NOW + 300
    let at = |now: u64, leeway_secs: i64| Gateway {
        clock: Arc::new(ManualClock::at(now)),
        leeway_secs,
        offline: None,
        ..gateway(IssuerKeys::File(file.clone()), Some("runtrust"))
    };
    // This gateway's clock runs 20 s behind: the token is not yet valid here, unless skew is allowed.
    assert_eq!(code(at(NOW - 20, 0).verify_offline(&t, None, None)), Some(DenialCode::TokenNotYetValid));
    assert!(at(NOW - 20, 30).verify_offline(&t, None, None).is_ok());
    // 20 s ahead: expired here, unless skew is allowed; 10 min past expiry, no leeway revives it.
    assert_eq!(code(at(NOW + 320, 0).verify_offline(&t, None, None)), Some(DenialCode::TokenExpired));
    assert!(at(NOW + 320, 30).verify_offline(&t, None, None).is_ok());
    assert_eq!(code(at(NOW + 900, 10_000).verify_offline(&t, None, None)), Some(DenialCode::TokenExpired));
}
