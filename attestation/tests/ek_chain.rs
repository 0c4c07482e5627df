//! EK certificate path validation (docs/design.md §5 step 2) against swtpm's real EK certificates and local CA
//! (tests/vectors/ekcerts, captured by tests/vectors/capture.sh) and against synthetic chains made with openssl
//! (tests/vectors/ekchain, made by tests/vectors/ekchain/make.sh; tests/vectors/ekpolicy, made by
//! tests/vectors/ekpolicy/make.sh, for certificate policies and SHA-1).

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;

use runtrust_attestation::ek::{
    verify_ca_certificate, verify_ek_certificate, EkError, TrustAnchors, VerifiedEk, MAX_PATH_LEN,
};
use runtrust_attestation::{DenialCode, Public};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey as SpkiKey;

/// 2027-01-01T00:00:00Z: every test certificate is valid then (swtpm's from 2026-11-21, synthetic from 2026-01-01).
const T2027: i64 = 1_798_761_600;
/// 2026-11-21T00:00:00Z: before swtpm's certificates (2026-11-21T22:24:10Z and later).
const BEFORE_SWTPM: i64 = 1_795_219_200;
/// 2031-01-01T00:00:00Z: after the synthetic EK certificates (2030-01-01), before their CAs (2036-01-01).
const T2031: i64 = 1_924_992_000;

fn read(dir: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(dir).join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn swtpm(name: &str) -> Vec<u8> {
    read("ekcerts", name)
}

fn synth(name: &str) -> Vec<u8> {
    read("ekchain", &format!("{name}.der"))
}

fn policy(name: &str) -> Vec<u8> {
    read("ekpolicy", &format!("{name}.der"))
}

fn rsa_ek() -> Public {
    Public::from_tpm2b(&swtpm("ek-rsa.pub")).unwrap()
}

fn ecc_ek() -> Public {
    Public::from_tpm2b(&swtpm("ek-ecc.pub")).unwrap()
}

/// A TPM2B_PUBLIC shaped like a TCG default EK template (Part 2 §12.2.4) holding the key of `cert_der`, so
/// that synthetic chains can be checked end to end. `rsa_exponent` overrides the exponent field (0 = 65537).
fn ek_public_of(cert_der: &[u8], rsa_exponent: u32) -> Public {
    let (_, cert) = X509Certificate::from_der(cert_der).unwrap();
    let mut t = Vec::new();
    let tpm2b = |t: &mut Vec<u8>, b: &[u8]| {
        t.extend((b.len() as u16).to_be_bytes());
        t.extend(b);
    };
    match cert.public_key().parsed().unwrap() {
        SpkiKey::RSA(k) => {
            let n: &[u8] = &k.modulus[k.modulus.iter().position(|&b| b != 0).unwrap()..];
            t.extend([0x00, 0x01, 0x00, 0x0b]); // TPM_ALG_RSA, nameAlg SHA-256
            t.extend(0x0003_00b2u32.to_be_bytes()); // fixedTPM|fixedParent|sensitiveDataOrigin|adminWithPolicy|restricted|decrypt
            tpm2b(&mut t, &[]);
            t.extend([0x00, 0x06, 0x00, 0x80, 0x00, 0x43]); // AES-128-CFB
            t.extend([0x00, 0x10]); // scheme NULL
            t.extend(((n.len() * 8) as u16).to_be_bytes());
            t.extend(rsa_exponent.to_be_bytes());
            tpm2b(&mut t, n);
        }
        SpkiKey::EC(point) => {
            let p = point.data();
            assert_eq!(p.len(), 65, "P-256 uncompressed point");
            t.extend([0x00, 0x23, 0x00, 0x0b]); // TPM_ALG_ECC, nameAlg SHA-256
            t.extend(0x0003_00b2u32.to_be_bytes());
            tpm2b(&mut t, &[]);
            t.extend([0x00, 0x06, 0x00, 0x80, 0x00, 0x43]);
            t.extend([0x00, 0x10, 0x00, 0x03, 0x00, 0x10]); // scheme NULL, NIST P-256, kdf NULL
            tpm2b(&mut t, &p[1..33]);
            tpm2b(&mut t, &p[33..]);
        }
        other => panic!("unexpected key {other:?}"),
    }
    let mut b = (t.len() as u16).to_be_bytes().to_vec();
    b.extend(t);
    Public::from_tpm2b(&b).unwrap()
}

/// No certificates (an empty intermediate or anchor list).
const NONE: &[Vec<u8>] = &[];

fn verify<I: AsRef<[u8]>, A: AsRef<[u8]>>(
    leaf: &[u8],
    intermediates: &[I],
    anchor_certs: &[A],
    ek: &Public,
    now: i64,
) -> Result<VerifiedEk, EkError> {
    let intermediates: Vec<Vec<u8>> = intermediates.iter().map(|c| c.as_ref().to_vec()).collect();
    let anchors = TrustAnchors::from_der_certs(anchor_certs.iter().map(|c| c.as_ref().to_vec()).collect()).unwrap();
    verify_ek_certificate(leaf, &intermediates, &anchors, ek, now)
}

/// The error, after checking that it is `ek_untrusted`.
fn denied(r: Result<VerifiedEk, EkError>) -> EkError {
    let e = r.expect_err("expected a denial");
    assert_eq!(e.code(), DenialCode::EkUntrusted, "{e}");
    e
}

/// The error of any result, after checking that it is `ek_untrusted`.
fn any_denied<T: std::fmt::Debug>(r: Result<T, EkError>) -> EkError {
    let e = r.expect_err("expected a denial");
    assert_eq!(e.code(), DenialCode::EkUntrusted, "{e}");
    e
}

fn sha256(b: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, b).as_ref().try_into().unwrap()
}

