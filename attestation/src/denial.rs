//! The stable denial codes of docs/design.md §8 (contract: extend, never rename).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! denial_codes {
    ($($variant:ident => $code:literal,)*) => {
        /// Why trust was refused. Every error in runtrust maps onto one of these. A contract (docs/design.md
        /// §8): codes are added, never renamed, so code outside this crate matches with a wildcard arm.
        #[non_exhaustive]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum DenialCode { $($variant,)* }

        impl DenialCode {
            /// Every code, in the order of docs/design.md §8.
            pub const ALL: &'static [DenialCode] = &[$(DenialCode::$variant,)*];

            /// The stable snake_case form used on the wire and on stderr.
            pub const fn as_str(self) -> &'static str {
                match self { $(DenialCode::$variant => $code,)* }
            }
        }

        impl FromStr for DenialCode {
            type Err = UnknownDenialCode;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($code => Ok(DenialCode::$variant),)* _ => Err(UnknownDenialCode(s.to_owned())) }
            }
        }
    };
}

denial_codes! {
    AuthorizationMissing => "authorization_missing",
    SignatureInvalid => "signature_invalid",
    QuoteMalformed => "quote_malformed",
    EkUntrusted => "ek_untrusted",
    AkInvalid => "ak_invalid",
    ActivationFailed => "activation_failed",
    TokenExpired => "token_expired",
    TokenNotYetValid => "token_not_yet_valid",
    NonceExpired => "nonce_expired",
    PolicyMismatch => "policy_mismatch",
    ScopeDenied => "scope_denied",
    AudienceMismatch => "audience_mismatch",
    DelegationDenied => "delegation_denied",
    NonceReplayed => "nonce_replayed",
    NonceUnknown => "nonce_unknown",
    NonceMismatch => "nonce_mismatch",
    TokenReplayed => "token_replayed",
    PcrMismatch => "pcr_mismatch",
    EventLogMismatch => "event_log_mismatch",
    ClockRegressed => "clock_regressed",
    RuntimeIdentityMismatch => "runtime_identity_mismatch",
    HostUnknown => "host_unknown",
    Revoked => "revoked",
    VerifierUnavailable => "verifier_unavailable",
    InternalError => "internal_error",
}

impl fmt::Display for DenialCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown denial code {0:?}")]
pub struct UnknownDenialCode(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_as_snake_case() {
        for code in DenialCode::ALL {
            let s = code.as_str();
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert_eq!(s.parse::<DenialCode>().unwrap(), *code);
        }
        assert!("pcr_mismatchx".parse::<DenialCode>().is_err());
    }
}
