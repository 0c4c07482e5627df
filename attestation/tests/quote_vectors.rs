//! verify_quote against real swtpm quotes (tests/vectors, captured by tests/vectors/capture.sh), and each
//! single-field tamper of them.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;

use runtrust_attestation::ak::{check_ak, AkError};
use runtrust_attestation::quote::QuoteError;
use runtrust_attestation::signing::SignatureError;
use runtrust_attestation::tpm2::{PcrBank, PcrSelection};
use runtrust_attestation::{
    verify_quote, Attest, ClockInfo, DenialCode, HashAlg, PcrValues, Public, QuoteEvidence, QuoteOptions, Signature,
};

const VECTORS: [&str; 5] = ["rsa", "rsapss", "ecc", "ecc384", "rsa-multibank"];

struct Vector {
    name: &'static str,
    ak: Vec<u8>,
    ak_name: Vec<u8>,
    attest: Vec<u8>,
    signature: Vec<u8>,
    nonce: Vec<u8>,
    pcrs: PcrValues,
}

fn load(name: &'static str) -> Vector {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(name);
    let read = |f: &str| fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{name}/{f}: {e}"));
    Vector {
        name,
        ak: read("ak.pub"),
        ak_name: read("ak.name"),
        attest: read("attest"),
        signature: read("signature"),
        nonce: hex::decode(String::from_utf8(read("nonce.hex")).unwrap().trim()).unwrap(),
        pcrs: serde_json::from_slice(&read("pcrs.json")).unwrap(),
    }
}

impl Vector {
    fn ak(&self) -> Public {
        Public::from_tpm2b(&self.ak).unwrap()
    }

    fn verify_with(&self, attest: &[u8], signature: &[u8], pcrs: &PcrValues, nonce: &[u8]) -> Result<(), QuoteError> {
        let ev = QuoteEvidence { attest, signature, pcrs };
        verify_quote(&self.ak(), &ev, nonce, &QuoteOptions::default()).map(|_| ())
    }
}

fn all() -> impl Iterator<Item = Vector> {
    VECTORS.into_iter().map(load)
}

