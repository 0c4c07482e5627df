//! Token round trips and refusals, with AKs from real TPM vectors (`attestation/tests/vectors`).

use coset::cbor::value::Value;
use ring::rand::SystemRandom;
use runtrust_attestation::quote::verify_quote_with_key;
use runtrust_attestation::{DenialCode, PcrValues, Public, QuoteEvidence, QuoteOptions};

use super::cbor::{self, Cbor};
use super::labels::claim;
use super::*;

const NOW: i64 = 1_700_000_000;

/// Map entries being edited by a test.
type Entries = Vec<(i64, Cbor)>;

fn vector(name: &str, file: &str) -> Vec<u8> {
    std::fs::read(format!("{}/attestation/tests/vectors/{name}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn ak(name: &str) -> Public {
    Public::from_tpm2b(&vector(name, "ak.pub")).unwrap()
}

fn nonce(name: &str) -> Vec<u8> {
    hex::decode(String::from_utf8(vector(name, "nonce.hex")).unwrap().trim()).unwrap()
}

/// Claims as the service would issue them after appraising the `name` quote vector.
fn claims(name: &str) -> Claims {
    Claims {
        iss: "runtrust-test".into(),
        sub: format!("sha256:{}", "ab".repeat(32)),
        aud: "gateway-1".into(),
        exp: NOW + 300,
        nbf: NOW,
        iat: NOW,
        cti: vec![0x11; CTI_LEN],
        cnf: ConfirmationKey::from_public(&ak(name)).unwrap(),
        eat_nonce: nonce(name),
        eat_profile: EAT_PROFILE.into(),
        scope: "deploy/web/*".into(),
        initiator: "alice".into(),
        policy_id: "web-prod".into(),
        policy_hash: vec![0x22; POLICY_HASH_LEN],
        pcr_bank: "sha256".into(),
        pcr_selection: "sha256:0,1,2,3,4,5,6,7".into(),
        pcr_digest: vec![0x33; 32],
        parent_cti: None,
        delegation_depth: 0,
        audit_index: Some(42),
        single_use: false,
    }
}

fn issuer(alg: SigningAlg) -> IssuerKey {
    IssuerKey::generate(alg, &SystemRandom::new()).unwrap().0
}

fn sign(key: &IssuerKey, c: &Claims) -> Vec<u8> {
    key.sign(c, &SystemRandom::new()).unwrap()
}

fn expect(now: i64) -> Expectations<'static> {
    Expectations { now, issuer: "runtrust-test", audience: None, scope: None, leeway_secs: 0 }
}

fn code(r: Result<Claims, TokenError>) -> DenialCode {
    r.unwrap_err().code()
}

#[test]
fn round_trip_both_algorithms_both_ak_types() {
    for alg in SigningAlg::ALL {
        let key = issuer(alg);
        let keys = KeySet::from(key.public());
        for name in ["rsa", "ecc", "ecc384", "rsapss"] {
            let c = claims(name);
            let token = sign(&key, &c);
            assert_eq!(&token[..1], &[0xd2], "tag 18");
            let exp = Expectations {
                now: NOW + 10,
                issuer: "runtrust-test",
                audience: Some("gateway-1"),
                scope: Some("deploy/web/api"),
                leeway_secs: 0,
            };
            assert_eq!(verify(&token, &keys, &exp).unwrap(), c, "{alg} {name}");
            let (header, decoded) = decode_unverified(&token).unwrap();
            assert_eq!(header, TokenHeader { alg, kid: key.kid() });
            assert_eq!(decoded, c);
        }
    }
}

#[test]
fn delegated_token_round_trip() {
    let key = issuer(SigningAlg::EdDsa);
    let c = Claims {
        parent_cti: Some(vec![0x44; CTI_LEN]),
        delegation_depth: 2,
        audit_index: None,
        single_use: true,
        scope: "deploy/web/api".into(),
        ..claims("ecc")
    };
    let got = verify(&sign(&key, &c), &key.public().into(), &expect(NOW)).unwrap();
    assert_eq!(got, c);
    assert!(!got.is_root());
}

#[test]
fn es256_signature_is_fixed_r_s() {
    let token = sign(&issuer(SigningAlg::Es256), &claims("rsa"));
    // The envelope ends in bstr(64): 0x58 0x40 ‖ r ‖ s.
    assert_eq!(&token[token.len() - 66..token.len() - 64], &[0x58, 0x40]);
}

#[test]
fn cnf_key_verifies_the_quote_the_token_was_issued_for() {
    let key = issuer(SigningAlg::EdDsa);
    for name in ["rsa", "ecc", "ecc384", "rsapss"] {
        let got = verify(&sign(&key, &claims(name)), &key.public().into(), &expect(NOW)).unwrap();
        let (ak_key, scheme) = got.ak_key();
        let pcrs: PcrValues = serde_json::from_slice(&vector(name, "pcrs.json")).unwrap();
        let attest = vector(name, "attest");
        let signature = vector(name, "signature");
        let evidence = QuoteEvidence { attest: &attest, signature: &signature, pcrs: &pcrs };
        verify_quote_with_key(ak_key, scheme, &evidence, &got.eat_nonce, &QuoteOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got.cnf.matches(&ak(name)));
        // Another host's quote does not pass for this one.
        let other = if name.starts_with("rsa") { "ecc" } else { "rsa" };
        let (oa, os) = (vector(other, "attest"), vector(other, "signature"));
        let other_pcrs: PcrValues = serde_json::from_slice(&vector(other, "pcrs.json")).unwrap();
        let forged = QuoteEvidence { attest: &oa, signature: &os, pcrs: &other_pcrs };
        assert!(verify_quote_with_key(ak_key, scheme, &forged, &nonce(other), &QuoteOptions::default()).is_err());
    }
}

#[test]
fn kid_is_the_rfc9679_thumbprint() {
    // RFC 9679 §6: the worked example is an EC2 P-256 key, which is what an ES256 issuer key is.
    let x = hex::decode("65eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de108de439c08551d").unwrap();
    let y = hex::decode("1e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0ca7ca7e9eecd0084d19c").unwrap();
    let k = VerifyingKey::new(SigningAlg::Es256, &[&[4u8][..], &x, &y].concat()).unwrap();
    assert_eq!(
        hex::encode(k.thumbprint_input()),
        "a40102200121582065eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de108de439c08551d\
         2258201e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0ca7ca7e9eecd0084d19c"
    );
    assert_eq!(k.kid_hex(), "496bd8afadf307e5b08c64b0421bf9dc01528a344a43bda88fadd1669da253ec");

    // Generated keys, against an independent hand-encoding of {1: kty, -1: crv, -2: x[, -3: y]}.
    let sha256 = |b: &[u8]| ring::digest::digest(&ring::digest::SHA256, b).as_ref().to_vec();
    let ed = issuer(SigningAlg::EdDsa);
    let x = ed.public().public_bytes().to_vec();
    assert_eq!(ed.kid(), sha256(&[&[0xa3, 0x01, 0x01, 0x20, 0x06, 0x21, 0x58, 0x20][..], &x].concat()));
    let es = issuer(SigningAlg::Es256);
    let p = es.public().public_bytes().to_vec();
    let manual =
        [&[0xa4, 0x01, 0x02, 0x20, 0x01, 0x21, 0x58, 0x20][..], &p[1..33], &[0x22, 0x58, 0x20], &p[33..]].concat();
    assert_eq!(es.kid(), sha256(&manual));
    // The kid in the token header is that thumbprint.
    assert_eq!(decode_unverified(&sign(&es, &claims("rsa"))).unwrap().0.kid, es.kid());
}

#[test]
fn validity_period_with_leeway() {
    let key = issuer(SigningAlg::EdDsa);
    let keys = KeySet::from(key.public());
    let token = sign(&key, &claims("rsa")); // nbf NOW, exp NOW + 300
    let at = |now, leeway_secs| verify(&token, &keys, &Expectations { leeway_secs, ..expect(now) });
    assert!(at(NOW, 0).is_ok());
    assert!(at(NOW + 299, 0).is_ok());
    assert_eq!(code(at(NOW + 300, 0)), DenialCode::TokenExpired, "exp itself is expired (RFC 8392 §3.1.4)");
    assert!(at(NOW + 300, 1).is_ok());
    assert_eq!(code(at(NOW + 330, 30)), DenialCode::TokenExpired);
    assert_eq!(code(at(NOW - 1, 0)), DenialCode::TokenNotYetValid);
    assert!(at(NOW - 30, 30).is_ok());
    assert_eq!(code(at(NOW - 31, 30)), DenialCode::TokenNotYetValid);
    assert_eq!(code(at(NOW - 100, -500)), DenialCode::TokenNotYetValid, "negative leeway counts as 0");
    assert_eq!(code(at(i64::MAX, i64::MAX)), DenialCode::TokenExpired, "no overflow");
    assert!(at(NOW, i64::MAX).is_ok());
    assert!(at(NOW + 300 + MAX_LEEWAY_SECS - 1, i64::MAX).is_ok());
    assert_eq!(code(at(NOW + 300 + MAX_LEEWAY_SECS, i64::MAX)), DenialCode::TokenExpired, "leeway is capped");
    assert_eq!(code(at(i64::MIN, i64::MAX)), DenialCode::TokenNotYetValid, "no overflow");
    assert_eq!(Expectations::new(NOW, "runtrust-test").leeway_secs, DEFAULT_LEEWAY_SECS);
}

#[test]
fn audience_and_scope() {
    let key = issuer(SigningAlg::EdDsa);
    let keys = KeySet::from(key.public());
    let token = sign(&key, &claims("ecc")); // aud gateway-1, scope deploy/web/*
    let with = |audience, scope| verify(&token, &keys, &Expectations { audience, scope, ..expect(NOW) });
    assert!(with(Some("gateway-1"), Some("deploy/web/api")).is_ok());
    assert!(with(None, Some("deploy/web/*")).is_ok(), "the same pattern");
    assert!(with(None, Some("deploy/web/api/*")).is_ok(), "a narrower pattern");
    assert_eq!(code(with(Some("gateway-2"), None)), DenialCode::AudienceMismatch);
    assert_eq!(code(with(Some("gateway-1 "), None)), DenialCode::AudienceMismatch);
    assert_eq!(code(with(None, Some("deploy/db"))), DenialCode::ScopeDenied);
    assert_eq!(code(with(None, Some("deploy/web"))), DenialCode::ScopeDenied, "the prefix is not inside");
    assert_eq!(code(with(None, Some("deploy/*"))), DenialCode::ScopeDenied, "broader");
    assert_eq!(code(with(None, Some("deploy/web/a//b"))), DenialCode::ScopeDenied, "malformed request");
}

/// Issue 11 finding 11: a token signed with the real issuer key but naming another issuer is refused.
#[test]
fn the_issuer_must_be_the_expected_one() {
    let key = issuer(SigningAlg::EdDsa);
    let keys = KeySet::from(key.public());
    let evil = sign(&key, &Claims { iss: "evil".into(), ..claims("ecc") });
    let err = verify(&evil, &keys, &expect(NOW)).unwrap_err();
    assert_eq!(err, TokenError::IssuerMismatch { expected: "runtrust-test".into(), actual: "evil".into() });
    assert_eq!(err.code(), DenialCode::SignatureInvalid);
    let good = sign(&key, &claims("ecc"));
    assert!(verify(&good, &keys, &expect(NOW)).is_ok());
    let other = Expectations { issuer: "runtrust-test2", ..expect(NOW) };
    assert_eq!(code(verify(&good, &keys, &other)), DenialCode::SignatureInvalid, "exact, not a prefix");
    let other = Expectations { issuer: "", ..expect(NOW) };
    assert_eq!(code(verify(&good, &keys, &other)), DenialCode::SignatureInvalid, "an empty issuer matches nothing");
}

#[test]
fn unknown_kid_and_key_rotation() {
    let old = issuer(SigningAlg::EdDsa);
    let new = issuer(SigningAlg::Es256);
    let (t_old, t_new) = (sign(&old, &claims("rsa")), sign(&new, &claims("ecc")));
    let both = KeySet::new(vec![new.public(), old.public()]).unwrap();
    assert!(verify(&t_old, &both, &expect(NOW)).is_ok());
    assert!(verify(&t_new, &both, &expect(NOW)).is_ok());
    let only_new = KeySet::from(new.public());
    let err = verify(&t_old, &only_new, &expect(NOW)).unwrap_err();
    assert!(matches!(err, TokenError::UnknownKid(_)), "{err}");
    assert_eq!(err.code(), DenialCode::SignatureInvalid);
    assert_eq!(code(verify(&t_old, &KeySet::default(), &expect(NOW))), DenialCode::SignatureInvalid);
}

#[test]
fn algorithm_must_be_the_keys() {
    // A header claiming ES256 under an Ed25519 key's kid is refused before any signature check.
    let ed = issuer(SigningAlg::EdDsa);
    let protected = cbor::encode(&Cbor::Map(vec![(1, Cbor::Int(-7)), (4, Cbor::Bytes(ed.kid()))]));
    let payload = claims("rsa").to_payload();
    let token = cbor::encode(&Cbor::Tag(
        18,
        Box::new(Cbor::Array(vec![
            Cbor::Bytes(protected),
            Cbor::Map(vec![]),
            Cbor::Bytes(payload),
            Cbor::Bytes(vec![0; 64]),
        ])),
    ));
    let err = verify(&token, &ed.public().into(), &expect(NOW)).unwrap_err();
    assert!(matches!(err, TokenError::AlgMismatch { .. }), "{err}");
    assert_eq!(err.code(), DenialCode::SignatureInvalid);
}

#[test]
fn every_bit_flip_truncation_and_extension_is_refused() {
    for alg in SigningAlg::ALL {
        let key = issuer(alg);
        let keys = KeySet::from(key.public());
        let token = sign(&key, &claims("rsa"));
        for i in 0..token.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = token.clone();
                t[i] ^= bit;
                let r = verify(&t, &keys, &expect(NOW));
                assert_eq!(code(r), DenialCode::SignatureInvalid, "{alg}: byte {i} ^ {bit:#x}");
            }
        }
        for len in 0..token.len() {
            assert_eq!(code(verify(&token[..len], &keys, &expect(NOW))), DenialCode::SignatureInvalid, "len {len}");
        }
        for extra in [&[0x00u8][..], &[0xf6], &token[..1]] {
            let t = [&token[..], extra].concat();
            let err = verify(&t, &keys, &expect(NOW)).unwrap_err();
            assert!(matches!(err, TokenError::Malformed(ref m) if m.contains("extraneous")), "{err}");
        }
        // Untagged, re-tagged as CWT (61) around the COSE_Sign1, or tagged otherwise.
        assert!(verify(&token[1..], &keys, &expect(NOW)).is_err());
        assert!(verify(&[&[0xd8, 0x3d][..], &token].concat(), &keys, &expect(NOW)).is_err());
        assert!(verify(&[&[0xd1][..], &token[1..]].concat(), &keys, &expect(NOW)).is_err());
        assert!(decode_unverified(&token[1..]).is_err());
    }
}

