//! Bearer credentials: `rt1.<principal id>.<secret>`. The secret has 256 bits of entropy, is shown once,
//! and is stored only as its SHA-256; checks compare hashes in constant time.

use ring::rand::{SecureRandom, SystemRandom};

use crate::model::b64;

/// A freshly minted credential.
pub struct NewCredential {
    pub principal_id: String,
    /// The whole bearer string, to hand to the principal.
    pub credential: String,
    /// The secret part of `credential`.
    pub secret: String,
    pub secret_sha256: String,
}

pub fn mint(rng: &SystemRandom) -> Result<NewCredential, ring::error::Unspecified> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rng.fill(&mut id)?;
    rng.fill(&mut secret)?;
    let secret = b64::encode(&secret);
    Ok(NewCredential {
        principal_id: hex::encode(id),
        secret_sha256: hash_secret(&secret),
        credential: bearer(&hex::encode(id), &secret),
        secret,
    })
}

/// The bearer string of principal `id` with `secret`.
pub fn bearer(id: &str, secret: &str) -> String {
    format!("rt1.{id}.{secret}")
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()))
}

/// Splits a bearer string into (principal id, secret); None if it is not a runtrust credential.
pub fn parse(credential: &str) -> Option<(&str, &str)> {
    let rest = credential.trim().strip_prefix("rt1.")?;
    let (id, secret) = rest.split_once('.')?;
    let id_ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == 43 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// Whether `secret` hashes to `stored_sha256`, compared in constant time.
pub fn matches(secret: &str, stored_sha256: &str) -> bool {
    runtrust_attestation::ct_eq(hash_secret(secret).as_bytes(), stored_sha256.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_parse_match() {
        let rng = SystemRandom::new();
        let c = mint(&rng).unwrap();
        let (id, secret) = parse(&c.credential).unwrap();
        assert_eq!(id, c.principal_id);
        assert!(matches(secret, &c.secret_sha256));
        assert!(!matches(&secret.replace(|_: char| true, "A"), &c.secret_sha256));
        assert_eq!(parse(&format!("{}\n", c.credential)).map(|p| p.0), Some(id), "a trailing newline is fine");
        for bad in ["", "rt1.", "rt1.zz.yy", "Bearer x", &c.credential[..c.credential.len() - 1]] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
