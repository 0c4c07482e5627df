//! Software TPM2_MakeCredential: KDFa/KDFe and whole-credential known answers from an independent Python
//! implementation (tests/credential/kat.py), the layout of tpm2-tools' own MakeCredential, and refusals.
//!
//! The fixtures in tests/credential/{rsa,ecc,ecc384} (EK TPM2B_PUBLIC, AK Name, `tpm2_makecredential -T
//! none` output) come from a swtpm run of tests/credential/activate.sh, which also has that TPM release
//! credentials made by this crate and by kat.py through TPM2_ActivateCredential.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;

use runtrust_attestation::credential::{
    kdfa, kdfe, make_credential, tpm2_tools_credential_file, CredentialError, MadeCredential,
};
use runtrust_attestation::tpm2::ObjectAttributes;
use runtrust_attestation::{DenialCode, HashAlg, Public};

const KINDS: [&str; 3] = ["rsa", "ecc", "ecc384"];

fn read(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join(rel);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Fixture {
    ek: Public,
    ak_name: Vec<u8>,
}

fn fixture(kind: &str) -> Fixture {
    Fixture {
        ek: Public::from_tpm2b(&read(&format!("credential/{kind}/ek.pub"))).unwrap(),
        ak_name: read(&format!("credential/{kind}/ak.name")),
    }
}

/// What ring's FixedByteRandom { byte: 0x42 } yields, as kat.py assumes. SecureRandom is sealed, so ring's
/// own (deprecated, hidden) test RNG is the only deterministic one.
#[allow(deprecated)]
fn fixed_rng() -> ring::test::rand::FixedByteRandom {
    ring::test::rand::FixedByteRandom { byte: 0x42 }
}

/// The credential kat.py wraps: 0x00, 0x01, … of the EK nameAlg's digest size.
fn kat_credential(ek: &Public) -> Vec<u8> {
    (0..ek.name_alg.digest_len()).map(|i| i as u8).collect()
}

/// Splits a tpm2-tools credential file into (magic, version, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET).
fn split_tools_file(file: &[u8]) -> (u32, u32, &[u8], &[u8]) {
    let u16_at = |o: usize| usize::from(u16::from_be_bytes([file[o], file[o + 1]]));
    let magic = u32::from_be_bytes(file[0..4].try_into().unwrap());
    let version = u32::from_be_bytes(file[4..8].try_into().unwrap());
    let n = u16_at(8);
    let id_object = &file[10..10 + n];
    let m = u16_at(10 + n);
    let secret = &file[12 + n..];
    assert_eq!(secret.len(), m, "trailing bytes after TPM2B_ENCRYPTED_SECRET");
    (magic, version, id_object, secret)
}

// ---------------------------------------------------------------------------------------------------------
// KDFa / KDFe known answers (computed by tests/credential/kat.py with Python's hmac/hashlib)
// ---------------------------------------------------------------------------------------------------------

#[test]
fn kdfa_known_answers() {
    let key: Vec<u8> = (0u8..32).collect();
    let mut name = vec![0x00, 0x0b];
    name.extend([0xaa; 32]);
    // symKey of a credential: STORAGE, contextU = an AK Name, 128 bits (one block, truncated).
    assert_eq!(
        hex::encode(kdfa(HashAlg::Sha256, &key, "STORAGE", &name, b"", 128)),
        "0415b32b6f43896a87e7b29be8f2ac14"
    );
    // HMAC key of a SHA-384 credential: INTEGRITY, no context, 384 bits.
    let key: Vec<u8> = (0u8..48).collect();
    assert_eq!(
        hex::encode(kdfa(HashAlg::Sha384, &key, "INTEGRITY", b"", b"", 384)),
        "f33d1615c2266b2fa774ff368d6ce3af9d8c0b4227e57eb3e28b810755366e9a668857315ae51d8d7cfac92bb0485639"
    );
    // Three counter blocks, the last partial, both contexts.
    assert_eq!(
        hex::encode(kdfa(HashAlg::Sha256, b"runtrust", "ATH", &[1; 16], &[2; 16], 520)),
        "ac2f14577e6965c3abd9609e4ebce3a09e44f6b0dc531d5e5ba50734ff8d2053ddd80ef91dd6b2116f02ff34eb8756869f9a\
         7972888d00abc3daecdac02774d8c2"
    );
    // 12 bits: two bytes, the top four bits of the first cleared.
    assert_eq!(hex::encode(kdfa(HashAlg::Sha256, b"runtrust", "L", b"", b"", 12)), "04fd");
}

#[test]
fn kdfe_known_answers() {
    let z: Vec<u8> = (0u8..32).collect();
    assert_eq!(
        hex::encode(kdfe(HashAlg::Sha256, &z, "IDENTITY", &[0x11; 32], &[0x22; 32], 256)),
        "cbce7a80e1b35da754dc24ec97f8c9ef9281bf9944c930765256ae6ea7d59f0e"
    );
    let z: Vec<u8> = (0u8..48).collect();
    assert_eq!(
        hex::encode(kdfe(HashAlg::Sha384, &z, "IDENTITY", &[0x11; 48], &[0x22; 48], 384)),
        "0e90f0028f754874a64510878e4c195656942152049463c972574393cb7d0901c3b94a1e5ef663daeb54fdb85b0ed289"
    );
    assert_eq!(
        hex::encode(kdfe(HashAlg::Sha256, b"runtrust", "IDENTITY", b"", b"", 600)),
        "9db9bc2b4f7f0106c75544e633cc1bb6cb9cd3e08e5b60b489639710b701ece733d6522e399189f92a10dedea39015c51200\
         58d204751b005a5ef308b6a5d0b6f1d5377e024f2494c76571"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Whole credentials
// ---------------------------------------------------------------------------------------------------------

/// With fixed randomness, every byte equals kat.py's independent MakeCredential (hand-written RSA-OAEP,
/// pyca ECDH and AES-CFB), whose random-seed output swtpm's TPM2_ActivateCredential accepts.
#[test]
fn credentials_equal_the_independent_implementation() {
    for kind in KINDS {
        let f = fixture(kind);
        let made = make_credential(&f.ek, &f.ak_name, &kat_credential(&f.ek), &fixed_rng()).unwrap();
        let file = tpm2_tools_credential_file(&made).unwrap();
        assert_eq!(hex::encode(&file), hex::encode(read(&format!("credential/{kind}/kat.cred"))), "{kind}");
    }
}

/// Same header and TPM2B sizes as `tpm2_makecredential -T none` for the same EK, Name and secret length.
#[test]
fn layout_equals_tpm2_makecredential() {
    let rng = ring::rand::SystemRandom::new();
    for kind in KINDS {
        let f = fixture(kind);
        let secret = read(&format!("credential/{kind}/secret.bin"));
        let tools = read(&format!("credential/{kind}/tools.cred"));
        let ours = tpm2_tools_credential_file(&make_credential(&f.ek, &f.ak_name, &secret, &rng).unwrap()).unwrap();
        let (magic, version, id, enc) = split_tools_file(&ours);
        let (t_magic, t_version, t_id, t_enc) = split_tools_file(&tools);
        assert_eq!((magic, version), (0xBADC_C0DE, 1), "{kind}");
        assert_eq!((t_magic, t_version), (magic, version), "{kind}");
        assert_eq!((id.len(), enc.len(), ours.len()), (t_id.len(), t_enc.len(), tools.len()), "{kind}");
        // Inside TPM2B_ID_OBJECT: TPM2B_DIGEST(outerHMAC) then encIdentity (the same length in both).
        for blob in [id, t_id] {
            assert_eq!(usize::from(u16::from_be_bytes([blob[0], blob[1]])), f.ek.name_alg.digest_len());
        }
    }
}

#[test]
fn blob_layout_per_ek_kind() {
    let rng = ring::rand::SystemRandom::new();
    // (kind, nameAlg digest, encryptedSecret size): RSA-2048 OAEP ciphertext; TPMS_ECC_POINT 2+32+2+32 and
    // 2+48+2+48.
    for (kind, digest, secret_len) in [("rsa", 32, 256), ("ecc", 32, 68), ("ecc384", 48, 100)] {
        let f = fixture(kind);
        for credential_len in [1, 16, digest] {
            let made = make_credential(&f.ek, &f.ak_name, &vec![7; credential_len], &rng).unwrap();
            // TPM2B_DIGEST(outerHMAC) ‖ AES-CFB(TPM2B_DIGEST(credential)): CFB does not pad.
            assert_eq!(made.credential_blob.len(), 2 + digest + 2 + credential_len, "{kind}");
            assert_eq!(&made.credential_blob[..2], &(digest as u16).to_be_bytes());
            assert_eq!(made.encrypted_secret.len(), secret_len, "{kind}");
            if kind != "rsa" {
                let n = (secret_len - 4) / 2;
                let point = &made.encrypted_secret;
                assert_eq!(&point[..2], &(n as u16).to_be_bytes());
                assert_eq!(&point[2 + n..4 + n], &(n as u16).to_be_bytes());
            }
        }
    }
}

#[test]
fn randomness_is_fresh_and_name_is_bound() {
    let rng = ring::rand::SystemRandom::new();
    for kind in KINDS {
        let f = fixture(kind);
        let a = make_credential(&f.ek, &f.ak_name, b"secret", &rng).unwrap();
        let b = make_credential(&f.ek, &f.ak_name, b"secret", &rng).unwrap();
        assert_ne!(a.encrypted_secret, b.encrypted_secret, "{kind}");
        assert_ne!(a.credential_blob, b.credential_blob, "{kind}");

        // Same seed, other Name: the seed's encryption is unchanged, symKey and outerHMAC are not.
        let mut other = f.ak_name.clone();
        other[2] ^= 1;
        let x = make_credential(&f.ek, &f.ak_name, b"secret", &fixed_rng()).unwrap();
        let y = make_credential(&f.ek, &other, b"secret", &fixed_rng()).unwrap();
        assert_eq!(x.encrypted_secret, y.encrypted_secret, "{kind}");
        let d = f.ek.name_alg.digest_len();
        assert_ne!(x.credential_blob[2..2 + d], y.credential_blob[2..2 + d], "{kind}: outerHMAC");
        assert_ne!(x.credential_blob[2 + d..], y.credential_blob[2 + d..], "{kind}: encIdentity");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------------------

fn expect_err(ek: &Public, name: &[u8], credential: &[u8]) -> CredentialError {
    make_credential(ek, name, credential, &ring::rand::SystemRandom::new()).unwrap_err()
}

#[test]
fn ak_name_must_be_alg_and_digest() {
    let f = fixture("rsa");
    let mut long = f.ak_name.clone();
    long.push(0);
    let mut sha384_short = f.ak_name.clone();
    sha384_short[1] = 0x0c; // says SHA-384, carries 32 bytes
    let mut unknown_alg = f.ak_name.clone();
    unknown_alg[1] = 0x10; // TPM_ALG_NULL
    let cases: [(&str, Vec<u8>); 7] = [
        ("empty", vec![]),
        ("one byte", vec![0x00]),
        ("alg only", vec![0x00, 0x0b]),
        ("one byte short", f.ak_name[..f.ak_name.len() - 1].to_vec()),
        ("one byte long", long),
        ("digest size of another alg", sha384_short),
        ("unknown alg", unknown_alg),
    ];
    for (what, name) in cases {
        let e = expect_err(&f.ek, &name, b"secret");
        assert!(matches!(e, CredentialError::AkNameLength(_) | CredentialError::AkNameAlg(_)), "{what}: {e}");
        assert_eq!(e.code(), DenialCode::AkInvalid, "{what}");
    }
    // A permanent handle's Name (TPM_RH_OWNER) is not an object's.
    let e = expect_err(&f.ek, &[0x40, 0, 0, 1], b"secret");
    assert_eq!(e, CredentialError::AkNameAlg(0x4000));
    // Any supported nameAlg with a digest of its size is accepted (the AK's nameAlg need not be the EK's).
    let f384 = fixture("ecc384");
    make_credential(&f.ek, &f384.ak_name, b"secret", &ring::rand::SystemRandom::new()).unwrap();
}

#[test]
fn credential_length_is_bounded_by_the_ek_name_alg() {
    for (kind, max) in [("rsa", 32), ("ecc", 32), ("ecc384", 48)] {
        let f = fixture(kind);
        let e = expect_err(&f.ek, &f.ak_name, &vec![1; max + 1]);
        assert_eq!(e, CredentialError::CredentialTooLong { len: max + 1, max }, "{kind}");
        assert_eq!(e.code(), DenialCode::InternalError);
        assert_eq!(expect_err(&f.ek, &f.ak_name, b""), CredentialError::EmptyCredential);
        make_credential(&f.ek, &f.ak_name, &vec![1; max], &ring::rand::SystemRandom::new()).unwrap();
    }
}

#[test]
fn signing_key_is_not_an_ek() {
    for ak in ["vectors/rsa/ak.pub", "vectors/ecc/ak.pub", "vectors/ecc384/ak.pub"] {
        let ak_public = Public::from_tpm2b(&read(ak)).unwrap();
        let name = ak_public.name();
        let e = expect_err(&ak_public, &name, b"secret");
        assert!(matches!(e, CredentialError::EkMissingAttribute("decrypt", _)), "{ak}: {e}");
        assert_eq!(e.code(), DenialCode::EkUntrusted);
    }
}

#[test]
fn certified_swtpm_eks_are_usable() {
    // The certified EKs of tests/vectors/ekcerts: RSA-2048 (template L-1) and P-384 (template H-3).
    let name = read("vectors/rsa/ak.name");
    for ek in ["vectors/ekcerts/ek-rsa.pub", "vectors/ekcerts/ek-ecc.pub"] {
        let ek = Public::from_tpm2b(&read(ek)).unwrap();
        make_credential(&ek, &name, b"secret", &ring::rand::SystemRandom::new()).unwrap();
    }
}

/// Re-marshals an EK's TPMT_PUBLIC with one field changed. Layout up to the parameters (Part 2 §12.2.4):
/// type(2) nameAlg(2) objectAttributes(4) authPolicy(2+n) symmetric(2[+2+2]) scheme(2) …
fn edited(kind: &str, edit: impl FnOnce(&mut Vec<u8>, usize)) -> Public {
    let ek = fixture(kind).ek;
    let mut tpmt = ek.tpmt_bytes().to_vec();
    let sym_at = 8 + 2 + ek.auth_policy.len();
    edit(&mut tpmt, sym_at);
    Public::from_tpmt(&tpmt).unwrap()
}

/// (what is wrong, the EK, the expected error).
type EkCase = (&'static str, Public, fn(&CredentialError) -> bool);

#[test]
fn unusable_eks_are_refused() {
    let name = fixture("rsa").ak_name;
    let attrs = |t: &mut Vec<u8>, f: &dyn Fn(u32) -> u32| {
        let a = f(u32::from_be_bytes(t[4..8].try_into().unwrap()));
        t[4..8].copy_from_slice(&a.to_be_bytes());
    };
    let cases: Vec<EkCase> = vec![
        ("not restricted", edited("rsa", |t, _| attrs(t, &|a| a & !ObjectAttributes::RESTRICTED)), |e| {
            matches!(e, CredentialError::EkMissingAttribute("restricted", _))
        }),
        ("not decrypt", edited("ecc", |t, _| attrs(t, &|a| a & !ObjectAttributes::DECRYPT)), |e| {
            matches!(e, CredentialError::EkMissingAttribute("decrypt", _))
        }),
        ("sign as well", edited("rsa", |t, _| attrs(t, &|a| a | ObjectAttributes::SIGN_ENCRYPT)), |e| {
            matches!(e, CredentialError::EkIsSigningKey(_))
        }),
        ("SHA-1 nameAlg", edited("rsa", |t, _| t[2..4].copy_from_slice(&[0x00, 0x04])), |e| {
            matches!(e, CredentialError::EkNameAlg(HashAlg::Sha1))
        }),
        (
            "symmetric NULL",
            edited("rsa", |t, at| {
                t.splice(at..at + 6, [0x00, 0x10]);
            }),
            |e| matches!(e, CredentialError::EkNoSymmetric),
        ),
        ("AES-CBC", edited("ecc", |t, at| t[at + 4..at + 6].copy_from_slice(&[0x00, 0x42])), |e| {
            matches!(e, CredentialError::EkSymmetric { mode: 0x0042, .. })
        }),
        ("Camellia-CFB", edited("rsa", |t, at| t[at..at + 2].copy_from_slice(&[0x00, 0x26])), |e| {
            matches!(e, CredentialError::EkSymmetric { algorithm: 0x0026, .. })
        }),
        (
            "OAEP scheme",
            edited("rsa", |t, at| {
                t.splice(at + 6..at + 8, [0x00, 0x17, 0x00, 0x0b]);
            }),
            |e| matches!(e, CredentialError::EkScheme(0x0017)),
        ),
        (
            "P-256 point off the curve",
            edited("ecc", |t, _| {
                let last = t.len() - 1;
                t[last] ^= 1;
            }),
            |e| matches!(e, CredentialError::EkEccPoint("NIST P-256")),
        ),
        (
            "P-384 point off the curve",
            edited("ecc384", |t, _| {
                let last = t.len() - 1;
                t[last] ^= 1;
            }),
            |e| matches!(e, CredentialError::EkEccPoint("NIST P-384")),
        ),
        ("RSA exponent 1", edited("rsa", |t, at| t[at + 10..at + 14].copy_from_slice(&1u32.to_be_bytes())), |e| {
            matches!(e, CredentialError::EkRsaKey(_))
        }),
    ];
    for (what, ek, expected) in cases {
        let e = expect_err(&ek, &name, b"secret");
        assert!(expected(&e), "{what}: {e:?}");
        assert_eq!(e.code(), DenialCode::EkUntrusted, "{what}");
    }
}

#[test]
fn tools_file_refuses_oversized_fields() {
    let made = MadeCredential { credential_blob: vec![0; 70_000], encrypted_secret: vec![0; 68] };
    assert!(matches!(
        tpm2_tools_credential_file(&made),
        Err(CredentialError::Oversized { field: "TPM2B_ID_OBJECT", len: 70_000 })
    ));
}
