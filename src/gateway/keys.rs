//! The issuer keys a gateway verifies with (docs/design.md §7): a file the operator gives (`keys export`
//! output, COSE_KeySet or PEM), or the service's key set cached in the state directory and fetched again,
//! once, when a token names a key the cache does not hold (a key rotated since). The service id that
//! answers with the keys (the `iss` its tokens carry, docs/design.md §9) is cached beside them.

use std::path::{Path, PathBuf};

use crate::api::routes;
use crate::client::{Client, ClientError};
use crate::fsutil;
use crate::token::{KeySet, MAX_TEXT};

/// The cache file in the state directory.
pub const KEY_CACHE: &str = "issuer-keys.cose";
/// The service id cached with [`KEY_CACHE`]: the issuer those keys belong to.
pub const ISSUER_CACHE: &str = "issuer-keys.iss";

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("the service's key set: {0}")]
    KeySet(String),
    #[error(transparent)]
    Fetch(#[from] ClientError),
    /// Keys from a file say nothing of whose they are; the issuer must be given.
    #[error("the expected token issuer is unknown: give --issuer ID (or RUNTRUST_ISSUER), the service id its tokens carry as iss")]
    NoIssuer,
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

    /// The issuer these keys belong to: the service id cached with them (fetched with them when the cache
    /// has none). A key file names no issuer: [`KeysError::NoIssuer`].
    pub fn service_id(&self) -> Result<String, KeysError> {
        let IssuerKeys::Cached { state_dir, connect } = self else { return Err(KeysError::NoIssuer) };
        if let Some(id) = read_service_id(&state_dir.join(ISSUER_CACHE)) {
            return Ok(id);
        }
        fetch(state_dir, connect)?.1.ok_or(KeysError::NoIssuer)
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

/// A service id as tokens carry it: 1-[`MAX_TEXT`] bytes, no control characters.
fn valid_service_id(id: &str) -> bool {
    (1..=MAX_TEXT).contains(&id.len()) && !id.chars().any(char::is_control)
}

/// The cached service id, if there is a well-formed one.
fn read_service_id(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok().filter(|b| b.len() <= MAX_TEXT + 1)?;
    let text = String::from_utf8(bytes).ok()?;
    let id = text.strip_suffix('\n').unwrap_or(&text);
    valid_service_id(id).then(|| id.to_owned())
}

fn cached(dir: &Path, connect: &dyn Fn() -> Result<Client, ClientError>, refresh: bool) -> Result<KeySet, KeysError> {
    if !refresh {
        if let Ok(set) = load_keys(&dir.join(KEY_CACHE)) {
            return Ok(set);
        }
    }
    Ok(fetch(dir, connect)?.0)
}

/// `GET /v1/keys`: the key set and the service id it comes with, both cached in `dir`.
fn fetch(dir: &Path, connect: &dyn Fn() -> Result<Client, ClientError>) -> Result<(KeySet, Option<String>), KeysError> {
    let (bytes, id) = connect()?.get_bytes_and_header(routes::KEYS, routes::SERVICE_ID_HEADER)?;
    let set = KeySet::from_cose_keyset(&bytes).map_err(|e| KeysError::KeySet(e.to_string()))?;
    let id = id.filter(|id| valid_service_id(id));
    if fsutil::create_private_dir(dir).is_ok() {
        let cache = dir.join(KEY_CACHE);
        if let Err(e) = fsutil::write_atomic(&cache, &bytes, 0o644) {
            tracing::warn!("could not cache issuer keys in {}: {e}", cache.display());
        }
        let iss = dir.join(ISSUER_CACHE);
        let written = match &id {
            Some(id) => fsutil::write_atomic(&iss, format!("{id}\n").as_bytes(), 0o644),
            // Keys of a service that sent no id: no stale id of another service may stay beside them.
            None => std::fs::remove_file(&iss).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            }),
        };
        if let Err(e) = written {
            tracing::warn!("could not cache the service id in {}: {e}", iss.display());
        }
    }
    Ok((set, id))
}