#[test]
fn signature_and_payload_tampering() {
    let key = issuer(SigningAlg::EdDsa);
    let keys = KeySet::from(key.public());
    let token = sign(&key, &claims("rsa"));
    let last = token.len() - 1;
    let mut t = token.clone();
    t[last] ^= 1;
    assert!(matches!(verify(&t, &keys, &expect(NOW)), Err(TokenError::BadSignature { .. })));
    // Change "alice" in the payload to "alicf": still well-formed, but no longer what was signed.
    let pos = token.windows(5).position(|w| w == b"alice").unwrap();
    let mut t = token.clone();
    t[pos + 4] = b'f';
    assert!(matches!(verify(&t, &keys, &expect(NOW)), Err(TokenError::BadSignature { .. })));
    assert_eq!(decode_unverified(&t).unwrap().1.initiator, "alicf", "inspect shows it; verify refuses it");
}

#[test]
fn oversized_token_is_refused_before_parsing() {
    let key = issuer(SigningAlg::EdDsa);
    let big = vec![0u8; MAX_TOKEN_BYTES + 1];
    let err = verify(&big, &key.public().into(), &expect(NOW)).unwrap_err();
    assert!(matches!(err, TokenError::TooLarge { .. }));
    assert_eq!(err.code(), DenialCode::SignatureInvalid);
}