#[test]
fn swtpm_ek_certificates_validate_through_the_intermediate_to_the_root() {
    let root = swtpm("ca-root.der");
    let intermediate = swtpm("ca-intermediate.der");
    for (cert, ek, serial) in [("ek-rsa.der", rsa_ek(), "02"), ("ek-ecc.der", ecc_ek(), "04")] {
        let der = swtpm(cert);
        let v = verify(&der, &[&intermediate], &[&root], &ek, T2027).unwrap_or_else(|e| panic!("{cert}: {e}"));
        assert_eq!(v.chain_subjects, ["CN=unknown", "CN=swtpm-localca", "CN=swtpm-localca-rootca"], "{cert}");
        assert_eq!(v.issuer, "CN=swtpm-localca");
        assert_eq!(v.serial_hex, serial);
        assert_eq!(v.fingerprint_sha256, sha256(&der));
        assert_eq!(v.anchor_fingerprint_sha256, sha256(&root));
    }
}

#[test]
fn swtpm_intermediate_alone_is_a_sufficient_anchor() {
    let intermediate = swtpm("ca-intermediate.der");
    for (cert, ek) in [("ek-rsa.der", rsa_ek()), ("ek-ecc.der", ecc_ek())] {
        for sent in [vec![], vec![&intermediate]] {
            let v = verify(&swtpm(cert), &sent, &[&intermediate], &ek, T2027).unwrap();
            assert_eq!(v.chain_subjects, ["CN=unknown", "CN=swtpm-localca"], "{cert}");
            assert_eq!(v.anchor_fingerprint_sha256, sha256(&intermediate));
        }
    }
}

#[test]
fn unrelated_certificates_and_order_do_not_matter() {
    let root = swtpm("ca-root.der");
    let intermediate = swtpm("ca-intermediate.der");
    let noise = [swtpm("platform.der"), synth("root-ec"), root.clone(), synth("int-ec")];
    let mut sent = noise.to_vec();
    sent.push(intermediate.clone());
    let v = verify(&swtpm("ek-rsa.der"), &sent, &[synth("root-rsa"), root.clone()], &rsa_ek(), T2027).unwrap();
    assert_eq!(v.chain_subjects.len(), 3);
    // An impostor anchor with the issuer's name is tried, fails, and the real path is still found.
    let v = verify(&swtpm("ek-rsa.der"), &[intermediate], &[synth("impostor-swtpm-localca"), root], &rsa_ek(), T2027)
        .unwrap();
    assert_eq!(v.chain_subjects.last().map(String::as_str), Some("CN=swtpm-localca-rootca"));
}

