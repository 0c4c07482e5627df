//! The store's high-water mark (docs/design.md §12): how many audit entries and revocations the store has
//! durably held, in a small file of the data directory (`store.high-water`, outside the store's own files),
//! written (temp file, fsync, rename) after durable writes: before a revocation is answered, every second
//! while serving, and at shutdown. A store that lost its tail — restored from an older backup, truncated,
//! partially copied — cannot take the mark with it, and `serve` refuses to start below it: serving would
//! forget revocations (a revoked token usable again) and give audit indices out a second time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{blocking, AppState, ServiceError};
use crate::fsutil;
use crate::store::Store;

pub const FILE: &str = "store.high-water";

/// What the store holds durably.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub audit_entries: u64,
    pub revocations: u64,
}

impl Mark {
    pub fn of(store: &dyn Store) -> Result<Mark, crate::store::StoreError> {
        Ok(Mark { audit_entries: store.audit_len()?, revocations: store.revocations_len()? })
    }

    /// Whether `self` holds at least what `other` does.
    pub fn covers(&self, other: &Mark) -> bool {
        self.audit_entries >= other.audit_entries && self.revocations >= other.revocations
    }
}

impl std::fmt::Display for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} audit entries and {} revocations", self.audit_entries, self.revocations)
    }
}

pub struct HighWater {
    path: PathBuf,
    /// The mark on disk. Held by the blocking write itself, so that a write whose caller was cancelled (the
    /// upkeep task aborted at shutdown) still runs alone and a lower mark never replaces a higher one.
    written: Arc<Mutex<Mark>>,
}

/// The mark recorded in `data_dir`, if any.
pub fn read(data_dir: &Path) -> Result<Option<Mark>, ServiceError> {
    let path = data_dir.join(FILE);
    let bad = |detail: String| ServiceError::HighWater { path: path.clone(), detail };
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            bad(format!("{e}; it is written by runtrust only: if it was edited or damaged, see docs/design.md §12"))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad(e.to_string())),
    }
}

fn write(path: &Path, mark: &Mark) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(mark).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    fsutil::write_private(path, &bytes)
}

impl HighWater {
    /// Records `mark` in `data_dir` now (at startup).
    pub fn start(data_dir: &Path, mark: Mark) -> Result<Self, ServiceError> {
        let path = data_dir.join(FILE);
        write(&path, &mark).map_err(|e| ServiceError::HighWater { path: path.clone(), detail: e.to_string() })?;
        Ok(Self { path, written: Arc::new(Mutex::new(mark)) })
    }

    /// Raises the mark to what the store now holds durably (its lengths count flushed writes only, so the
    /// mark never exceeds what a crash leaves). A failure is logged: the store's answers stand.
    pub async fn advance(&self, state: &AppState) {
        let Ok(mark) = blocking(state, Mark::of).await else { return };
        // Nothing to raise (the usual case): no trip to the blocking pool. A write in progress holds the lock.
        if self.written.try_lock().is_ok_and(|w| w.covers(&mark)) {
            return;
        }
        let (path, written) = (self.path.clone(), self.written.clone());
        let wrote = tokio::task::spawn_blocking(move || {
            let mut written = written.lock().unwrap_or_else(|p| p.into_inner());
            if !written.covers(&mark) {
                write(&path, &mark)?;
                *written = mark;
            }
            Ok::<(), std::io::Error>(())
        });
        match wrote.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("could not record the store's high-water mark in {}: {e}", self.path.display())
            }
            Err(e) => tracing::error!("could not record the store's high-water mark: {e}"),
        }
    }
}

/// Raises the data directory's high-water mark, if this service keeps one.
pub async fn advance(state: &AppState) {
    if let Some(hw) = &state.high_water {
        hw.advance(state).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_compare_and_round_trip() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read(d.path()).unwrap(), None);
        let m = Mark { audit_entries: 5, revocations: 1 };
        HighWater::start(d.path(), m).unwrap();
        assert_eq!(read(d.path()).unwrap(), Some(m));
        assert!(m.covers(&Mark { audit_entries: 5, revocations: 0 }));
        assert!(!Mark { audit_entries: 9, revocations: 0 }.covers(&m), "fewer revocations");
        std::fs::write(d.path().join(FILE), "{").unwrap();
        assert!(read(d.path()).is_err());
    }
}
