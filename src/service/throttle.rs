//! Bounded cost of repeated denials (docs/design.md §11, §16). Each authenticated principal may cause at most
//! `limits.audited_denials_per_minute` audited denials per minute (a leaky bucket: the level drains at that
//! rate). A principal at its limit has its next requests to audited routes refused before evaluation — 429,
//! `verifier_unavailable`: the service declines to decide — counted in /metrics and not written to the audit
//! log; one audit entry (`principal.throttled`) marks the start of each such episode. Allows never count, so
//! a principal that is being answered "yes" is never throttled.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::StatusCode;
use runtrust_attestation::DenialCode;

use super::Denial;

pub struct Throttle {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    level: f64,
    /// Unix time of `level`.
    at: u64,
    /// The limit was reached since the bucket was last empty (one episode, one audit entry).
    reached: bool,
}

impl Throttle {
    /// `per_minute` = 0: no limit.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: Mutex::default() }
    }

    fn level(&self, bucket: &Bucket, now: u64) -> f64 {
        let drained = now.saturating_sub(bucket.at) as f64 * f64::from(self.per_minute) / 60.0;
        (bucket.level - drained).max(0.0)
    }

    /// Whether `principal` is at its limit now (its request is then refused unevaluated).
    pub fn over(&self, principal: &str, now: u64) -> bool {
        if self.per_minute == 0 {
            return false;
        }
        let Ok(buckets) = self.buckets.lock() else { return false };
        buckets.get(principal).is_some_and(|b| self.level(b, now) >= f64::from(self.per_minute))
    }

    /// Counts one audited denial of `principal`; true when it brought the principal to its limit for the first
    /// time since its bucket was last empty (the start of an episode).
    pub fn denied(&self, principal: &str, now: u64) -> bool {
        if self.per_minute == 0 {
            return false;
        }
        let Ok(mut buckets) = self.buckets.lock() else { return false };
        // Drained buckets go, so the map holds only principals denied within the last minute.
        buckets.retain(|_, b| self.level(b, now) > 0.0);
        let previous = buckets.get(principal).copied();
        let level = previous.map_or(0.0, |b| self.level(&b, now)) + 1.0;
        let reached_before = previous.is_some_and(|b| b.reached);
        let reached = reached_before || level >= f64::from(self.per_minute);
        buckets.insert(principal.to_owned(), Bucket { level, at: now, reached });
        reached && !reached_before
    }

    /// The answer to a throttled request.
    pub fn refusal(&self) -> Denial {
        Denial::new(
            DenialCode::VerifierUnavailable,
            format!(
                "too many denied requests from this principal: at most {} per minute are evaluated; retry later",
                self.per_minute
            ),
        )
        .with_status(StatusCode::TOO_MANY_REQUESTS)
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_at_its_limit_waits_for_the_bucket_to_drain() {
        let t = Throttle::new(3);
        assert!(!t.denied("p", 100));
        assert!(!t.denied("p", 100));
        assert!(!t.over("p", 100));
        assert!(t.denied("p", 100), "the third denial reaches the limit");
        assert!(t.over("p", 100) && !t.over("q", 100), "per principal");
        assert!(!t.over("p", 101), "the bucket drains at 3 per minute: room for one more");
        assert!(!t.denied("p", 101), "full again, within the same episode");
        assert!(t.over("p", 101) && t.over("p", 119), "then again full for 20 s");
        assert!(!t.over("p", 121));
        assert!(!t.denied("q", 500) && !t.over("p", 500), "drained");
        for _ in 0..2 {
            t.denied("p", 500);
        }
        assert!(t.denied("p", 500), "a new episode once the bucket was empty");
        assert!(!Throttle::new(0).denied("p", 0) && !Throttle::new(0).over("p", 0), "0: no limit");
    }
}