#[test]
fn missing_intermediate_is_denied_naming_the_issuer() {
    let e = denied(verify(&swtpm("ek-rsa.der"), NONE, &[swtpm("ca-root.der")], &rsa_ek(), T2027));
    assert!(matches!(&e, EkError::NoIssuer { issuer, .. } if issuer == "CN=swtpm-localca"), "{e:?}");
    assert_eq!(
        e.to_string(),
        "no trust anchor or intermediate certificate for issuer CN=swtpm-localca of EK certificate CN=unknown"
    );
}

#[test]
fn wrong_anchors_are_denied() {
    let intermediate = swtpm("ca-intermediate.der");
    // Another CA, a non-CA certificate: nothing carries the issuer's name.
    for anchor in [synth("root-rsa"), swtpm("platform.der")] {
        let e = denied(verify(&swtpm("ek-rsa.der"), &[&intermediate], &[anchor], &rsa_ek(), T2027));
        assert!(
            matches!(&e, EkError::NoIssuer { cert, issuer, .. } if cert == "CN=swtpm-localca" && issuer == "CN=swtpm-localca-rootca"),
            "{e:?}"
        );
    }
    // The issuer's name as text, but UTF8String where the certificate has PrintableString: names are compared
    // as DER, and the message says so.
    let e = denied(verify(&swtpm("ek-rsa.der"), NONE, &[synth("utf8-swtpm-localca")], &rsa_ek(), T2027));
    assert_eq!(
        e.to_string(),
        "no trust anchor or intermediate certificate for issuer CN=swtpm-localca of EK certificate CN=unknown \
         (one has that name as text, but its DER encoding differs)"
    );
    // A CA with the right name and the wrong key.
    let e = denied(verify(&swtpm("ek-rsa.der"), NONE, &[synth("impostor-swtpm-localca")], &rsa_ek(), T2027));
    assert_eq!(
        e.to_string(),
        "EK certificate CN=unknown: signature by CN=swtpm-localca (sha256WithRSAEncryption) does not verify"
    );
}

#[test]
fn ek_public_must_match_the_certificate() {
    let root = swtpm("ca-root.der");
    let intermediate = swtpm("ca-intermediate.der");
    let check = |cert: &str, ek: &Public, expect: &str| {
        let e = denied(verify(&swtpm(cert), &[&intermediate], &[&root], ek, T2027));
        assert!(matches!(e, EkError::KeyMismatch(_)), "{e:?}");
        assert!(e.to_string().contains(expect), "{e}");
    };
    check("ek-rsa.der", &ecc_ek(), "the EK is NIST P-384");
    check("ek-ecc.der", &rsa_ek(), "the EK is RSA-2048");
    // Another RSA key; the same modulus with another exponent.
    check("ek-rsa.der", &ek_public_of(&synth("ek-rsa-pss"), 0), "RSA modulus differs");
    let rsa_der = swtpm("ek-rsa.der");
    check("ek-rsa.der", &ek_public_of(&rsa_der, 3), "RSA exponent differs (certificate 0x010001, EK 0x03)");
    // The swtpm ECC EK is P-384; a P-256 key does not match it.
    check(
        "ek-ecc.der",
        &ek_public_of(&synth("ek-ec"), 0),
        "the certificate's curve is NIST P-384, the EK's is NIST P-256",
    );
    // An explicit exponent of 65537 is the same key as the default (0).
    verify(&rsa_der, &[&intermediate], &[&root], &ek_public_of(&rsa_der, 65_537), T2027).unwrap();
}

