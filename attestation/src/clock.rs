//! TPMS_CLOCK_INFO appraisal (Part 2 §10.11.1): the clock must be safe and must not run backwards.

use crate::denial::DenialCode;
use crate::tpm2::ClockInfo;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("TPMS_CLOCK_INFO.safe is NO: the TPM clock may have run backwards")]
    Unsafe,
    #[error("TPMS_CLOCK_INFO.{field} went backwards: {current} after {previous}")]
    Regressed { field: &'static str, previous: u64, current: u64 },
}

impl ClockError {
    pub fn code(&self) -> DenialCode {
        DenialCode::ClockRegressed
    }

    /// What happened and what to do, for the operator (docs/evidence.md, "Clock").
    pub fn hint(&self) -> &'static str {
        match self {
            // Part 1 §36 (timing): a TPM that loses power without TPM2_Shutdown restarts Clock from its last
            // NV copy and reports safe = NO until it next saves Clock to NV (Part 4 NV_CLOCK_UPDATE_INTERVAL:
            // libtpms every 2^12 ms; other TPMs up to about 70 minutes) or TPM2_ClockSet moves Clock forward.
            ClockError::Unsafe => {
                "the TPM lost power (or its simulator was killed) without TPM2_Shutdown, so it cannot vouch that its clock never ran back. It reports safe again once it has saved its clock (how often is the TPM's own: swtpm every 4 s of uptime, some TPMs only every 70 minutes), or at once after the TPM owner moves the clock forward on the host: tpm2_setclock $(( $(tpm2_readclock | awk '/ clock:/{print $2}') + 4194304 )). Stop a simulator cleanly (scripts/swtpm.sh stop sends TPM2_Shutdown)."
            }
            ClockError::Regressed { .. } => {
                "the TPM's resetCount, restartCount or clock is lower than in the last quote accepted from it: the TPM was cleared (TPM2_Clear), or its state was restored from an older copy (a VM snapshot), or the evidence is replayed. If the host's owner knows why, an admin re-baselines it: runtrust hosts rebaseline HOST --reason R (audited); the next quote becomes the baseline."
            }
        }
    }
}

/// `current` must be safe, and (resetCount, restartCount, clock) must not be lower than `previous`'s in
/// that order: a TPM Reset may restart the clock, a Restart keeps counting.
///
/// resetCount and restartCount are only meaningful for keys in the endorsement or platform hierarchy
/// (Part 2 §10.12.12 obfuscates them otherwise); runtrust's AKs live under the EK.
pub fn check_clock(current: &ClockInfo, previous: Option<&ClockInfo>) -> Result<(), ClockError> {
    if !current.safe {
        return Err(ClockError::Unsafe);
    }
    let Some(prev) = previous else { return Ok(()) };
    let regressed = |field, previous: u64, current: u64| ClockError::Regressed { field, previous, current };
    if current.reset_count != prev.reset_count {
        return if current.reset_count < prev.reset_count {
            Err(regressed("resetCount", prev.reset_count.into(), current.reset_count.into()))
        } else {
            Ok(())
        };
    }
    if current.restart_count < prev.restart_count {
        return Err(regressed("restartCount", prev.restart_count.into(), current.restart_count.into()));
    }
    if current.restart_count == prev.restart_count && current.clock < prev.clock {
        return Err(regressed("clock", prev.clock, current.clock));
    }
    Ok(())
}

/// Whether `current` is not earlier than `previous` in TPM time, by the order [`check_clock`] checks (the
/// `safe` flag aside): what a store keeps as a host's last clock when quotes are appraised out of order.
pub fn not_earlier(current: &ClockInfo, previous: &ClockInfo) -> bool {
    check_clock(&ClockInfo { safe: true, ..*current }, Some(previous)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(clock: u64, reset_count: u32, restart_count: u32) -> ClockInfo {
        ClockInfo { clock, reset_count, restart_count, safe: true }
    }

    #[test]
    fn monotonic_rules() {
        let prev = ci(1000, 5, 2);
        assert!(check_clock(&ci(1000, 5, 2), Some(&prev)).is_ok());
        assert!(check_clock(&ci(1001, 5, 2), Some(&prev)).is_ok());
        assert!(check_clock(&ci(10, 6, 0), Some(&prev)).is_ok(), "a reset may restart clock and restartCount");
        assert!(check_clock(&ci(10, 5, 3), Some(&prev)).is_ok(), "a restart may restart the clock");
        assert_eq!(
            check_clock(&ci(999, 5, 2), Some(&prev)),
            Err(ClockError::Regressed { field: "clock", previous: 1000, current: 999 })
        );
        assert!(matches!(
            check_clock(&ci(2000, 4, 9), Some(&prev)),
            Err(ClockError::Regressed { field: "resetCount", .. })
        ));
        assert!(matches!(
            check_clock(&ci(2000, 5, 1), Some(&prev)),
            Err(ClockError::Regressed { field: "restartCount", .. })
        ));
        let mut unsafe_clock = ci(2000, 5, 2);
        unsafe_clock.safe = false;
        assert_eq!(check_clock(&unsafe_clock, None), Err(ClockError::Unsafe));
        assert_eq!(check_clock(&unsafe_clock, None).unwrap_err().code(), DenialCode::ClockRegressed);
    }

    #[test]
    fn not_earlier_orders_by_reset_restart_clock() {
        let prev = ci(1000, 5, 2);
        assert!(not_earlier(&ci(1000, 5, 2), &prev));
        assert!(not_earlier(&ci(10, 6, 0), &prev));
        assert!(not_earlier(&ci(10, 5, 3), &prev));
        assert!(!not_earlier(&ci(999, 5, 2), &prev));
        assert!(!not_earlier(&ci(2000, 4, 9), &prev));
        assert!(not_earlier(&ClockInfo { safe: false, ..ci(1001, 5, 2) }, &prev), "safe is not an order");
    }
}