#[test]
fn genuine_quotes_verify() {
    for v in all() {
        let ak = v.ak();
        check_ak(&ak, false).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(ak.name(), v.ak_name, "{}: Name", v.name);
        assert_eq!(ak.to_tpm2b(), v.ak, "{}: TPM2B_PUBLIC round trip", v.name);
        let ev = QuoteEvidence { attest: &v.attest, signature: &v.signature, pcrs: &v.pcrs };
        let q =
            verify_quote(&ak, &ev, &v.nonce, &QuoteOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(q.pcrs, v.pcrs, "{}", v.name);
        assert!(q.attest.clock_info.safe);
    }
}

#[test]
fn schemes_and_keys_are_what_the_vectors_say() {
    use runtrust_attestation::tpm2::{PublicKey, SigScheme};
    let expect = [
        ("rsa", SigScheme::RsaSsa(HashAlg::Sha256), "RSA-2048"),
        ("rsapss", SigScheme::RsaPss(HashAlg::Sha256), "RSA-2048"),
        ("ecc", SigScheme::EcDsa(HashAlg::Sha256), "NIST P-256"),
        ("ecc384", SigScheme::EcDsa(HashAlg::Sha384), "NIST P-384"),
    ];
    for (name, scheme, key) in expect {
        let v = load(name);
        assert_eq!(Signature::parse(&v.signature).unwrap().scheme(), scheme, "{name}");
        assert_eq!(v.ak().key.describe(), key);
        assert_eq!(v.ak().signing_scheme(), Some(scheme));
        if let PublicKey::Rsa { exponent, .. } = v.ak().key {
            assert_eq!(PublicKey::rsa_exponent(exponent), 65537);
        }
    }
}

#[test]
fn wrong_nonce_fails() {
    for v in all() {
        let mut nonce = v.nonce.clone();
        nonce[0] ^= 1;
        assert_eq!(
            v.verify_with(&v.attest, &v.signature, &v.pcrs, &nonce),
            Err(QuoteError::NonceMismatch),
            "{}",
            v.name
        );
        let short = &v.nonce[..31];
        assert_eq!(
            v.verify_with(&v.attest, &v.signature, &v.pcrs, short).unwrap_err().code(),
            DenialCode::NonceMismatch
        );
    }
}

#[test]
fn tampered_pcr_value_fails() {
    for v in all() {
        let (bank, index, value) = v.pcrs.iter().nth(3).map(|(b, i, val)| (b, i, val.to_vec())).unwrap();
        let mut pcrs = v.pcrs.clone();
        let mut value = value;
        value[5] ^= 0x40;
        pcrs.insert(bank, index, value).unwrap();
        let err = v.verify_with(&v.attest, &v.signature, &pcrs, &v.nonce).unwrap_err();
        assert!(matches!(err, QuoteError::PcrDigestMismatch { .. }), "{}: {err}", v.name);
        assert_eq!(err.code(), DenialCode::PcrMismatch);
    }
}

#[test]
fn relabelled_pcr_list_fails() {
    for v in all() {
        // The same values in the same order, claimed for PCRs 8.. instead of 0..: the digest would still
        // match, which is why the claimed indices must equal the signed selection.
        let mut relabelled = PcrValues::new();
        for (bank, index, value) in v.pcrs.iter() {
            relabelled.insert(bank, index + 8, value.to_vec()).unwrap();
        }
        let err = v.verify_with(&v.attest, &v.signature, &relabelled, &v.nonce).unwrap_err();
        assert!(matches!(err, QuoteError::PcrSelectionMismatch { .. }), "{}: {err}", v.name);
        assert_eq!(err.code(), DenialCode::PcrMismatch);

        // Two values swapped between indices: the set is right, the digest is not.
        let vals: Vec<_> = v.pcrs.iter().map(|(b, i, val)| (b, i, val.to_vec())).collect();
        let mut swapped = v.pcrs.clone();
        swapped.insert(vals[0].0, vals[0].1, vals[2].2.clone()).unwrap();
        swapped.insert(vals[2].0, vals[2].1, vals[0].2.clone()).unwrap();
        let err = v.verify_with(&v.attest, &v.signature, &swapped, &v.nonce).unwrap_err();
        assert!(matches!(err, QuoteError::PcrDigestMismatch { .. }), "{}: {err}", v.name);

        // A missing value, and an unsigned extra one.
        let mut fewer = PcrValues::new();
        for (b, i, val) in v.pcrs.iter().skip(1) {
            fewer.insert(b, i, val.to_vec()).unwrap();
        }
        assert!(matches!(
            v.verify_with(&v.attest, &v.signature, &fewer, &v.nonce),
            Err(QuoteError::PcrSelectionMismatch { .. })
        ));
        let mut more = v.pcrs.clone();
        more.insert(HashAlg::Sha256, 23, vec![0; 32]).unwrap();
        assert!(matches!(
            v.verify_with(&v.attest, &v.signature, &more, &v.nonce),
            Err(QuoteError::PcrSelectionMismatch { .. })
        ));
    }
}

#[test]
fn every_signature_byte_matters() {
    for v in all() {
        // Past the sigAlg/hash/size header every flipped byte must break the signature.
        for i in 0..v.signature.len() {
            let mut sig = v.signature.clone();
            sig[i] ^= 0x01;
            let err = v.verify_with(&v.attest, &sig, &v.pcrs, &v.nonce).unwrap_err();
            assert!(
                matches!(err.code(), DenialCode::SignatureInvalid | DenialCode::QuoteMalformed),
                "{} byte {i}: {err}",
                v.name
            );
        }
        let mut sig = v.signature.clone();
        let last = sig.len() - 1;
        sig[last] ^= 0x80;
        let err = v.verify_with(&v.attest, &sig, &v.pcrs, &v.nonce).unwrap_err();
        assert!(matches!(err, QuoteError::Signature(SignatureError::Invalid(_))), "{}: {err}", v.name);
    }
}

#[test]
fn every_attest_byte_matters() {
    for v in all() {
        for i in 0..v.attest.len() {
            let mut attest = v.attest.clone();
            attest[i] ^= 0x01;
            let err = v.verify_with(&attest, &v.signature, &v.pcrs, &v.nonce).unwrap_err();
            assert!(
                matches!(err.code(), DenialCode::SignatureInvalid | DenialCode::QuoteMalformed),
                "{} byte {i}: {err}",
                v.name
            );
        }
    }
}

#[test]
fn selection_other_than_requested_fails() {
    for v in all() {
        let signed = Attest::parse_quote(&v.attest).unwrap().quote.pcr_select;
        let other = PcrSelection::new(vec![PcrBank::new(HashAlg::Sha256, 0..=6).unwrap()]).unwrap();
        let ev = QuoteEvidence { attest: &v.attest, signature: &v.signature, pcrs: &v.pcrs };
        let opts = QuoteOptions { expected_selection: Some(&other), ..Default::default() };
        let err = verify_quote(&v.ak(), &ev, &v.nonce, &opts).unwrap_err();
        assert!(matches!(err, QuoteError::SelectionNotRequested { .. }), "{}: {err}", v.name);
        let opts = QuoteOptions { expected_selection: Some(&signed), ..Default::default() };
        verify_quote(&v.ak(), &ev, &v.nonce, &opts).unwrap();
    }
}

#[test]
fn quote_by_another_ak_fails() {
    let rsa = load("rsa");
    let pss = load("rsapss");
    // rsapss's AK fixes RSAPSS; an RSASSA quote is refused before any maths.
    let ev = QuoteEvidence { attest: &rsa.attest, signature: &rsa.signature, pcrs: &rsa.pcrs };
    let err = verify_quote(&pss.ak(), &ev, &rsa.nonce, &QuoteOptions::default()).unwrap_err();
    assert!(matches!(err, QuoteError::Signature(SignatureError::SchemeMismatch { .. })), "{err}");
    // An ECC quote under an RSA AK.
    let ecc = load("ecc");
    let ev = QuoteEvidence { attest: &ecc.attest, signature: &ecc.signature, pcrs: &ecc.pcrs };
    assert_eq!(
        verify_quote(&rsa.ak(), &ev, &ecc.nonce, &QuoteOptions::default()).unwrap_err().code(),
        DenialCode::SignatureInvalid
    );
}

#[test]
fn clock_must_not_regress() {
    let v = load("rsa");
    let clock = Attest::parse_quote(&v.attest).unwrap().clock_info;
    let ev = QuoteEvidence { attest: &v.attest, signature: &v.signature, pcrs: &v.pcrs };
    let later = ClockInfo { clock: clock.clock + 1, ..clock };
    let opts = QuoteOptions { previous_clock: Some(&later), ..Default::default() };
    let err = verify_quote(&v.ak(), &ev, &v.nonce, &opts).unwrap_err();
    assert_eq!(err.code(), DenialCode::ClockRegressed);
    let opts = QuoteOptions { previous_clock: Some(&clock), ..Default::default() };
    verify_quote(&v.ak(), &ev, &v.nonce, &opts).unwrap();
}

#[test]
fn truncation_and_trailing_bytes_never_panic() {
    for v in all() {
        for n in 0..v.attest.len() {
            assert_eq!(
                v.verify_with(&v.attest[..n], &v.signature, &v.pcrs, &v.nonce).unwrap_err().code(),
                DenialCode::QuoteMalformed
            );
        }
        for n in 0..v.signature.len() {
            assert_eq!(
                v.verify_with(&v.attest, &v.signature[..n], &v.pcrs, &v.nonce).unwrap_err().code(),
                DenialCode::QuoteMalformed
            );
        }
        for n in 0..v.ak.len() {
            assert!(Public::from_tpm2b(&v.ak[..n]).is_err());
        }
        let mut long = v.attest.clone();
        long.push(0);
        assert!(matches!(
            v.verify_with(&long, &v.signature, &v.pcrs, &v.nonce),
            Err(QuoteError::AttestMalformed(runtrust_attestation::ParseError::TrailingBytes { count: 1, .. }))
        ));
        let mut long = v.signature.clone();
        long.push(0);
        assert!(matches!(v.verify_with(&v.attest, &long, &v.pcrs, &v.nonce), Err(QuoteError::SignatureMalformed(_))));
        let mut long = v.ak.clone();
        long.push(0);
        assert!(Public::from_tpm2b(&long).is_err());
    }
}

#[test]
fn ak_attributes_are_enforced() {
    use runtrust_attestation::tpm2::ObjectAttributes as A;
    let v = load("rsa");
    // objectAttributes sit at TPM2B size (2) + type (2) + nameAlg (2).
    let attr_at = 6;
    let orig = u32::from_be_bytes(v.ak[attr_at..attr_at + 4].try_into().unwrap());
    let with = |attrs: u32| {
        let mut b = v.ak.clone();
        b[attr_at..attr_at + 4].copy_from_slice(&attrs.to_be_bytes());
        Public::from_tpm2b(&b).unwrap()
    };
    for bit in [A::RESTRICTED, A::SIGN_ENCRYPT, A::FIXED_TPM, A::FIXED_PARENT, A::SENSITIVE_DATA_ORIGIN] {
        let err = check_ak(&with(orig & !bit), false).unwrap_err();
        assert!(matches!(err, AkError::MissingAttribute(..)), "{err}");
        assert_eq!(err.code(), DenialCode::AkInvalid);
    }
    assert!(matches!(check_ak(&with(orig | A::DECRYPT), false), Err(AkError::ForbiddenAttribute("decrypt", _))));
    // Reserved bits do not even parse.
    let mut b = v.ak.clone();
    b[attr_at..attr_at + 4].copy_from_slice(&(orig | 1 << 3).to_be_bytes());
    assert!(Public::from_tpm2b(&b).is_err());
}

#[test]
fn sha1_needs_explicit_permission() {
    use runtrust_attestation::signing::check_scheme;
    use runtrust_attestation::tpm2::SigScheme;
    let v = load("rsa");
    let ak = v.ak();
    let sig = Signature::Rsa { scheme: SigScheme::RsaSsa(HashAlg::Sha1), sig: vec![0; 256] };
    assert_eq!(check_scheme(&ak.key, None, &sig, false), Err(SignatureError::Sha1NotAllowed));
    assert!(check_scheme(&ak.key, None, &sig, true).is_ok());
}