/// Claims maps that are validly signed but not what runtrust issues.
#[test]
fn signed_but_malformed_claims_are_refused() {
    let key = issuer(SigningAlg::EdDsa);
    let keys = KeySet::from(key.public());
    let rng = SystemRandom::new();
    let good = claims("rsa");
    let Cbor::Map(entries) = good.to_cbor() else { unreachable!() };
    let with = |f: &dyn Fn(&mut Entries)| {
        let mut e = entries.clone();
        f(&mut e);
        cbor::encode(&Cbor::Map(e))
    };
    let set = |k: i64, v: Cbor| {
        with(&move |e: &mut Entries| {
            e.retain(|(l, _)| *l != k);
            e.push((k, v.clone()));
        })
    };
    let remove = |k: i64| with(&move |e: &mut Entries| e.retain(|(l, _)| *l != k));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown private claim", set(-70099, Cbor::Bool(true))),
        ("unknown registered claim", set(9, Cbor::Text("x".into()))),
        ("missing sub", remove(claim::SUB)),
        ("missing cnf", remove(claim::CNF)),
        ("exp as text", set(claim::EXP, Cbor::Text("soon".into()))),
        ("cti too short", set(claim::CTI, Cbor::Bytes(vec![1; 8]))),
        ("negative depth", set(claim::DELEGATION_DEPTH, Cbor::Int(-1))),
        ("depth without parent", set(claim::DELEGATION_DEPTH, Cbor::Uint(1))),
        ("depth over u32", set(claim::DELEGATION_DEPTH, Cbor::Uint(1 << 32))),
        ("single_use as int", set(claim::SINGLE_USE, Cbor::Uint(1))),
        ("other profile", set(claim::EAT_PROFILE, Cbor::Text("https://example.com/p".into()))),
        ("policy hash short", set(claim::POLICY_HASH, Cbor::Bytes(vec![1; 20]))),
        ("scope pattern invalid", set(claim::SCOPE, Cbor::Text("a/*/b".into()))),
        ("selection not canonical", set(claim::PCR_SELECTION, Cbor::Text("sha256:0-7".into()))),
        ("cnf thumbprint method", set(claim::CNF, Cbor::Map(vec![(5, Cbor::Bytes(vec![0; 32]))]))),
        ("payload not a map", cbor::encode(&Cbor::Array(vec![]))),
        ("payload with trailing byte", [good.to_payload(), vec![0]].concat()),
    ];
    for (what, payload) in cases {
        let token = key.sign_payload_unchecked(&payload, &rng);
        let err = verify(&token, &keys, &expect(NOW)).unwrap_err();
        assert_eq!(err.code(), DenialCode::SignatureInvalid, "{what}: {err}");
        assert!(decode_unverified(&token).is_err(), "{what}");
    }

    // Same claims, other encodings: duplicate key, reordered keys, indefinite length, long-form integer.
    let Value::Map(mut raw) = cbor::decode(&good.to_payload()).unwrap() else { unreachable!() };
    let ciborium = |v: &Value| {
        let mut out = Vec::new();
        coset::cbor::ser::into_writer(v, &mut out).unwrap();
        out
    };
    let mut dup = raw.clone();
    dup.push(raw[0].clone());
    raw.reverse();
    let reordered = ciborium(&Value::Map(raw));
    let canonical = good.to_payload();
    let indefinite = [&[0xbf][..], &canonical[1..], &[0xff]].concat();
    let exp_pos = canonical.windows(2).position(|w| w == [0x04, 0x1a]).unwrap();
    let long_exp = [&canonical[..exp_pos + 1], &[0x1b, 0, 0, 0, 0], &canonical[exp_pos + 2..]].concat();
    for (what, payload) in [
        ("duplicate", ciborium(&Value::Map(dup))),
        ("reordered", reordered),
        ("indefinite", indefinite),
        ("long", long_exp),
    ] {
        let lenient: Result<Value, _> = coset::cbor::de::from_reader(&payload[..]);
        assert!(lenient.is_ok(), "{what}: still CBOR, so the refusals below are the strict decoder's");
        assert!(cbor::decode(&payload).is_err(), "{what}: the strict reader refuses it");
        let token = key.sign_payload_unchecked(&payload, &rng);
        let err = verify(&token, &keys, &expect(NOW)).unwrap_err();
        assert!(matches!(err, TokenError::Malformed(_)), "{what}: {err}");
    }
}

