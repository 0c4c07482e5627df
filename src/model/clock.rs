//! Injected time (the rustls `TimeProvider` idea): the service and the gateway read the clock through
//! [`Clock`], so tests set it instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now_unix(&self) -> u64;

    /// The same, as the signed seconds CWT claims carry (RFC 8392 §2: NumericDate).
    fn now_i64(&self) -> i64 {
        i64::try_from(self.now_unix()).unwrap_or(i64::MAX)
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn at(now: u64) -> Self {
        ManualClock(AtomicU64::new(now))
    }

    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
