//! Real TPM vendors' EK CA certificates: the 51 files of keylime's `tpm_cert_store` (Infineon, STMicro,
//! Nuvoton, Intel, Nationz, Alibaba Cloud vTPM, GlobalSign), kept in `shared/testdata/ek-ca` next to this
//! repository (see its README.md). The tests fail, never skip, when that directory is missing.
//!
//! Every certificate is loaded as a trust anchor and validated as a CA certificate against the others, and the
//! outcome of each is compared with a table, so that a change in what is accepted shows file by file.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;

use runtrust_attestation::ek::{verify_ca_certificate, EkError, TrustAnchors, VerifiedCa};
use x509_parser::prelude::{FromDer, X509Certificate};

/// 2027-01-01T00:00:00Z: inside the validity of every certificate that loads.
const T2027: i64 = 1_798_761_600;
/// 2030-06-01T00:00:00Z: after STM_RSA_01I..03I expired (2029-12-31), before their roots did.
const T2030_06: i64 = 1_906_502_400;
const VENDOR_CA_COUNT: usize = 51;

fn ca_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/ek-ca");
    assert!(
        dir.is_dir(),
        "{}: the vendor EK CA certificates are missing (keylime's tpm_cert_store, see \
         shared/testdata/ek-ca/README.md); these tests need them and do not skip",
        dir.display()
    );
    dir
}

/// Every `*.pem` of the directory, by file name (byte order), with its bytes.
fn vendor_files() -> Vec<(String, Vec<u8>)> {
    let dir = ca_dir();
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), fs::read(&p).unwrap()))
        .collect();
    files.sort();
    assert_eq!(files.len(), VENDOR_CA_COUNT, "{}: expected {VENDOR_CA_COUNT} PEM files", dir.display());
    files
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} is missing")).1
}