#[test]
fn issuer_refuses_to_sign_invalid_claims() {
    let key = issuer(SigningAlg::EdDsa);
    let rng = SystemRandom::new();
    let base = claims("rsa");
    let cases: Vec<(&str, Claims)> = vec![
        ("cti length", Claims { cti: vec![1; 15], ..base.clone() }),
        ("parent without depth", Claims { parent_cti: Some(vec![1; CTI_LEN]), ..base.clone() }),
        ("own parent", Claims { parent_cti: Some(base.cti.clone()), delegation_depth: 1, ..base.clone() }),
        ("depth without parent", Claims { delegation_depth: 1, ..base.clone() }),
        ("profile", Claims { eat_profile: "x".into(), ..base.clone() }),
        ("scope", Claims { scope: "deploy web".into(), ..base.clone() }),
        ("empty aud", Claims { aud: String::new(), ..base.clone() }),
        ("control char", Claims { initiator: "al\nice".into(), ..base.clone() }),
        ("long iss", Claims { iss: "i".repeat(MAX_TEXT + 1), ..base.clone() }),
        ("nbf = exp", Claims { nbf: base.exp, ..base.clone() }),
        ("iat after exp", Claims { iat: base.exp + 1, ..base.clone() }),
        ("negative time", Claims { nbf: -1, ..base.clone() }),
        ("after 9999", Claims { exp: MAX_TIME + 1, ..base.clone() }),
        ("bank case", Claims { pcr_bank: "SHA256".into(), ..base.clone() }),
        ("bank not selected", Claims { pcr_bank: "sha1".into(), ..base.clone() }),
        ("selection form", Claims { pcr_selection: "sha256:0-7".into(), ..base.clone() }),
        ("digest length", Claims { pcr_digest: vec![0; 31], ..base.clone() }),
        ("nonce too short", Claims { eat_nonce: vec![0; 7], ..base.clone() }),
        ("nonce too long", Claims { eat_nonce: vec![0; 65], ..base.clone() }),
    ];
    for (what, c) in cases {
        let err = key.sign(&c, &rng).unwrap_err();
        assert!(matches!(err, TokenError::Unsignable(_)), "{what}: {err}");
        assert_eq!(err.code(), DenialCode::InternalError, "{what}");
    }
    let multi = Claims { pcr_selection: "sha1:0+sha256:0,7".into(), ..base };
    assert!(key.sign(&multi, &rng).is_ok(), "multi-bank selection naming the bank");
}