#[test]
fn validity_periods_are_enforced_for_every_certificate() {
    let e = denied(verify(
        &swtpm("ek-rsa.der"),
        &[swtpm("ca-intermediate.der")],
        &[swtpm("ca-root.der")],
        &rsa_ek(),
        BEFORE_SWTPM,
    ));
    assert_eq!(
        e.to_string(),
        "EK certificate CN=unknown is not valid before 2026-11-21T22:24:11Z (verification time 2026-11-21T00:00:00Z)"
    );

    let leaf = synth("ek-ec");
    let e = denied(verify(&leaf, &[synth("int-ec")], &[synth("root-ec")], &ek_public_of(&leaf, 0), T2031));
    assert!(
        matches!(&e, EkError::Expired { cert, not_after, .. } if cert == "EK certificate CN=runtrust test EK P-256" && not_after == "2030-01-01T00:00:00Z"),
        "{e:?}"
    );

    // The anchor too: it expired on 2026-06-01, before the certificate it issued.
    let leaf = synth("ek-under-expired-root");
    let e = denied(verify(&leaf, NONE, &[synth("root-expired")], &ek_public_of(&leaf, 0), T2027));
    assert_eq!(
        e.to_string(),
        "CN=runtrust test root expired expired at 2026-06-01T00:00:00Z (verification time 2027-01-01T00:00:00Z)"
    );

    // A verification time no calendar holds.
    let e = denied(verify(&leaf, NONE, &[synth("root-expired")], &ek_public_of(&leaf, 0), i64::MAX));
    assert!(matches!(e, EkError::InvalidTime(i64::MAX)), "{e:?}");
}

#[test]
fn tampered_certificates_do_not_verify() {
    let root = swtpm("ca-root.der");
    let intermediate = swtpm("ca-intermediate.der");
    let leaf = swtpm("ek-rsa.der");

    // Last byte of the signature value.
    let mut bad = leaf.clone();
    *bad.last_mut().unwrap() ^= 0x01;
    let e = denied(verify(&bad, &[&intermediate], &[&root], &rsa_ek(), T2027));
    assert_eq!(
        e.to_string(),
        "EK certificate CN=unknown: signature by CN=swtpm-localca (sha256WithRSAEncryption) does not verify"
    );

    // A byte of the signed part: the serial number (the leaf's is one byte, 0x02, at offset 15).
    let mut bad = leaf.clone();
    assert_eq!(&bad[13..16], &[0x02, 0x01, 0x02]);
    bad[15] = 0x07;
    let e = denied(verify(&bad, &[&intermediate], &[&root], &rsa_ek(), T2027));
    assert!(matches!(e, EkError::BadSignature { .. }), "{e:?}");

    // The intermediate's signature, verified with the root's key.
    let mut bad_int = intermediate.clone();
    *bad_int.last_mut().unwrap() ^= 0x80;
    let e = denied(verify(&leaf, &[bad_int], &[root], &rsa_ek(), T2027));
    assert_eq!(
        e.to_string(),
        "CN=swtpm-localca: signature by CN=swtpm-localca-rootca (sha256WithRSAEncryption) does not verify"
    );

    // ECDSA.
    let ec_leaf = synth("ek-ec");
    let mut bad = ec_leaf.clone();
    let n = bad.len();
    bad[n - 5] ^= 0x01;
    let e = denied(verify(&bad, &[synth("int-ec")], &[synth("root-ec")], &ek_public_of(&ec_leaf, 0), T2027));
    assert!(
        matches!(&e, EkError::BadSignature { algorithm, issuer, .. } if *algorithm == "ecdsa-with-SHA256" && issuer == "CN=runtrust test intermediate P-256"),
        "{e:?}"
    );
}

#[test]
fn issuers_must_be_cas_with_keycertsign() {
    let root = synth("root-rsa");
    let leaf = synth("ek-under-notca");
    let e = denied(verify(&leaf, &[synth("notca")], &[&root], &ek_public_of(&leaf, 0), T2027));
    assert_eq!(
        e.to_string(),
        "CN=runtrust test not a CA issued EK certificate CN=runtrust test EK under non-CA but is not a CA \
         (basicConstraints cA is not TRUE)"
    );
    // A non-CA configured as the anchor is no better.
    let e = denied(verify(&leaf, NONE, &[synth("notca")], &ek_public_of(&leaf, 0), T2027));
    assert!(matches!(e, EkError::NotCa { .. }), "{e:?}");

    let leaf = synth("ek-under-no-keycertsign");
    let e = denied(verify(&leaf, &[synth("no-keycertsign")], &[root], &ek_public_of(&leaf, 0), T2027));
    assert!(
        matches!(&e, EkError::NoKeyCertSign { issuer, .. } if issuer == "CN=runtrust test CA without keyCertSign"),
        "{e:?}"
    );
}