/// The DER of a one-certificate PEM file.
fn der(files: &[(String, Vec<u8>)], name: &str) -> Vec<u8> {
    let anchors = TrustAnchors::from_pem(file(files, name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(anchors.len(), 1, "{name}");
    anchors.der_certs()[0].clone()
}

fn subject(der: &[u8]) -> String {
    X509Certificate::from_der(der).unwrap().1.subject().to_string()
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// What happens to each file: loaded as an anchor (then what its own path gives, validated against every
/// loaded certificate as anchors), or refused.
const EXPECTED: &[(&str, &str)] = &[
    ("Alibaba_Cloud_vTPM_EK.pem", "anchor; issuer not in the store"),
    ("GS_TPM_RT.pem", "anchor; self-signed, verifies"),
    ("IFX1.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX15.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX2.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX3.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX4.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX5.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX8.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX_ECC_034.pem", "anchor; chains to INF_ECC_010RT.pem"),
    ("IFX_ECC_042.pem", "anchor; chains to INF_ECC_010RT.pem"),
    ("IFX_RSA_01I.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX_RSA_02I.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX_RSA_034.pem", "anchor; chains to INF_RSA_010RT.pem"),
    ("IFX_RSA_03I.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX_RSA_042.pem", "anchor; chains to INF_RSA_010RT.pem"),
    ("IFX_RSA_04I.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX_RSA_05I.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX_RSA_08I.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX_RSA_17I.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX_RSA_18I.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX_RSA_20I.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX_RSA_21I.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("IFX_RSA_RT.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("INF_ECC_010I.pem", "anchor; chains to INF_ECC_010RT.pem"),
    ("INF_ECC_010RT.pem", "anchor; self-signed, verifies"),
    ("INF_ECC_011.pem", "anchor; chains to INF_ECC_010RT.pem"),
    ("INF_RSA_010I.pem", "anchor; chains to INF_RSA_010RT.pem"),
    ("INF_RSA_010RT.pem", "anchor; self-signed, verifies"),
    ("INF_RSA_011.pem", "anchor; chains to INF_RSA_010RT.pem"),
    ("INF_RSA_022.pem", "anchor; chains to INF_RSA_010RT.pem"),
    ("INTEL_I.pem", "anchor; chains to INTEL_RT.pem"),
    ("INTEL_RT.pem", "anchor; self-signed, verifies"),
    ("NTC1.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("NTC2.pem", "refused: SHA-1-signed (sha1WithRSAEncryption)"),
    ("NUVO_0100.pem", "anchor; self-signed, verifies"),
    ("NUVO_1110.pem", "anchor; self-signed, verifies"),
    ("NUVO_1111.pem", "anchor; self-signed, verifies"),
    ("NUVO_2110.pem", "anchor; self-signed, verifies"),
    ("NUVO_2111.pem", "anchor; self-signed, verifies"),
    ("Nationz_TPM_EK.pem", "anchor; issuer not in the store"),
    ("STM_ECC_01I.pem", "anchor; chains to STM_ECC_01RT.pem"),
    ("STM_ECC_01RT.pem", "anchor; issuer not in the store"),
    ("STM_RSA_01I.pem", "anchor; chains to STM_RSA_RT.pem"),
    ("STM_RSA_02I.pem", "anchor; chains to STM_RSA_RT.pem"),
    ("STM_RSA_03I.pem", "anchor; chains to STM_RSA_RT.pem"),
    ("STM_RSA_04I.pem", "anchor; chains to STM_RSA_RT.pem"),
    ("STM_RSA_05I.pem", "anchor; chains to STM_RSA_RT.pem"),
    ("STM_RSA_06I.pem", "anchor; chains to STM_RSA_RT.pem"),
    ("STM_RSA_07I.pem", "anchor; chains to STM_RSA_RT.pem"),
    ("STM_RSA_RT.pem", "anchor; chains to GS_TPM_RT.pem"),
];

#[test]
fn every_vendor_ca_loads_or_is_refused_with_its_reason() {
    let files = vendor_files();
    // Load each file alone; a refusal must name the certificate and say why.
    let mut loaded = Vec::new();
    let mut outcomes: Vec<(String, String)> = Vec::new();
    for (name, pem) in &files {
        match TrustAnchors::from_pem(pem) {
            Ok(anchors) => {
                assert_eq!(anchors.len(), 1, "{name}");
                loaded.push((name.clone(), anchors.der_certs()[0].clone()));
                outcomes.push((name.clone(), "anchor".to_owned()));
            }
            Err(EkError::AnchorsRefused { total: 1, refused }) => {
                let [r] = refused.as_slice() else { panic!("{name}: {refused:?}") };
                let EkError::WeakHashSigned { cert, algorithm, hash } = &r.reason else { panic!("{name}: {r}") };
                let (anchors, listed) = TrustAnchors::load_pem(pem).unwrap();
                assert!(anchors.is_empty() && listed == refused, "{name}");
                assert_eq!((r.position, &r.subject, cert), (1, cert, cert), "{name}");
                let expect =
                    format!("{cert} is {hash}-signed ({algorithm}): {hash} certificate signatures are refused");
                assert_eq!(r.reason.to_string(), expect);
                outcomes.push((name.clone(), format!("refused: {hash}-signed ({algorithm})")));
            }
            Err(e) => outcomes.push((name.clone(), format!("error: {e}"))),
        }
    }
    // Each loaded certificate validated as a CA certificate with every loaded one as an anchor.
    let anchors = TrustAnchors::from_der_certs(loaded.iter().map(|(_, der)| der.clone()).collect()).unwrap();
    let fingerprint = |der: &[u8]| ring::digest::digest(&ring::digest::SHA256, der).as_ref().to_vec();
    for (name, der) in &loaded {
        let outcome = match verify_ca_certificate(der, &[], &anchors, T2027) {
            Ok(v) => {
                let (anchor, _) = loaded.iter().find(|(_, d)| fingerprint(d) == v.anchor_fingerprint_sha256).unwrap();
                if anchor == name {
                    "self-signed, verifies".to_owned()
                } else {
                    format!("chains to {anchor}")
                }
            }
            Err(EkError::NoIssuer { .. }) => "issuer not in the store".to_owned(),
            Err(e) => format!("{e}"),
        };
        let entry = outcomes.iter_mut().find(|(n, _)| n == name).unwrap();
        entry.1 = format!("{}; {outcome}", entry.1);
    }
    let expected: Vec<(String, String)> = EXPECTED.iter().map(|(f, o)| (f.to_string(), o.to_string())).collect();
    let differences: Vec<String> = outcomes
        .iter()
        .zip(&expected)
        .filter(|(a, e)| a != e)
        .map(|(a, e)| format!("{}: got {:?}, expected {:?}", a.0, a.1, e.1))
        .collect();
    assert!(differences.is_empty() && outcomes.len() == expected.len(), "{}", differences.join("\n"));
    assert_eq!(loaded.len(), 31);
}

#[test]
fn a_cat_bundle_of_every_vendor_ca_loads_every_certificate_or_reports_it() {
    let files = vendor_files();
    // Like `cat *.pem`: byte for byte, no separator.
    let bundle: Vec<u8> = files.iter().flat_map(|(_, pem)| pem.iter().copied()).collect();
    // The layouts that matter are really there: BEGIN right after END, and openssl's text dump (with blanks at
    // line ends) before two of the blocks. CRLF is checked below.
    assert!(count(&bundle, b"-----END CERTIFICATE----------BEGIN CERTIFICATE-----") > 30);
    assert!(count(&bundle, b"Certificate:\n") == 2 && count(&bundle, b" \n") > 0);
    let begins = count(&bundle, b"-----BEGIN CERTIFICATE-----");
    assert_eq!(begins, VENDOR_CA_COUNT);

    let (anchors, refused) = TrustAnchors::load_pem(&bundle).unwrap();
    assert_eq!(anchors.len() + refused.len(), begins);
    assert_eq!((anchors.len(), refused.len()), (31, 20));
    // Positions are the files' order; every refusal is SHA-1, naming the certificate.
    for r in &refused {
        let (name, pem) = &files[r.position - 1];
        assert_eq!(r.subject, subject(&der_of_refused(pem)), "{name}");
        assert!(r.to_string().contains(" is SHA-1-signed (sha1WithRSAEncryption)"), "{name}: {r}");
        assert!(r.to_string().starts_with(&format!("trust anchor {}: {}", r.position, r.subject)), "{r}");
    }
    // The loaded ones are the files that load alone, in order, byte for byte.
    let alone: Vec<Vec<u8>> = files
        .iter()
        .filter_map(|(_, pem)| TrustAnchors::from_pem(pem).ok())
        .map(|a| a.der_certs()[0].clone())
        .collect();
    assert_eq!(anchors.der_certs(), alone.as_slice());

    // All or nothing: from_pem refuses the bundle, listing every refusal.
    let e = TrustAnchors::from_pem(&bundle).unwrap_err();
    assert!(matches!(&e, EkError::AnchorsRefused { total: 51, refused: r } if *r == refused), "{e:?}");
    let message = e.to_string();
    assert!(message.starts_with("20 of 51 EK trust anchors refused: trust anchor 3: C=DE, ST=Saxony"), "{message}");
    assert_eq!(count(message.as_bytes(), b"SHA-1-signed"), 20);

    // The accepted files alone, with CRLF everywhere and blanks at line ends: all 31 load.
    let accepted: Vec<u8> = files
        .iter()
        .filter(|(_, pem)| TrustAnchors::from_pem(pem).is_ok())
        .flat_map(|(_, pem)| String::from_utf8_lossy(pem).replace("\r\n", "\n").replace('\n', " \t\r\n").into_bytes())
        .collect();
    assert_eq!(TrustAnchors::from_pem(&accepted).unwrap().der_certs(), alone.as_slice());
}

/// The DER of a one-certificate PEM file that the loaders refuse (so they do not return it).
fn der_of_refused(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let body: String = text
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|s| s.split("-----END CERTIFICATE-----").next())
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64_decode(&body)
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("{c}"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | u32::from(value(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn anchors(certs: &[Vec<u8>]) -> TrustAnchors {
    TrustAnchors::from_der_certs(certs.to_vec()).unwrap()
}

fn verify_ca(files: &[(String, Vec<u8>)], ca: &str, intermediates: &[&str], roots: &[&str], now: i64) -> VerifiedCa {
    let intermediates: Vec<Vec<u8>> = intermediates.iter().map(|n| der(files, n)).collect();
    let roots: Vec<Vec<u8>> = roots.iter().map(|n| der(files, n)).collect();
    verify_ca_certificate(&der(files, ca), &intermediates, &anchors(&roots), now).unwrap_or_else(|e| {
        panic!("{ca} under {roots:?}: {e}", roots = roots.iter().map(|r| subject(r)).collect::<Vec<_>>())
    })
}

#[test]
fn stmicro_intermediates_validate_under_their_root_and_globalsign() {
    let files = vendor_files();
    for i in 1..=7 {
        let int = format!("STM_RSA_0{i}I.pem");
        // The STMicro root configured as the anchor.
        let v = verify_ca(&files, &int, &[], &["STM_RSA_RT.pem"], T2027);
        assert_eq!(
            v.chain_subjects,
            [
                format!("C=CH, O=STMicroelectronics NV, CN=STM TPM EK Intermediate CA 0{i}"),
                "C=CH, O=STMicroelectronics NV, CN=STM TPM EK Root CA".to_owned()
            ]
        );
        // GlobalSign's root as the anchor, STMicro's root (pathLenConstraint 1) as an intermediate.
        let v = verify_ca(&files, &int, &["STM_RSA_RT.pem"], &["GS_TPM_RT.pem"], T2027);
        assert_eq!(v.chain_subjects.len(), 3);
        assert_eq!(
            v.chain_subjects[2],
            "OU=GlobalSign Trusted Computing Certificate Authority, O=GlobalSign, \
             CN=GlobalSign Trusted Platform Module Root CA"
        );
        assert_eq!(
            v.fingerprint_sha256.as_slice(),
            ring::digest::digest(&ring::digest::SHA256, &der(&files, &int)).as_ref()
        );
    }
    let v = verify_ca(&files, "STM_ECC_01I.pem", &[], &["STM_ECC_01RT.pem"], T2027);
    assert_eq!(
        v.chain_subjects,
        [
            "C=CH, O=STMicroelectronics NV, CN=STM TPM ECC Intermediate CA 01",
            "C=CH, O=STMicroelectronics NV, CN=STM TPM ECC Root CA 01"
        ]
    );
}

#[test]
fn intel_intermediate_validates_under_intel_root() {
    let files = vendor_files();
    // INTEL_I marks certificatePolicies (with a CPS qualifier) and extendedKeyUsage critical.
    let v = verify_ca(&files, "INTEL_I.pem", &[], &["INTEL_RT.pem"], T2027);
    assert_eq!(v.chain_subjects.len(), 2);
    assert!(v.chain_subjects[0].contains("OU=TPM EK intermediate for SPTH_EPID_PROD"), "{:?}", v.chain_subjects);
    assert!(v.chain_subjects[1].contains("OU=TPM EK root cert signing"), "{:?}", v.chain_subjects);
}

#[test]
fn vendor_chains_fail_for_the_right_reason() {
    let files = vendor_files();
    let stm = der(&files, "STM_RSA_01I.pem");
    let root = anchors(&[der(&files, "STM_RSA_RT.pem")]);
    // Expired (2029-12-31) at 2030-06-01, while its root is still valid.
    let e = verify_ca_certificate(&stm, &[], &root, T2030_06).unwrap_err();
    assert_eq!(
        e.to_string(),
        "C=CH, O=STMicroelectronics NV, CN=STM TPM EK Intermediate CA 01 expired at 2029-12-31T00:00:00Z \
         (verification time 2030-06-01T00:00:00Z)"
    );
    // Another vendor's root.
    let e = verify_ca_certificate(&stm, &[], &anchors(&[der(&files, "INTEL_RT.pem")]), T2027).unwrap_err();
    assert!(matches!(e, EkError::NoIssuer { .. }), "{e:?}");
    // A flipped signature bit.
    let mut bad = stm.clone();
    *bad.last_mut().unwrap() ^= 0x01;
    let e = verify_ca_certificate(&bad, &[], &root, T2027).unwrap_err();
    assert_eq!(
        e.to_string(),
        "C=CH, O=STMicroelectronics NV, CN=STM TPM EK Intermediate CA 01: signature by C=CH, \
         O=STMicroelectronics NV, CN=STM TPM EK Root CA (sha256WithRSAEncryption) does not verify"
    );
    // GlobalSign's root is not issued by STMicro's root.
    let e = verify_ca_certificate(&der(&files, "GS_TPM_RT.pem"), &[], &root, T2027).unwrap_err();
    assert!(matches!(e, EkError::NoIssuer { .. }), "{e:?}");
}