#[test]
fn keyset_cose_and_pem_round_trips() {
    let set = KeySet::new(vec![issuer(SigningAlg::EdDsa).public(), issuer(SigningAlg::Es256).public()]).unwrap();
    let cose = set.to_cose_keyset();
    assert_eq!(cose[0], 0x82, "array of 2");
    assert_eq!(KeySet::from_cose_keyset(&cose).unwrap(), set);
    assert_eq!(KeySet::from_bytes(&cose).unwrap(), set);
    let pem = set.to_pem();
    assert_eq!(pem.matches("-----BEGIN PUBLIC KEY-----").count(), 2);
    assert_eq!(KeySet::from_pem(&pem).unwrap(), set);
    assert_eq!(KeySet::from_bytes(pem.as_bytes()).unwrap(), set);
    for k in set.keys() {
        assert_eq!(VerifyingKey::from_cose_key(&k.to_cose_key()).unwrap(), *k);
        assert_eq!(VerifyingKey::from_pem(&k.to_pem()).unwrap(), *k);
        assert_eq!(set.find(k.kid()), Some(k));
    }
    assert!(set.find(&[0; 32]).is_none());
}

#[test]
fn keyset_parsing_is_strict() {
    let ed = issuer(SigningAlg::EdDsa).public();
    let es = issuer(SigningAlg::Es256).public();
    let set = KeySet::new(vec![ed.clone(), es.clone()]).unwrap();
    let cose = set.to_cose_keyset();
    let key_with = |k: &VerifyingKey, f: &dyn Fn(&mut Entries)| {
        let Cbor::Map(mut m) = k.to_cose() else { unreachable!() };
        f(&mut m);
        cbor::encode(&Cbor::Array(vec![Cbor::Map(m)]))
    };
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("trailing byte", [cose.clone(), vec![0]].concat()),
        ("empty", vec![0x80]),
        ("not an array", ed.to_cose_key()),
        ("twice", cbor::encode(&Cbor::Array(vec![ed.to_cose(), ed.to_cose()]))),
        ("key_ops", key_with(&ed, &|m| m.push((4, Cbor::Array(vec![Cbor::Int(2)]))))),
        (
            "kid not thumbprint",
            key_with(&ed, &|m| m.iter_mut().filter(|(l, _)| *l == 2).for_each(|e| e.1 = Cbor::Bytes(vec![1; 32]))),
        ),
        (
            "alg of other key",
            key_with(&ed, &|m| m.iter_mut().filter(|(l, _)| *l == 3).for_each(|e| e.1 = Cbor::Int(-7))),
        ),
        ("ed25519 with y", key_with(&ed, &|m| m.push((-3, Cbor::Bytes(vec![0; 32]))))),
        ("p256 without y", key_with(&es, &|m| m.retain(|(l, _)| *l != -3))),
        ("x448", key_with(&ed, &|m| m.iter_mut().filter(|(l, _)| *l == -1).for_each(|e| e.1 = Cbor::Int(7)))),
        (
            "short x",
            key_with(&ed, &|m| m.iter_mut().filter(|(l, _)| *l == -2).for_each(|e| e.1 = Cbor::Bytes(vec![0; 31]))),
        ),
        ("oversized", vec![0; MAX_KEYSET_BYTES + 1]),
    ];
    for (what, bytes) in bad {
        let err = KeySet::from_cose_keyset(&bytes).unwrap_err();
        assert!(matches!(err, TokenError::Key(_)), "{what}: {err}");
        assert_eq!(err.code(), DenialCode::InternalError);
    }
    // A key without the optional kid and alg is accepted; both are derived.
    let bare = key_with(&es, &|m| m.retain(|(l, _)| *l != 2 && *l != 3));
    assert_eq!(KeySet::from_cose_keyset(&bare).unwrap().keys(), std::slice::from_ref(&es));
    // PEM: only Ed25519 and uncompressed P-256 SubjectPublicKeyInfo.
    let mut der = es.to_spki_der();
    der[26] = 0x02; // compressed-point marker with the wrong length
    assert!(VerifyingKey::from_spki_der(&der).is_err());
    assert!(VerifyingKey::from_spki_der(&[ed.to_spki_der(), vec![0]].concat()).is_err());
    assert!(KeySet::from_pem("").is_err());
    assert!(KeySet::new(vec![ed.clone(), ed]).is_err());
}