#[test]
fn path_length_constraint_is_enforced() {
    let leaf = synth("ek-under-pathlen0");
    let ek = ek_public_of(&leaf, 0);
    let e = denied(verify(&leaf, &[synth("int-under-pathlen0")], &[synth("root-pathlen0")], &ek, T2027));
    assert_eq!(
        e.to_string(),
        "CN=runtrust test root pathlen 0 allows 0 intermediate CA certificates below it (pathLenConstraint), \
         the path has 1"
    );
    // With the intermediate as the anchor, the root's constraint is not on the path.
    verify(&leaf, NONE, &[synth("int-under-pathlen0")], &ek, T2027).unwrap();
}

#[test]
fn rsa_pss_signatures() {
    let root = synth("root-rsa");
    for name in ["ek-rsa-pss", "ek-rsa-pss384"] {
        let leaf = synth(name);
        let v = verify(&leaf, NONE, &[&root], &ek_public_of(&leaf, 0), T2027).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.chain_subjects.last().map(String::as_str), Some("CN=runtrust test root RSA"));
    }
    // ring verifies PSS only with salt length = hash length.
    let leaf = synth("ek-rsa-pss-salt20");
    let e = denied(verify(&leaf, NONE, &[root], &ek_public_of(&leaf, 0), T2027));
    assert!(matches!(e, EkError::BadAlgorithmParameters { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "EK certificate CN=runtrust test EK RSA PSS salt 20: rsassa-pss (1.2.840.113549.1.1.10) parameters select \
         salt length 20: only salt length = hash length (32) is supported"
    );
}

#[test]
fn ecdsa_chain() {
    // root P-384 --ecdsa-with-SHA384--> intermediate P-256 --ecdsa-with-SHA256--> EK P-256.
    let leaf = synth("ek-ec");
    let v = verify(&leaf, &[synth("int-ec")], &[synth("root-ec")], &ek_public_of(&leaf, 0), T2027).unwrap();
    assert_eq!(
        v.chain_subjects,
        ["CN=runtrust test EK P-256", "CN=runtrust test intermediate P-256", "CN=runtrust test root P-384"]
    );
    // The EC point must match too.
    let e = denied(verify(&leaf, &[synth("int-ec")], &[synth("root-ec")], &ek_public_of(&synth("int-ec"), 0), T2027));
    assert_eq!(e.to_string(), "EK certificate key does not equal the EK public: NIST P-256 point differs");
}

#[test]
fn unknown_critical_extension_is_refused_and_tcg_critical_ones_are_not() {
    let leaf = synth("ek-rsa-critical");
    let e = denied(verify(&leaf, NONE, &[synth("root-rsa")], &ek_public_of(&leaf, 0), T2027));
    assert_eq!(
        e.to_string(),
        "EK certificate CN=runtrust test EK unknown critical extension has an unknown critical extension \
         1.3.6.1.4.1.55555.1 (RFC 5280 §4.2)"
    );
    // swtpm's and the synthetic EK certificates have critical subjectAltName, basicConstraints and keyUsage:
    // accepted by the tests above.
}

#[test]
fn platform_certificate_is_not_an_ek_certificate() {
    // Same key as the RSA EK, same issuer, but extendedKeyUsage tcg-kp-PlatformCertificate.
    let e = denied(verify(
        &swtpm("platform.der"),
        &[swtpm("ca-intermediate.der")],
        &[swtpm("ca-root.der")],
        &rsa_ek(),
        T2027,
    ));
    assert!(matches!(e, EkError::NotEkCertificate { .. }), "{e:?}");
}

#[test]
fn loops_and_long_paths_are_bounded() {
    // loop A is issued by loop B, loop B by loop A: the search ends, naming the unresolvable issuer.
    let leaf = synth("ek-under-loop");
    let ek = ek_public_of(&leaf, 0);
    let e = denied(verify(&leaf, &[synth("loop-a"), synth("loop-b")], &[synth("root-rsa")], &ek, T2027));
    assert!(matches!(e, EkError::NoIssuer { .. }), "{e:?}");

    // EK + long-7 .. long-1 + root = 9 certificates, one more than allowed.
    let leaf = synth("ek-under-long");
    let ek = ek_public_of(&leaf, 0);
    let longs: Vec<Vec<u8>> = (1..=7).rev().map(|i| synth(&format!("long-{i}"))).collect();
    assert_eq!(MAX_PATH_LEN, 8);
    let e = denied(verify(&leaf, &longs, &[synth("root-rsa")], &ek, T2027));
    assert!(matches!(e, EkError::PathTooLong { max: 8, .. }), "{e:?}");
    // Anchored at long-1 it is 8 certificates: accepted, in any order of the intermediates.
    let mut shuffled = longs.clone();
    shuffled.reverse();
    let v = verify(&leaf, &shuffled, &[synth("long-1")], &ek, T2027).unwrap();
    assert_eq!(v.chain_subjects.len(), 8);
    assert_eq!(v.chain_subjects[1], "CN=runtrust test long 7");
}

#[test]
fn every_truncation_and_any_trailing_byte_is_an_error() {
    let root = swtpm("ca-root.der");
    let intermediate = swtpm("ca-intermediate.der");
    let ek = rsa_ek();
    for der in [
        swtpm("ek-rsa.der"),
        swtpm("ek-ecc.der"),
        intermediate.clone(),
        root.clone(),
        synth("ek-rsa-pss"),
        synth("ek-ec"),
    ] {
        for len in 0..der.len() {
            let cut = &der[..len];
            let as_leaf = verify(cut, &[&intermediate], &[&root], &ek, T2027);
            assert!(matches!(as_leaf, Err(EkError::Malformed { .. })), "len {len}: {as_leaf:?}");
            let as_intermediate = verify(&swtpm("ek-rsa.der"), &[cut.to_vec()], &[&root], &ek, T2027);
            assert!(as_intermediate.is_err(), "len {len}");
            assert!(TrustAnchors::from_der_certs(vec![cut.to_vec()]).is_err(), "len {len}");
        }
        let mut long = der.clone();
        long.push(0);
        let e = TrustAnchors::from_der_certs(vec![long]).unwrap_err();
        assert_eq!(e.to_string(), "trust anchor 1: 1 trailing bytes after the certificate");
    }
    let mut long = swtpm("ek-rsa.der");
    long.extend([0x05, 0x00]);
    let e = denied(verify(&long, &[intermediate], &[root], &ek, T2027));
    assert!(matches!(e, EkError::TrailingBytes { count: 2, .. }), "{e:?}");
}

#[test]
fn trailing_data_inside_the_certificate_sequence_is_refused() {
    // Grow the outer SEQUENCE (long form, 2 length bytes) by two bytes and append NULL inside it.
    let der = swtpm("ek-rsa.der");
    assert_eq!(der[..2], [0x30, 0x82]);
    let len = usize::from(u16::from_be_bytes([der[2], der[3]]));
    let mut bad = vec![0x30, 0x82];
    bad.extend(((len + 2) as u16).to_be_bytes());
    bad.extend(&der[4..]);
    bad.extend([0x05, 0x00]);
    let e = denied(verify(&bad, &[swtpm("ca-intermediate.der")], &[swtpm("ca-root.der")], &rsa_ek(), T2027));
    assert!(matches!(e, EkError::Malformed { .. }), "{e:?}");
}

#[test]
fn pem_anchors() {
    let anchors = TrustAnchors::from_pem(&read("ekchain", "roots.pem")).unwrap();
    assert_eq!(anchors.len(), 2);
    assert_eq!(anchors.subjects(), ["CN=runtrust test root RSA", "CN=runtrust test root P-384"]);
    assert_eq!(anchors.der_certs()[0], synth("root-rsa"));
    let leaf = synth("ek-rsa-pss");
    verify_ek_certificate(&leaf, NONE, &anchors, &ek_public_of(&leaf, 0), T2027).unwrap();
    let leaf = synth("ek-ec");
    verify_ek_certificate(&leaf, &[synth("int-ec")], &anchors, &ek_public_of(&leaf, 0), T2027).unwrap();

    for (pem, expect) in [
        (&b""[..], "EK trust anchors (PEM): no CERTIFICATE block"),
        (b"not pem at all\n", "EK trust anchors (PEM): no CERTIFICATE block"),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "EK trust anchors (PEM): block 1 is \"PRIVATE KEY\", not CERTIFICATE",
        ),
    ] {
        let e = TrustAnchors::from_pem(pem).unwrap_err();
        assert_eq!(e.to_string(), expect);
        assert_eq!(e.code(), DenialCode::EkUntrusted);
    }
    // Bad base64, an unterminated block, base64 of something that is not a certificate.
    for pem in [
        &b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"[..],
        b"-----BEGIN CERTIFICATE-----\nMAA=\n",
        b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
    ] {
        assert!(TrustAnchors::from_pem(pem).is_err());
    }
}

