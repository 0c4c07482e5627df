//! Group commit: writers that arrive while a flush runs share the next one instead of each paying for
//! their own fsync.

use std::sync::{Condvar, Mutex};

#[derive(Default)]
struct State {
    /// Tickets handed out: one per write that must become durable.
    requested: u64,
    /// Every ticket ≤ this one is durable.
    durable: u64,
    flushing: bool,
    flushes: u64,
}

#[derive(Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
}

impl GroupCommit {
    /// Call after a write has been applied: returns once a flush that started after it has completed.
    pub fn durable<E>(&self, flush: impl Fn() -> Result<(), E>) -> Result<(), E> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.requested += 1;
        let ticket = s.requested;
        loop {
            if s.durable >= ticket {
                return Ok(());
            }
            if s.flushing {
                s = self.done.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Lead a flush covering every ticket issued so far.
            s.flushing = true;
            let covers = s.requested;
            drop(s);
            let result = flush();
            s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.flushing = false;
            s.flushes += 1;
            if result.is_ok() {
                s.durable = s.durable.max(covers);
            }
            self.done.notify_all();
            result?;
        }
    }

    pub fn flushes(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).flushes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn concurrent_writers_share_flushes() {
        let gc = Arc::new(GroupCommit::default());
        let physical = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (gc, physical) = (gc.clone(), physical.clone());
                std::thread::spawn(move || {
                    gc.durable(|| {
                        physical.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        Ok::<(), ()>(())
                    })
                    .unwrap()
                })
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
    fn a_failed_flush_fails_its_writers() {
        let gc = GroupCommit::default();
        assert_eq!(gc.durable(|| Err("disk full")), Err("disk full"));
        assert_eq!(gc.durable(|| Ok::<(), &str>(())), Ok(()));
    }
}