#[test]
fn issuer_key_storage() {
    let rng = SystemRandom::new();
    for alg in SigningAlg::ALL {
        let (key, pkcs8) = IssuerKey::generate(alg, &rng).unwrap();
        assert_eq!(key.alg(), alg);
        assert_eq!(IssuerKey::from_pkcs8(alg, &pkcs8).unwrap().kid(), key.kid());
        assert_eq!(IssuerKey::from_pkcs8_any(&pkcs8).unwrap().public(), key.public());
        let other = if alg == SigningAlg::EdDsa { SigningAlg::Es256 } else { SigningAlg::EdDsa };
        assert!(IssuerKey::from_pkcs8(other, &pkcs8).is_err());
        let pem = IssuerKey::pkcs8_to_pem(&pkcs8);
        assert_eq!(IssuerKey::pkcs8_from_pem(&pem).unwrap(), pkcs8);
        // A reloaded key signs tokens the original's public key verifies.
        let reloaded = IssuerKey::from_pkcs8(alg, &pkcs8).unwrap();
        assert!(verify(&sign(&reloaded, &claims("rsa")), &key.public().into(), &expect(NOW)).is_ok());
        assert!(!format!("{key:?}").contains(&hex::encode(&pkcs8[pkcs8.len() - 8..])), "Debug shows no secret");
    }
    assert!(IssuerKey::from_pkcs8_any(b"not a key").is_err());
    assert_eq!("ed25519".parse::<SigningAlg>().unwrap(), SigningAlg::EdDsa);
    assert_eq!("ES256".parse::<SigningAlg>().unwrap(), SigningAlg::Es256);
    assert!("RS256".parse::<SigningAlg>().is_err());
    assert_eq!(SigningAlg::default(), SigningAlg::EdDsa);
    assert_eq!((SigningAlg::EdDsa.cose_alg(), SigningAlg::Es256.cose_alg()), (-8, -7));
}

