//! verify_quote on real swtpm quotes (RSA-2048 RSASSA and ECC P-256 AKs), beside ring's raw signature
//! verification of the same bytes: the difference is runtrust's parsing and checks.
//!
//! cargo bench -p runtrust-attestation --bench verify_quote

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use runtrust_attestation::signing::uncompressed_point;
use runtrust_attestation::tpm2::PublicKey;
use runtrust_attestation::{verify_quote, PcrValues, Public, QuoteEvidence, QuoteOptions, Signature};

struct Vector {
    ak: Public,
    attest: Vec<u8>,
    signature: Vec<u8>,
    nonce: Vec<u8>,
    pcrs: PcrValues,
}

fn load(name: &str) -> Vector {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(name);
    let read = |f: &str| std::fs::read(dir.join(f)).expect("vector file");
    Vector {
        ak: Public::from_tpm2b(&read("ak.pub")).expect("ak"),
        attest: read("attest"),
        signature: read("signature"),
        nonce: hex::decode(String::from_utf8(read("nonce.hex")).expect("utf8").trim()).expect("hex"),
        pcrs: serde_json::from_slice(&read("pcrs.json")).expect("pcrs"),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("quote");
    for name in ["rsa", "ecc"] {
        let v = load(name);
        let ev = QuoteEvidence { attest: &v.attest, signature: &v.signature, pcrs: &v.pcrs };
        let opts = QuoteOptions::default();
        verify_quote(&v.ak, &ev, &v.nonce, &opts).expect("vector verifies");
        g.bench_function(format!("verify_quote/{name}"), |b| {
            b.iter(|| verify_quote(black_box(&v.ak), black_box(&ev), black_box(&v.nonce), &opts))
        });

        match (&v.ak.key, Signature::parse(&v.signature).expect("sig")) {
            (PublicKey::Rsa { modulus, .. }, Signature::Rsa { sig, .. }) => {
                let key = RsaPublicKeyComponents { n: modulus.clone(), e: vec![1, 0, 1] };
                g.bench_function(format!("ring_raw_verify/{name}"), |b| {
                    b.iter(|| key.verify(&signature::RSA_PKCS1_2048_8192_SHA256, black_box(&v.attest), black_box(&sig)))
                });
            }
            (PublicKey::Ecc { curve, x, y }, Signature::Ecc { r, s, .. }) => {
                let point = uncompressed_point(*curve, x, y).expect("point");
                let key = UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point);
                let fixed = [r.as_slice(), s.as_slice()].concat();
                g.bench_function(format!("ring_raw_verify/{name}"), |b| {
                    b.iter(|| key.verify(black_box(&v.attest), black_box(&fixed)))
                });
            }
            _ => unreachable!("vector kinds"),
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