#[test]
fn no_anchors_and_too_many_intermediates() {
    let leaf = swtpm("ek-rsa.der");
    let empty = TrustAnchors::from_der_certs(vec![]).unwrap();
    assert!(empty.is_empty());
    let e = denied(verify_ek_certificate(&leaf, NONE, &empty, &rsa_ek(), T2027));
    assert_eq!(e, EkError::NoAnchors);

    let many = vec![swtpm("ca-intermediate.der"); 17];
    let e = denied(verify(&leaf, &many, &[swtpm("ca-root.der")], &rsa_ek(), T2027));
    assert!(matches!(e, EkError::TooManyIntermediates { count: 17, max: 16 }), "{e:?}");
}

#[test]
fn certificate_policies_are_accepted_when_well_formed() {
    // Intermediate: critical certificatePolicies anyPolicy (as STMicro's). EK: critical certificatePolicies with
    // an explicit policy, a CPS pointer and a user notice (as Intel's CA).
    let root = policy("root");
    let leaf = policy("ek-policies");
    let v = verify(&leaf, &[policy("int-any-policy")], &[&root], &ek_public_of(&leaf, 0), T2027).unwrap();
    assert_eq!(
        v.chain_subjects,
        [
            "CN=runtrust test EK with policies",
            "CN=runtrust test intermediate anyPolicy",
            "CN=runtrust test policy root"
        ]
    );
    let anchors = TrustAnchors::from_der_certs(vec![root.clone()]).unwrap();
    verify_ca_certificate(&policy("int-any-policy"), NONE, &anchors, T2027).unwrap();

    // policyConstraints (requireExplicitPolicy) could make the policies matter: refused.
    let leaf = policy("ek-under-policy-constraints");
    let e = denied(verify(&leaf, &[policy("int-policy-constraints")], &[&root], &ek_public_of(&leaf, 0), T2027));
    assert_eq!(
        e.to_string(),
        "CN=runtrust test intermediate policyConstraints: extension policyConstraints (2.5.29.36) is not supported: \
         it can require an explicit certificate policy (RFC 5280 §4.2.1.11)"
    );
}

