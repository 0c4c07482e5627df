//! The crypto floor: what issuance could reach if the service did nothing but its two public-key operations
//! per token — verify the quote's ECDSA P-256 signature and sign the token with Ed25519 — on every core.
//! Measured with ring (the service's own crypto) on one thread, in the same run as the load.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};

/// A quote's TPMS_ATTEST over 8 PCRs is about this long.
const ATTEST_LEN: usize = 145;
/// A token's COSE_Sign1 payload (docs/performance.md: ~700 bytes).
const TOKEN_PAYLOAD_LEN: usize = 700;

#[derive(Clone, Copy, Debug)]
pub struct Floor {
    pub ecdsa_p256_verify_per_sec: f64,
    pub ed25519_sign_per_sec: f64,
    pub cores: usize,
}

impl Floor {
    /// Tokens per second one core could issue doing only the two operations.
    pub fn per_core(&self) -> f64 {
        1.0 / (1.0 / self.ecdsa_p256_verify_per_sec + 1.0 / self.ed25519_sign_per_sec)
    }

    /// [`Floor::per_core`] times the cores.
    pub fn tokens_per_sec(&self) -> f64 {
        self.per_core() * self.cores as f64
    }
}

/// Runs `op` for about `budget`, returns operations per second.
fn rate(budget: Duration, mut op: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    // Warm caches and lazy tables first.
    for _ in 0..16 {
        op()?;
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..32 {
            op()?;
        }
        n += 32;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Measures both operations for about `budget` each, on the calling thread.
pub fn measure(budget: Duration) -> anyhow::Result<Floor> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow!("ECDSA key generation failed"))?;
    let ak = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|e| anyhow!("ECDSA key: {e}"))?;
    let attest = vec![0x5au8; ATTEST_LEN];
    let sig = ak.sign(&rng, &attest).map_err(|_| anyhow!("ECDSA signing failed"))?;
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, ak.public_key().as_ref().to_vec());
    let verify = rate(budget, || {
        public.verify(std::hint::black_box(&attest), sig.as_ref()).map_err(|_| anyhow!("ECDSA verify failed"))
    })?;

    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow!("Ed25519 key generation failed"))?;
    let issuer = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| anyhow!("Ed25519 key: {e}"))?;
    let payload = vec![0xa5u8; TOKEN_PAYLOAD_LEN];
    let sign = rate(budget, || {
        std::hint::black_box(issuer.sign(std::hint::black_box(&payload)));
        Ok(())
    })?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(Floor { ecdsa_p256_verify_per_sec: verify, ed25519_sign_per_sec: sign, cores })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_combines_the_two_rates() {
        let f = Floor { ecdsa_p256_verify_per_sec: 10_000.0, ed25519_sign_per_sec: 40_000.0, cores: 2 };
        assert!((f.per_core() - 8_000.0).abs() < 1e-6);
        assert!((f.tokens_per_sec() - 16_000.0).abs() < 1e-6);
        let m = measure(Duration::from_millis(20)).unwrap();
        assert!(m.ecdsa_p256_verify_per_sec > 0.0 && m.ed25519_sign_per_sec > 0.0 && m.cores >= 1);
    }
}
