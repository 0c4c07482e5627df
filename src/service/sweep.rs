//! The store sweep (docs/design.md §12): every `limits.sweep_interval_secs`, `serve` removes the challenges,
//! pending enrollments and used-nonce records that expired at least that long ago, so the store does not
//! grow with traffic that issued nothing. A sweep that fails is logged and tried again at the next tick; it never allows anything.

use std::time::Duration;

use super::{blocking, AppState, Fault};
use crate::store::Swept;

/// Sweeps now and then every interval, for as long as the service runs.
pub async fn run(state: AppState) {
    let period = Duration::from_secs(state.config.limits.sweep_interval_secs.max(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        match sweep_once(&state).await {
            Ok(s) if s != Swept::default() => {
                tracing::info!(
                    challenges = s.challenges,
                    enrollments = s.enrollments,
                    nonces = s.nonces,
                    console_links = s.console_links,
                    "swept"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("store sweep failed (retried at the next tick): {e}"),
        }
    }
}

/// One sweep, of what had expired one interval before the injected clock's now: a challenge that just
/// expired still answers `nonce_expired` (the better diagnosis) for a while before it is gone (then
/// `nonce_unknown`, refused all the same).
pub async fn sweep_once(state: &AppState) -> Result<Swept, Fault> {
    let before = state.clock.now_unix().saturating_sub(state.config.limits.sweep_interval_secs);
    blocking(state, move |s| s.sweep(before)).await
}
