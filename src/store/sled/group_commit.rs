//! Group commit (docs/design.md §12: "concurrent requests share flushes"): one flusher thread per store
//! runs the physical flushes; every write takes a ticket, and the ticket is durable once a flush that
//! started after it has completed. Writers that arrive while a flush runs share the next one.
//!
//! A writer waits for its ticket either on this thread ([`GroupCommit::durable`]) or, inside
//! [`crate::store::deferring`], not at all: the ticket goes to the caller, which awaits
//! [`GroupCommit::flushed`] without holding a thread (the service's inline store calls).
//!
//! A failed flush breaks the group commit for good, as an I/O error breaks sled: every ticket it did not
//! cover as durable fails, and so does every later one (the service reopens the store to recover). A
//! broken one never flushes again, so no ticket is ever reported durable after its own flush failed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::store::StoreError;

/// What the flusher has done so far, as waiters see it.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Progress {
    /// Every ticket ≤ this one is durable.
    durable: u64,
    /// A flush failed: every ticket above `durable` fails, now and later.
    broken: bool,
}

impl Progress {
    /// None while `ticket` waits for its flush.
    fn outcome(self, ticket: u64) -> Option<Result<(), ()>> {
        if self.durable >= ticket {
            Some(Ok(()))
        } else if self.broken {
            Some(Err(()))
        } else {
            None
        }
    }
}

#[derive(Default)]
struct State {
    /// Tickets handed out: one per write that must become durable.
    requested: u64,
    progress: Progress,
    flushes: u64,
    /// The failure that broke it, for every waiter it fails.
    error: Option<String>,
    closing: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The flusher waits here for tickets (or closing).
    work: Condvar,
    /// Writers waiting on their own threads wait here for the flusher's progress.
    done: Condvar,
    /// The same progress for writers that await it.
    progress: watch::Sender<Progress>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub type Flush = Box<dyn Fn() -> Result<(), StoreError> + Send>;

pub struct GroupCommit {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flusher thread, which runs `flush` whenever tickets wait for one.
    pub fn start(flush: Flush) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            progress: watch::Sender::new(Progress::default()),
        });
        let theirs = shared.clone();
        let flusher = std::thread::Builder::new()
            .name("runtrust-sled-flush".into())
            .spawn(move || run_flusher(&theirs, flush))
            .map_err(|e| StoreError::Backend(format!("starting the flusher thread: {e}")))?;
        Ok(Self { shared, flusher: Some(flusher) })
    }

    /// A ticket for a write that has been applied; the flusher is told.
    fn ticket(&self) -> u64 {
        let mut s = self.shared.lock();
        s.requested += 1;
        let ticket = s.requested;
        drop(s);
        self.shared.work.notify_one();
        ticket
    }

    /// Call after a write has been applied: returns once a flush that started after it has completed, or
    /// at once inside [`crate::store::deferring`], which then hands the ticket to its caller.
    pub fn durable(&self) -> Result<(), StoreError> {
        let ticket = self.ticket();
        if crate::store::defer(ticket) {
            return Ok(());
        }
        self.wait(ticket)
    }

    /// Waits on this thread for `ticket`.
    pub fn wait(&self, ticket: u64) -> Result<(), StoreError> {
        let mut s = self.shared.lock();
        loop {
            if let Some(outcome) = s.progress.outcome(ticket) {
                return outcome.map_err(|_| failed(&s));
            }
            s = self.shared.done.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Resolves once `ticket` is durable (or its flush failed), without holding a thread.
    pub fn flushed(&self, ticket: u64) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>> {
        let mut progress = self.shared.progress.subscribe();
        let shared = self.shared.clone();
        Box::pin(async move {
            let outcome = progress.wait_for(|p| p.outcome(ticket).is_some()).await.map(|p| p.outcome(ticket));
            drop(progress);
            match outcome {
                Ok(Some(Ok(()))) => Ok(()),
                Ok(_) => Err(failed(&shared.lock())),
                Err(_) => Err(StoreError::Backend("the store was closed before this write was flushed".into())),
            }
        })
    }

    /// Like [`GroupCommit::durable`], but waits even inside [`crate::store::deferring`]: for the calls whose
    /// point is durability (an explicit flush, the readiness probe, an export that reads the durable prefix).
    pub fn durable_now(&self) -> Result<(), StoreError> {
        let ticket = self.ticket();
        self.wait(ticket)
    }

    pub fn flushes(&self) -> u64 {
        self.shared.lock().flushes
    }
}

fn failed(s: &State) -> StoreError {
    StoreError::Backend(s.error.clone().unwrap_or_else(|| "the flush that covered this write failed".into()))
}

/// The flusher: one flush at a time, each covering every ticket handed out before it started. A flush
/// that fails (or panics) breaks the group commit; the flusher then only waits to be closed.
fn run_flusher(shared: &Shared, flush: Flush) {
    let mut s = shared.lock();
    loop {
        if s.requested <= s.progress.durable || s.progress.broken {
            if s.closing {
                return;
            }
            s = shared.work.wait(s).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        let covers = s.requested;
        drop(s);
        let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&flush)) {
            Ok(result) => result,
            Err(_) => Err(StoreError::Backend("the flush panicked".into())),
        };
        s = shared.lock();
        s.flushes += 1;
        match result {
            Ok(()) => s.progress.durable = covers,
            Err(e) => {
                s.error = Some(e.to_string());
                s.progress.broken = true;
            }
        }
        shared.progress.send_replace(s.progress);
        shared.done.notify_all();
    }
}