#[test]
fn detached_signatures() {
    let rng = SystemRandom::new();
    let key = issuer(SigningAlg::Es256);
    let keys = KeySet::new(vec![issuer(SigningAlg::EdDsa).public(), key.public()]).unwrap();
    let policy = b"id = \"web-prod\"\n[pcrs.sha256]\n0 = [\"00\"]\n";
    let sig = key.sign_detached(policy, &rng).unwrap();
    assert_eq!(verify_detached(&sig, policy, &keys).unwrap(), key.kid());
    let mut tampered = policy.to_vec();
    tampered[0] ^= 1;
    assert!(matches!(verify_detached(&sig, &tampered, &keys), Err(TokenError::BadSignature { .. })));
    let mut bad_sig = sig.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 1;
    assert!(verify_detached(&bad_sig, policy, &keys).is_err());
    assert!(verify_detached(&sig, policy, &KeySet::from(issuer(SigningAlg::Es256).public())).is_err());
    // Neither form passes for the other.
    let token = sign(&key, &claims("rsa"));
    assert!(matches!(verify_detached(&token, policy, &keys), Err(TokenError::Malformed(_))));
    assert!(matches!(verify(&sig, &keys, &expect(NOW)), Err(TokenError::Malformed(_))));
    assert!(decode_unverified(&sig).is_err());
}

#[test]
fn inspect_json_names_every_claim() {
    let c = Claims { parent_cti: Some(vec![0xab; CTI_LEN]), delegation_depth: 1, ..claims("rsa") };
    let j = claims_json(&c);
    for name in [
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "cti",
        "cnf",
        "eat_nonce",
        "eat_profile",
        "scope",
        "initiator",
        "policy_id",
        "policy_hash",
        "pcr_bank",
        "pcr_selection",
        "pcr_digest",
        "parent_cti",
        "delegation_depth",
        "audit_index",
        "single_use",
    ] {
        assert!(j.get(name).is_some(), "{name}");
    }
    assert_eq!(j["exp_rfc3339"], "2023-11-14T22:18:20Z");
    assert_eq!(j["nbf_rfc3339"], "2023-11-14T22:13:20Z");
    assert_eq!(j["cti"], "11".repeat(CTI_LEN));
    assert_eq!(j["parent_cti"], "ab".repeat(CTI_LEN));
    assert_eq!(j["eat_nonce"], hex::encode(nonce("rsa")));
    assert_eq!(j["audit_index"], 42);
    assert_eq!(j["cnf"]["kty"], "RSA");
    assert_eq!(j["cnf"]["alg"], "RS256");
    assert_eq!(j["cnf"]["e"], "010001");
    let root = claims_json(&claims("ecc"));
    assert!(root["parent_cti"].is_null());
    assert_eq!(root["cnf"]["crv"], "P-256");
    assert_eq!(root["cnf"]["alg"], "ES256");
    let header = TokenHeader { alg: SigningAlg::EdDsa, kid: vec![0xcd; 32] }.to_json();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], "cd".repeat(32));
}

#[test]
fn denial_codes() {
    let cases = [
        (TokenError::Malformed(String::new()), DenialCode::SignatureInvalid),
        (TokenError::UnknownKid(String::new()), DenialCode::SignatureInvalid),
        (TokenError::Expired { exp: 0, now: 0, leeway: 0 }, DenialCode::TokenExpired),
        (TokenError::NotYetValid { nbf: 0, now: 0, leeway: 0 }, DenialCode::TokenNotYetValid),
        (TokenError::AudienceMismatch { expected: String::new(), actual: String::new() }, DenialCode::AudienceMismatch),
        (TokenError::ScopeDenied { requested: String::new(), granted: String::new() }, DenialCode::ScopeDenied),
        (TokenError::AkUnsupported(String::new()), DenialCode::AkInvalid),
        (TokenError::Crypto("x"), DenialCode::InternalError),
    ];
    for (e, c) in cases {
        assert_eq!(e.code(), c, "{e}");
    }
    let rng = SystemRandom::new();
    let a = new_cti(&rng).unwrap();
    assert_eq!(a.len(), CTI_LEN);
    assert_ne!(a, new_cti(&rng).unwrap());
}

