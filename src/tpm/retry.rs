//! Transient TPM answers, retried with bounded exponential backoff.
//!
//! TPM 2.0 Part 2 §6.6.3 (TPM_RC, format zero, TPM_RC_WARN) names three warnings that mean "not now" rather
//! than "no": TPM_RC_YIELDED (0x908, the TPM suspended the command), TPM_RC_TESTING (0x90A, self-test in
//! progress) and TPM_RC_RETRY (0x922, the TPM could not start the command). Part 1 §12 lets the caller resubmit
//! the same command. ESAPI already resubmits such a command a few times back to back (ESYS_MAX_SUBMISSIONS);
//! a chip still busy after that gets time here: [`ATTEMPTS`] tries, waiting [`FIRST_DELAY`] and then four times
//! longer each time, never more than [`MAX_DELAY`] (10, 40, 160, 500 ms: about 0.7 s in all).

use std::time::Duration;

use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::Error;

use super::TpmError;

/// How many times a command is tried in all.
pub const ATTEMPTS: u32 = 5;
/// The wait after the first transient answer.
pub const FIRST_DELAY: Duration = Duration::from_millis(10);
/// The longest wait between two tries.
pub const MAX_DELAY: Duration = Duration::from_millis(500);

/// The TPM_RC name of a transient answer, or None for any other error.
pub(super) fn transient(e: &Error) -> Option<&'static str> {
    let Error::Tss2Error(rc) = e else { return None };
    match rc.kind()? {
        Tss2ResponseCodeKind::Retry => Some("TPM_RC_RETRY"),
        Tss2ResponseCodeKind::Yielded => Some("TPM_RC_YIELDED"),
        Tss2ResponseCodeKind::Testing => Some("TPM_RC_TESTING"),
        _ => None,
    }
}

/// TPM_RC_LOCKOUT (0x921, Part 2 §6.6.3): the TPM is in dictionary-attack lockout.
pub(super) fn is_lockout(e: &Error) -> bool {
    matches!(e, Error::Tss2Error(rc) if rc.kind() == Some(Tss2ResponseCodeKind::Lockout))
}

/// The wait before try `n + 1` (n ≥ 1 tries made).
pub(super) fn delay(n: u32) -> Duration {
    let factor = 4u32.saturating_pow(n.saturating_sub(1));
    FIRST_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

/// Runs `attempt` until it succeeds, fails for good, or has answered transiently [`ATTEMPTS`] times;
/// `sleep` waits between tries. Errors become [`TpmError::Command`] or, when the TPM stayed busy,
/// [`TpmError::Busy`].
pub(super) fn with_retry<T>(
    command: &'static str,
    mut attempt: impl FnMut() -> Result<T, Error>,
    mut sleep: impl FnMut(Duration),
) -> Result<T, TpmError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt() {
            Ok(v) => return Ok(v),
            Err(source) => match transient(&source) {
                Some(code) if tries < ATTEMPTS => {
                    let wait = delay(tries);
                    tracing::debug!("{command}: the TPM answered {code}; trying again in {wait:?}");
                    sleep(wait);
                }
                Some(code) => return Err(TpmError::Busy { command, code, attempts: tries, source }),
                None if is_lockout(&source) => return Err(TpmError::Lockout { command, source }),
                None => return Err(TpmError::Command { command, source }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use tss_esapi::constants::response_code::Tss2ResponseCode;

    use super::*;

    fn rc(code: u32) -> Error {
        Error::Tss2Error(Tss2ResponseCode::from(code))
    }

    #[test]
    fn transient_codes_are_the_three_warnings() {
        assert_eq!(transient(&rc(0x922)), Some("TPM_RC_RETRY"));
        assert_eq!(transient(&rc(0x908)), Some("TPM_RC_YIELDED"));
        assert_eq!(transient(&rc(0x90A)), Some("TPM_RC_TESTING"));
        // TPM_RC_NV_RATE, TPM_RC_LOCKOUT (warnings that need more than a retry), TPM_RC_FAILURE, TPM_RC_HANDLE
        // (format one, handle 1), and an ESAPI-layer error are not transient.
        for code in [0x920, 0x921, 0x101, 0x18B, 0x0007_0009] {
            assert_eq!(transient(&rc(code)), None, "{code:#x}");
        }
        assert_eq!(transient(&Error::WrapperError(tss_esapi::WrapperErrorKind::InvalidParam)), None);
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let waits: Vec<_> = (1..ATTEMPTS).map(delay).collect();
        assert_eq!(waits, [10, 40, 160, 500].map(Duration::from_millis));
        assert_eq!(delay(40), MAX_DELAY);
    }

    #[test]
    fn retries_until_success() {
        let (mut calls, mut slept) = (0, Vec::new());
        let r = with_retry(
            "TPM2_Quote",
            || {
                calls += 1;
                if calls < 3 {
                    Err(rc(0x922))
                } else {
                    Ok(calls)
                }
            },
            |d| slept.push(d),
        );
        assert_eq!(r.ok(), Some(3));
        assert_eq!(slept, [10, 40].map(Duration::from_millis));
    }

    #[test]
    fn gives_up_after_the_last_try() {
        let (mut calls, mut slept) = (0, Vec::new());
        let r: Result<(), _> = with_retry(
            "TPM2_Quote",
            || {
                calls += 1;
                Err(rc(0x90A))
            },
            |d| slept.push(d),
        );
        assert_eq!(calls, ATTEMPTS);
        assert_eq!(slept.len() as u32, ATTEMPTS - 1);
        let e = r.err().map(|e| (e.is_unavailable(), e.to_string()));
        let (unavailable, msg) = e.unwrap_or_default();
        assert!(unavailable, "a busy TPM is unavailable (exit 4)");
        assert!(msg.contains("TPM2_Quote") && msg.contains("TPM_RC_TESTING") && msg.contains("5 tries"), "{msg}");
    }

    #[test]
    fn lockout_is_its_own_error_with_a_hint_and_not_retried() {
        let mut calls = 0;
        let r: Result<(), _> = with_retry(
            "TPM2_Quote",
            || {
                calls += 1;
                Err(rc(0x921))
            },
            |_| {},
        );
        let e = r.unwrap_err();
        assert!(matches!(e, TpmError::Lockout { command: "TPM2_Quote", .. }), "{e:?}");
        assert_eq!(calls, 1);
        assert!(e.to_string().contains("tpm2_dictionarylockout"), "{e}");
        assert!(!e.is_unavailable());
    }

    #[test]
    fn other_errors_are_not_retried() {
        let mut calls = 0;
        let r: Result<(), _> = with_retry(
            "TPM2_Load",
            || {
                calls += 1;
                Err(rc(0x18B))
            },
            |_| panic!("no wait for a final error"),
        );
        assert_eq!(calls, 1);
        assert!(matches!(r, Err(TpmError::Command { command: "TPM2_Load", .. })));
    }
}