#[test]
fn sha1_signed_certificates_are_refused_everywhere() {
    let root = policy("root");
    let leaf = policy("ek-under-int-sha1");
    let ek = ek_public_of(&leaf, 0);
    // An intermediate on the path (the EK under it is sha256-signed).
    let e = denied(verify(&leaf, &[policy("int-sha1")], &[&root], &ek, T2027));
    assert_eq!(
        e.to_string(),
        "CN=runtrust test intermediate SHA-1 is SHA-1-signed (sha1WithRSAEncryption): SHA-1 certificate \
         signatures are refused"
    );
    let anchors = TrustAnchors::from_der_certs(vec![root.clone()]).unwrap();
    let e = any_denied(verify_ca_certificate(&policy("int-sha1"), NONE, &anchors, T2027));
    assert!(matches!(e, EkError::WeakHashSigned { hash: "SHA-1", .. }), "{e:?}");
    // The EK certificate, PKCS #1 v1.5 and RSASSA-PSS.
    for (name, algorithm) in [("ek-sha1", "sha1WithRSAEncryption"), ("ek-pss-sha1", "RSASSA-PSS SHA-1")] {
        let leaf = policy(name);
        let e = denied(verify(&leaf, NONE, &[&root], &ek_public_of(&leaf, 0), T2027));
        assert!(
            matches!(&e, EkError::WeakHashSigned { cert, algorithm: a, hash: "SHA-1" } if cert.starts_with("EK certificate CN=runtrust test EK") && *a == algorithm),
            "{e:?}"
        );
    }
    // Anchors, self-signed roots included: all or nothing, or loaded with the refusals listed.
    let certs = vec![root.clone(), policy("root-sha1"), policy("root-ec-sha1"), policy("int-sha1")];
    let e = any_denied(TrustAnchors::from_der_certs(certs.clone()));
    assert_eq!(
        e.to_string(),
        "3 of 4 EK trust anchors refused: \
         trust anchor 2: CN=runtrust test root SHA-1 is SHA-1-signed (sha1WithRSAEncryption): SHA-1 certificate \
         signatures are refused; \
         trust anchor 3: CN=runtrust test root ecdsa-with-SHA1 is SHA-1-signed (ecdsa-with-SHA1): SHA-1 certificate \
         signatures are refused; \
         trust anchor 4: CN=runtrust test intermediate SHA-1 is SHA-1-signed (sha1WithRSAEncryption): SHA-1 \
         certificate signatures are refused"
    );
    let (anchors, refused) = TrustAnchors::load_der_certs(certs).unwrap();
    assert_eq!(anchors.der_certs(), [root]);
    let refused: Vec<(usize, &str)> = refused.iter().map(|r| (r.position, r.subject.as_str())).collect();
    assert_eq!(
        refused,
        [
            (2, "CN=runtrust test root SHA-1"),
            (3, "CN=runtrust test root ecdsa-with-SHA1"),
            (4, "CN=runtrust test intermediate SHA-1")
        ]
    );
}

