//! Records as JSON values in sled trees, and the helpers every transaction uses.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::AUDIT_NEXT;
use crate::audit::AuditEntry;
use crate::store::StoreError;

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Reads a u64 counter from the meta tree inside a transaction (absent: 0).
pub(super) fn tx_counter(
    meta: &TransactionalTree,
    key: &[u8],
) -> Result<u64, ConflictableTransactionError<StoreError>> {
    match meta.get(key)? {
        Some(v) => match <[u8; 8]>::try_from(v.as_ref()) {
            Ok(b) => Ok(u64::from_be_bytes(b)),
            Err(_) => abort(StoreError::Corrupt {
                key: format!("meta/{}", String::from_utf8_lossy(key)),
                detail: "not a u64".into(),
            }),
        },
        None => Ok(0),
    }
}

/// Encodes inside a transaction (an encoding failure aborts it).
pub(super) fn tx_encode<T: Serialize>(v: &T) -> Result<Vec<u8>, ConflictableTransactionError<StoreError>> {
    encode(v).map_err(ConflictableTransactionError::Abort)
}

/// Decodes inside a transaction (a corrupt record aborts it).
pub(super) fn tx_decode<T: DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, ConflictableTransactionError<StoreError>> {
    decode(key, bytes).map_err(ConflictableTransactionError::Abort)
}

/// `parent/child` keys of the children tree.
pub(super) fn child_key(parent: &str, child: &str) -> Vec<u8> {
    format!("{parent}/{child}").into_bytes()
}

/// Appends `entry` at the next dense index inside a transaction.
pub(super) fn tx_append(
    audit: &TransactionalTree,
    meta: &TransactionalTree,
    entry: &AuditEntry,
) -> Result<u64, ConflictableTransactionError<StoreError>> {
    let next = tx_counter(meta, AUDIT_NEXT)?;
    audit.insert(&next.to_be_bytes(), tx_encode(entry)?)?;
    meta.insert(AUDIT_NEXT, &(next + 1).to_be_bytes())?;
    Ok(next)
}

pub(super) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Backend(format!("encoding: {e}")))
}

pub(super) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), detail: e.to_string() })
}

pub(super) fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

pub(super) fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

/// Reads shared by the trait's methods.
impl super::SledStore {
    pub(super) fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &str) -> Result<Option<T>, StoreError> {
        tree.get(key.as_bytes())?.map(|v| decode(key.as_bytes(), &v)).transpose()
    }

    pub(super) fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
        tree.iter().map(|kv| kv.map_err(StoreError::from).and_then(|(k, v)| decode(&k, &v))).collect()
    }

    /// The `rest` of every `prefix/rest` key in `tree` (in key order), at most `limit`.
    pub(super) fn suffixes(tree: &sled::Tree, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{prefix}/");
        tree.scan_prefix(prefix.as_bytes())
            .take(limit)
            .map(|kv| {
                let (k, _) = kv?;
                let rest = k.get(prefix.len()..).unwrap_or_default();
                Ok(String::from_utf8_lossy(rest).into_owned())
            })
            .collect()
    }

    /// A u64 counter of the meta tree (absent: 0), as written (durable or not).
    pub(super) fn counter(&self, key: &[u8]) -> Result<u64, StoreError> {
        super::durable::counter(&self.meta, key)
    }
}