impl Drop for GroupCommit {
    /// Flushes what is pending, then stops the flusher (it holds the database: sled's file lock goes with it).
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_one();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    fn counting(physical: Arc<AtomicU64>, fail: Arc<AtomicBool>) -> Flush {
        Box::new(move || {
            physical.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            if fail.load(Ordering::SeqCst) {
                Err(StoreError::Backend("disk full".into()))
            } else {
                Ok(())
            }
        })
    }

    #[test]
    fn concurrent_writers_share_flushes() {
        let physical = Arc::new(AtomicU64::new(0));
        let gc = Arc::new(GroupCommit::start(counting(physical.clone(), Arc::default())).unwrap());
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let gc = gc.clone();
                std::thread::spawn(move || gc.durable().unwrap())
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = physical.load(Ordering::SeqCst);
        assert!(n < 32, "32 writers, {n} flushes");
        assert_eq!(gc.flushes(), n);
    }

    #[test]
    fn a_failed_flush_fails_its_writers_and_every_later_one() {
        let fail = Arc::new(AtomicBool::new(false));
        let physical = Arc::new(AtomicU64::new(0));
        let gc = GroupCommit::start(counting(physical.clone(), fail.clone())).unwrap();
        gc.durable().unwrap();
        fail.store(true, Ordering::SeqCst);
        let e = gc.durable().unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        // The disk is back, but this group commit stays broken: a later flush could otherwise report a
        // write durable whose own flush failed. Recovery reopens the store instead.
        fail.store(false, Ordering::SeqCst);
        let e = gc.durable().unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(physical.load(Ordering::SeqCst), 2, "no flush runs once one failed");
    }

    #[test]
    fn a_panicking_flush_fails_its_writers_instead_of_hanging_them() {
        let gc = GroupCommit::start(Box::new(|| -> Result<(), StoreError> {
            panic!("sled: tried to serialize Uninitialized")
        }))
        .unwrap();
        let e = gc.durable().unwrap_err();
        assert!(e.to_string().contains("panicked"), "{e}");
        assert!(gc.durable_now().is_err());
    }

    #[test]
    fn durable_now_waits_even_inside_deferring() {
        let physical = Arc::new(AtomicU64::new(0));
        let gc = GroupCommit::start(counting(physical.clone(), Arc::default())).unwrap();
        let (done, ticket) = crate::store::deferring(|| gc.durable_now());
        done.unwrap();
        assert_eq!(ticket, None, "nothing was deferred");
        assert_eq!(physical.load(Ordering::SeqCst), 1, "the flush ran before durable_now returned");
    }

    #[tokio::test]
    async fn a_deferred_write_is_awaited_without_a_thread() {
        let fail = Arc::new(AtomicBool::new(false));
        let physical = Arc::new(AtomicU64::new(0));
        let gc = GroupCommit::start(counting(physical.clone(), fail.clone())).unwrap();
        let (done, ticket) = crate::store::deferring(|| gc.durable());
        done.unwrap();
        let ticket = ticket.expect("the write's ticket");
        gc.flushed(ticket).await.unwrap();
        assert!(physical.load(Ordering::SeqCst) >= 1, "awaited before any flush ran");
        // A failed flush reaches the deferred writer too, and a ticket it covered never turns durable.
        fail.store(true, Ordering::SeqCst);
        let (_, ticket) = crate::store::deferring(|| gc.durable());
        let ticket = ticket.unwrap();
        let e = gc.flushed(ticket).await.unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        fail.store(false, Ordering::SeqCst);
        assert!(gc.durable().is_err());
        assert!(gc.flushed(ticket).await.is_err(), "still failed after the disk came back");
    }

    #[test]
    fn dropping_flushes_what_is_pending_and_stops_the_flusher() {
        let physical = Arc::new(AtomicU64::new(0));
        let gc = GroupCommit::start(counting(physical.clone(), Arc::default())).unwrap();
        let (_, ticket) = crate::store::deferring(|| gc.durable());
        assert!(ticket.is_some());
        drop(gc);
        assert_eq!(physical.load(Ordering::SeqCst), 1, "the pending write was flushed before the store closed");
    }
}