#[test]
fn ca_certificates_validate_like_ek_certificates() {
    let root = TrustAnchors::from_der_certs(vec![swtpm("ca-root.der")]).unwrap();
    let v = verify_ca_certificate(&swtpm("ca-intermediate.der"), NONE, &root, T2027).unwrap();
    assert_eq!(v.chain_subjects, ["CN=swtpm-localca", "CN=swtpm-localca-rootca"]);
    assert_eq!(v.anchor_fingerprint_sha256, sha256(&swtpm("ca-root.der")));
    // A root checked against itself: its self-signature is verified.
    verify_ca_certificate(&swtpm("ca-root.der"), NONE, &root, T2027).unwrap();

    // The certificate must be a CA.
    let e = any_denied(verify_ca_certificate(&swtpm("ek-rsa.der"), &[swtpm("ca-intermediate.der")], &root, T2027));
    assert_eq!(e.to_string(), "CN=unknown is not a CA certificate: basicConstraints cA is not TRUE");
    let rsa_root = TrustAnchors::from_der_certs(vec![synth("root-rsa")]).unwrap();
    let e = any_denied(verify_ca_certificate(&synth("no-keycertsign"), NONE, &rsa_root, T2027));
    assert_eq!(
        e.to_string(),
        "CN=runtrust test CA without keyCertSign is not a CA certificate: its keyUsage lacks keyCertSign"
    );
    // It counts against its issuers' pathLenConstraint: root pathlen 0 allows no CA below it.
    let pl0 = TrustAnchors::from_der_certs(vec![synth("root-pathlen0")]).unwrap();
    let e = any_denied(verify_ca_certificate(&synth("int-under-pathlen0"), NONE, &pl0, T2027));
    assert!(matches!(e, EkError::PathLenExceeded { path_len: 0, below: 1, .. }), "{e:?}");
    // Validity, at the verification time.
    let e = any_denied(verify_ca_certificate(&swtpm("ca-intermediate.der"), NONE, &root, BEFORE_SWTPM));
    assert!(matches!(e, EkError::NotYetValid { .. }), "{e:?}");
}
