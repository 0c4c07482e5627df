//! The store as the service uses it (docs/design.md §12, §16): every request reaches it through
//! [`Storage::run`], off the async threads, or [`Storage::quick`] for the per-request calls of the issuance
//! and execution paths, which sled runs on the async thread with its flush awaited. A store that fails (a
//! full disk: a flush that cannot complete) is taken out of service at once: until it recovers, every
//! request that needs it is refused
//! (`verifier_unavailable`), `/readyz` answers 503, and nothing the failed store holds in memory is served.
//! Recovery reopens the store from its files (sled keeps an I/O error for good, so the handle that saw it
//! is dropped) and proves it takes a durable write again; the service then is ready without a restart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{Mutex, RwLock};

use super::Fault;
use crate::store::{Store, StoreConfig, StoreError};

pub struct Storage {
    /// None while a recovery has closed the failed store and not yet opened it again.
    slot: Arc<RwLock<Option<Arc<dyn Store>>>>,
    /// How to reopen it; None for a store handed in whole (tests, benchmarks): recovery then only probes.
    reopen: Option<StoreConfig>,
    ready: AtomicBool,
    recovering: Mutex<()>,
    failures: AtomicU64,
}

impl Storage {
    pub fn new(store: Arc<dyn Store>, reopen: Option<StoreConfig>) -> Self {
        Self {
            slot: Arc::new(RwLock::new(Some(store))),
            reopen,
            ready: AtomicBool::new(true),
            recovering: Mutex::new(()),
            failures: AtomicU64::new(0),
        }
    }

    /// Whether the store takes writes (as far as the last write or recovery showed).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Store operations that failed since the start (for /metrics).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// Runs `f` on the store, off the async threads. A failed store is first recovered, or the answer is
    /// `StoreUnavailable`; a backend failure of `f` takes the store out of service.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Fault> {
        self.ready_or_recover().await?;
        let guard = self.slot.clone().read_owned().await;
        let outcome = tokio::task::spawn_blocking(move || match guard.as_ref() {
            Some(store) => f(store.as_ref()),
            None => Err(StoreError::Backend("the store is being reopened".into())),
        })
        .await;
        match outcome {
            Ok(outcome) => outcome.map_err(|e| self.fault(e)),
            Err(e) => Err(Fault::Task(e.to_string())),
        }
    }

    /// Runs `f`, a call on a handful of keys (the issuance path's), on this async thread when the backend
    /// allows it ([`Store::runs_inline`]: sled), awaiting its durability without holding a thread; else as
    /// [`Storage::run`]. Saves the two thread hand-offs a blocking call costs.
    pub async fn quick<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Fault> {
        self.ready_or_recover().await?;
        let guard = self.slot.read().await;
        let store = match guard.as_ref() {
            Some(store) if store.runs_inline() => store.clone(),
            _ => {
                drop(guard);
                return self.run(f).await;
            }
        };
        // A panic in store code is an error answer, as it is through spawn_blocking in `run`.
        let called =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crate::store::deferring(|| f(store.as_ref()))));
        let Ok((outcome, ticket)) = called else {
            return Err(Fault::Task("a store call panicked".into()));
        };
        let outcome = match (outcome, ticket) {
            (Ok(v), Some(ticket)) => store.flushed(ticket).await.map(|()| v),
            (outcome, _) => outcome,
        };
        drop(guard);
        outcome.map_err(|e| self.fault(e))
    }

    /// A failed store is recovered first, or the answer is `StoreUnavailable`.
    async fn ready_or_recover(&self) -> Result<(), Fault> {
        if !self.is_ready() {
            self.recover().await.map_err(|e| Fault::StoreUnavailable(e.to_string()))?;
        }
        Ok(())
    }

    /// The fault a store error answers with; a failure of the store itself takes it out of service.
    fn fault(&self, e: StoreError) -> Fault {
        if failing(&e) {
            self.failed(&e);
        }
        Fault::Store(e)
    }

    fn failed(&self, e: &StoreError) {
        self.failures.fetch_add(1, Ordering::SeqCst);
        if self.ready.swap(false, Ordering::SeqCst) {
            tracing::error!("the store failed ({e}); refusing requests until it takes durable writes again");
        }
    }

    /// Brings a failed store back: waits for the operations in flight, reopens it (dropping the handle
    /// that failed, so nothing it held only in memory survives) and probes it with a durable write. One
    /// recovery at a time; a caller arriving during one is told the store is not ready.
    pub async fn recover(&self) -> Result<(), StoreError> {
        if self.is_ready() {
            return Ok(());
        }
        let Ok(_one) = self.recovering.try_lock() else {
            return Err(StoreError::Backend("the store is recovering".into()));
        };
        if self.is_ready() {
            return Ok(());
        }
        let mut slot = self.slot.write().await;
        if let Some(config) = self.reopen.clone() {
            // sled locks its files: the old handle must be gone before the new one opens. Closing it joins
            // its flusher and flushes: off the async threads.
            let old = slot.take();
            tokio::task::spawn_blocking(move || drop(old))
                .await
                .map_err(|e| StoreError::Backend(format!("closing the failed store: {e}")))?;
            let opened = tokio::task::spawn_blocking(move || crate::store::open(&config))
                .await
                .map_err(|e| StoreError::Backend(format!("reopening the store: {e}")))??;
            *slot = Some(opened);
        }
        let store = slot.clone().ok_or_else(|| StoreError::Backend("no store".into()))?;
        drop(slot);
        tokio::task::spawn_blocking(move || store.probe())
            .await
            .map_err(|e| StoreError::Backend(format!("probing the store: {e}")))??;
        self.ready.store(true, Ordering::SeqCst);
        tracing::warn!("the store takes durable writes again; serving");
        Ok(())
    }
}

/// Failures of the store itself (not a caller's conflict, not one damaged record).
fn failing(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(_) | StoreError::Open { .. })
}