/// Writes tokens and key sets for the pycose interoperability check (`docs/token.md`) when
/// RUNTRUST_WRITE_TOKEN_DIR names a directory; does nothing otherwise.
#[test]
fn write_interop_vectors() {
    let Some(dir) = std::env::var_os("RUNTRUST_WRITE_TOKEN_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rng = SystemRandom::new();
    let mut keys = Vec::new();
    for (alg, ak_name) in [(SigningAlg::EdDsa, "rsa"), (SigningAlg::Es256, "ecc")] {
        let key = issuer(alg);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let c = Claims { iat: now, nbf: now, exp: now + 3600, cti: new_cti(&rng).unwrap(), ..claims(ak_name) };
        let name = alg.name().to_ascii_lowercase();
        std::fs::write(dir.join(format!("token-{name}.cbor")), key.sign(&c, &rng).unwrap()).unwrap();
        std::fs::write(dir.join(format!("policy-{name}.sig")), key.sign_detached(b"policy\n", &rng).unwrap()).unwrap();
        keys.push(key.public());
    }
    std::fs::write(dir.join("policy.toml"), b"policy\n").unwrap();
    let set = KeySet::new(keys).unwrap();
    std::fs::write(dir.join("keys.cose"), set.to_cose_keyset()).unwrap();
    std::fs::write(dir.join("keys.pem"), set.to_pem()).unwrap();
    eprintln!("wrote interop vectors to {}", dir.display());
}

#[test]
fn only_the_deterministic_envelope_is_read() {
    use coset::TaggedCborSerializable as _;
    let key = issuer(SigningAlg::EdDsa);
    let keys = KeySet::from(key.public());
    let token = sign(&key, &claims("rsa"));
    assert!(verify(&token, &keys, &expect(NOW)).is_ok());
    let msg = coset::CoseSign1::from_tagged_slice(&token).unwrap();
    let protected = msg.protected.original_data.clone().unwrap();
    let bstr = |b: &[u8]| {
        let mut o = Vec::new();
        cbor::head(2, b.len() as u64, &mut o);
        o.extend_from_slice(b);
        o
    };
    let (payload, signature) = (bstr(msg.payload.as_deref().unwrap()), bstr(&msg.signature));
    let build = |tag: &[u8], array: &[u8], unprotected: &[u8], payload: &[u8], signature: &[u8], end: &[u8]| {
        [tag, array, &bstr(&protected), unprotected, payload, signature, end].concat()
    };
    assert_eq!(build(&[0xd2], &[0x84], &[0xa0], &payload, &signature, &[]), token, "the pieces rebuild it");
    // Each is the same signed content in another valid CBOR encoding: only the form is wrong.
    let long_signature = [&[0x59, 0x00, 0x40][..], &msg.signature].concat();
    for (what, t) in [
        ("tag 18 in two bytes", build(&[0xd8, 0x12], &[0x84], &[0xa0], &payload, &signature, &[])),
        ("indefinite array", build(&[0xd2], &[0x9f], &[0xa0], &payload, &signature, &[0xff])),
        ("array length in two bytes", build(&[0xd2], &[0x98, 0x04], &[0xa0], &payload, &signature, &[])),
        ("indefinite empty map", build(&[0xd2], &[0x84], &[0xbf, 0xff], &payload, &signature, &[])),
        ("long-form signature length", build(&[0xd2], &[0x84], &[0xa0], &payload, &long_signature, &[])),
        ("undefined payload", build(&[0xd2], &[0x84], &[0xa0], &[0xf7], &signature, &[])),
    ] {
        let err = verify(&t, &keys, &expect(NOW)).unwrap_err();
        assert!(matches!(err, TokenError::Malformed(_)), "{what}: {err}");
        assert_eq!(err.code(), DenialCode::SignatureInvalid, "{what}");
    }
    let unprotected = build(&[0xd2], &[0x84], &[0xa1, 0x04, 0x41, 0x00], &payload, &signature, &[]);
    let err = verify(&unprotected, &keys, &expect(NOW)).unwrap_err();
    assert!(matches!(&err, TokenError::Malformed(m) if m.contains("must be empty")), "{err}");
    let not_a_map = build(&[0xd2], &[0x84], &[0x80], &payload, &signature, &[]);
    let err = verify(&not_a_map, &keys, &expect(NOW)).unwrap_err();
    assert!(matches!(&err, TokenError::Malformed(m) if m.contains("not a map")), "{err}");
}

#[test]
fn key_sets_from_other_tools_load_in_any_valid_encoding() {
    // RFC 9052 §7 does not require deterministic encoding of a COSE_KeySet: another tool's key order is
    // read, unlike a token's (which has exactly one encoding).
    let key = issuer(SigningAlg::EdDsa);
    let set = KeySet::from(key.public());
    let bytes = set.to_cose_keyset();
    let Value::Array(mut items) = coset::cbor::de::from_reader::<Value, _>(&bytes[..]).unwrap() else { panic!() };
    let Some(Value::Map(entries)) = items.first_mut() else { panic!() };
    entries.reverse();
    let mut reordered = Vec::new();
    coset::cbor::ser::into_writer(&Value::Array(items), &mut reordered).unwrap();
    assert_ne!(reordered, bytes);
    let back = KeySet::from_cose_keyset(&reordered).unwrap();
    assert_eq!(back.to_cose_keyset(), bytes);
}
