//! The issuer keys a gateway verifies with (docs/design.md §7): a file the operator gives (`keys export`
//! output, COSE_KeySet or PEM), or the service's key set cached in the state directory and fetched again,
//! once, when a token names a key the cache does not hold (a key rotated since).

use std::path::{Path, PathBuf};

use crate::api::routes;
use crate::client::{Client, ClientError};
use crate::fsutil;
use crate::token::KeySet;

/// The cache file in the state directory.
pub const KEY_CACHE: &str = "issuer-keys.cose";

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("the service's key set: {0}")]
    KeySet(String),
    #[error(transparent)]
    Fetch(#[from] ClientError),
}

/// Where the issuer keys come from.
pub enum IssuerKeys<'a> {
    /// Only these (`--keys FILE`).
    File(PathBuf),
    /// The cache in `state_dir`, filled from the service that `connect` reaches.
    Cached { state_dir: PathBuf, connect: &'a dyn Fn() -> Result<Client, ClientError> },
}

impl IssuerKeys<'_> {
    /// Runs `check` with the keys. With the cache, a check that fails because no cached key signed (`retry`
    /// says so) runs once more after a fresh fetch.
    pub fn check<T, E>(
        &self,
        check: impl Fn(&KeySet) -> Result<T, E>,
        retry: impl Fn(&E) -> bool,
    ) -> Result<Result<T, E>, KeysError> {
        match self {
            IssuerKeys::File(p) => Ok(check(&load_keys(p)?)),
            IssuerKeys::Cached { state_dir, connect } => match check(&cached(state_dir, connect, false)?) {
                Err(e) if retry(&e) => Ok(check(&cached(state_dir, connect, true)?)),
                r => Ok(r),
            },
        }
    }
}

/// A COSE_KeySet or PEM file.
pub fn load_keys(path: &Path) -> Result<KeySet, KeysError> {
    let err = |detail: String| KeysError::File { path: path.to_owned(), detail };
    let b = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let set = if b.starts_with(b"-----BEGIN") {
        KeySet::from_pem(&String::from_utf8_lossy(&b))
    } else {
        KeySet::from_cose_keyset(&b)
    };
    set.map_err(|e| err(e.to_string()))
}

fn cached(dir: &Path, connect: &dyn Fn() -> Result<Client, ClientError>, refresh: bool) -> Result<KeySet, KeysError> {
    let cache = dir.join(KEY_CACHE);
    if !refresh {
        if let Ok(set) = load_keys(&cache) {
            return Ok(set);
        }
    }
    let bytes = connect()?.get_bytes(routes::KEYS)?;
    let set = KeySet::from_cose_keyset(&bytes).map_err(|e| KeysError::KeySet(e.to_string()))?;
    if fsutil::create_private_dir(dir).is_ok() {
        if let Err(e) = fsutil::write_atomic(&cache, &bytes, 0o644) {
            tracing::warn!("could not cache issuer keys in {}: {e}", cache.display());
        }
    }
    Ok(set)
}
