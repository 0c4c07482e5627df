//! What is durable (docs/design.md §12): opening sled without letting its panics out, flushing, and the
//! watermarks that keep reads of the audit log and the revocation count to what a flush has covered. An
//! entry that sled holds in memory but whose flush has not completed (or failed, on a full disk) is never
//! served, so no client can see an index that a crash or a failed write could later give to another entry.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::codec::decode;
use super::{GroupCommit, SledStore, AUDIT_NEXT, REVOCATION_NEXT};
use crate::audit::AuditEntry;
use crate::store::StoreError;

/// Key of the readiness probe in the meta tree (no record reads it).
const PROBE: &[u8] = b"probe";

/// Counts covered by the last successful flush.
#[derive(Default)]
pub(super) struct Watermark {
    audit: AtomicU64,
    revocations: AtomicU64,
    /// Tests: the next flushes fail as a full disk's would, after sled has applied the write in memory.
    #[cfg(test)]
    pub(super) fail_flush: std::sync::atomic::AtomicBool,
}

/// Opens the sled database in `dir`. sled can panic on damaged files (a truncated snapshot: "tried to
/// serialize Uninitialized"); that is the one panic caught here, and it becomes a clean [`StoreError::Open`].
pub(super) fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    let open = || sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open();
    let failed = |detail: String| StoreError::Open { path: dir.display().to_string(), detail };
    // A store this process has just dropped may hold sled's file lock a moment longer (its flusher thread
    // finishing): wait briefly for it before calling the store busy.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut attempt = catch_unwind(AssertUnwindSafe(open));
    while matches!(&attempt, Ok(Err(e)) if lock_busy(e)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        attempt = catch_unwind(AssertUnwindSafe(open));
    }
    match attempt {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            Err(failed(format!(
                "its files are damaged (sled: {why}); restore the store directory from a backup (see docs/design.md §12)"
            )))
        }
    }
}

/// sled could not take its exclusive lock on the store's files.
fn lock_busy(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock) || e.to_string().contains("lock")
}

/// The store's group commit, whose flusher runs [`flush_now`] on these handles.
pub(super) fn group_commit(
    db: &sled::Db,
    meta: &sled::Tree,
    watermark: &Arc<Watermark>,
) -> Result<GroupCommit, StoreError> {
    let (db, meta, watermark) = (db.clone(), meta.clone(), watermark.clone());
    GroupCommit::start(Box::new(move || flush_now(&db, &meta, &watermark)))
}

/// One physical flush: the counters are read first, so every entry below them is on disk once the flush
/// returns Ok; only then do the watermarks move.
fn flush_now(db: &sled::Db, meta: &sled::Tree, watermark: &Watermark) -> Result<(), StoreError> {
    let audit = counter(meta, AUDIT_NEXT)?;
    let revocations = counter(meta, REVOCATION_NEXT)?;
    #[cfg(test)]
    if watermark.fail_flush.load(Ordering::SeqCst) {
        return Err(StoreError::Backend("flush failed: no space left on device (injected)".into()));
    }
    db.flush()?;
    watermark.audit.fetch_max(audit, Ordering::SeqCst);
    watermark.revocations.fetch_max(revocations, Ordering::SeqCst);
    Ok(())
}

pub(super) fn counter(tree: &sled::Tree, key: &[u8]) -> Result<u64, StoreError> {
    match tree.get(key)? {
        Some(v) => <[u8; 8]>::try_from(v.as_ref()).map(u64::from_be_bytes).map_err(|_| StoreError::Corrupt {
            key: format!("meta/{}", String::from_utf8_lossy(key)),
            detail: "not a u64".into(),
        }),
        None => Ok(0),
    }
}

impl SledStore {
    /// At open everything on disk is durable.
    pub(super) fn init_watermark(&self) -> Result<(), StoreError> {
        self.watermark.audit.store(counter(&self.meta, AUDIT_NEXT)?, Ordering::SeqCst);
        self.watermark.revocations.store(counter(&self.meta, REVOCATION_NEXT)?, Ordering::SeqCst);
        Ok(())
    }

    pub(super) fn durable_audit_len(&self) -> u64 {
        self.watermark.audit.load(Ordering::SeqCst)
    }

    pub(super) fn durable_revocations_len(&self) -> u64 {
        self.watermark.revocations.load(Ordering::SeqCst)
    }

    /// Durable audit entries from `from`, at most `limit`.
    pub(super) fn durable_audit(&self, from: u64, limit: usize) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        let end = self.durable_audit_len();
        if from >= end {
            return Ok(Vec::new());
        }
        self.audit
            .range(from.to_be_bytes()..end.to_be_bytes())
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let index = <[u8; 8]>::try_from(k.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt { key: "audit".into(), detail: "bad index".into() })?;
                Ok((index, decode(&k, &v)?))
            })
            .collect()
    }

    /// Tests: make the next flushes fail (after sled applied the write in memory), as on a full disk.
    #[cfg(test)]
    pub fn fail_flushes(&self, on: bool) {
        self.watermark.fail_flush.store(on, Ordering::SeqCst);
    }

    /// The readiness probe: a small durable write outside every record.
    pub(super) fn write_probe(&self) -> Result<(), StoreError> {
        self.meta.insert(PROBE, &self.durable_audit_len().to_be_bytes())?;
        self.commit.durable_now()
    }
}
