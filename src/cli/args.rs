//! Parsing of command-line values: PCR selections, hex, and the clap mirrors of the enums of lower layers
//! (which know nothing of clap, docs/design.md §3).

use runtrust_attestation::tpm2::PcrSelection;
use runtrust_attestation::HashAlg;

/// Parses `--pcrs`: a list of indices and ranges (`0-7`, `0,2,4-6`) in the `--bank` bank, or tpm2-tools
/// style banks (`sha1:0-7+sha256:0,1`).
/// `--leeway`: a clock-skew allowance for the nbf/exp checks, `0s` to `5m` (docs/design.md §9).
pub fn parse_leeway(s: &str) -> Result<u64, String> {
    if s == "0" || s == "0s" {
        return Ok(0);
    }
    let secs = crate::policy::parse_duration(s)?;
    let max = crate::token::MAX_LEEWAY_SECS.unsigned_abs();
    if secs > max {
        return Err(format!(
            "{s:?} is more than the {max} s a leeway may be: it allows clock skew, not expired tokens"
        ));
    }
    Ok(secs)
}

/// The longest offline grace (`exec --offline-grace`): a day. Revocations made during an outage reach a
/// gateway only when the service answers again; the grace bounds how long that may go unnoticed.
pub const MAX_OFFLINE_GRACE_SECS: u64 = 86_400;

/// `--offline-grace D`: 1s to 24h.
pub fn parse_offline_grace(s: &str) -> Result<u64, String> {
    let secs = crate::policy::parse_duration(s)?;
    if secs == 0 || secs > MAX_OFFLINE_GRACE_SECS {
        return Err(format!("{s:?}: an offline grace is 1s to 24h (how old the kept revocation feed may be)"));
    }
    Ok(secs)
}

pub fn parse_selection(bank: HashAlg, spec: &str) -> Result<PcrSelection, String> {
    PcrSelection::parse_spec(bank, spec)
}

/// Bytes given as hex on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hex(pub Vec<u8>);

/// Decodes hex (an optional 0x prefix and surrounding whitespace allowed).
pub fn parse_hex(s: &str) -> Result<Hex, String> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(s).map(Hex).map_err(|e| format!("not hex: {e}"))
}

/// A clap `ValueEnum` mirroring an enum of a lower layer, and its conversion into it.
macro_rules! value_enum {
    ($(#[$meta:meta])* $arg:ident => $target:ty { $($(#[$vmeta:meta])* $v:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
        pub enum $arg { $($(#[$vmeta])* $v),* }

        impl From<$arg> for $target {
            fn from(a: $arg) -> Self {
                match a { $($arg::$v => <$target>::$v),* }
            }
        }
    };
}

value_enum!(
    /// What a principal may do.
    RoleArg => crate::model::Role {
        /// Manages principals, policies, keys, revocations; lists hosts.
        Admin,
        /// A host: enrolls and requests tokens.
        Attester,
        /// An execution gateway: online token checks, execution reports.
        Gateway,
        /// Reads hosts and the audit log.
        Auditor,
    }
);

value_enum!(
    /// Key algorithm for the EK and the AK.
    KeyAlgArg => crate::tpm::KeyAlg {
        /// RSA-2048 (EK: TCG template L-1; AK: RSASSA-SHA256).
        Rsa,
        /// ECC NIST P-256 (EK: TCG template L-2; AK: ECDSA-SHA256).
        Ecc,
        /// ECC NIST P-384 (EK: TCG template H-4, the ECC EK swtpm certifies; AK: ECDSA-SHA384).
        Ecc384,
    }
);

value_enum!(
    /// Token signature algorithm (docs/design.md §7).
    SigningAlgArg => crate::token::SigningAlg {
        /// Ed25519 (COSE alg -8).
        #[value(name = "eddsa")]
        EdDsa,
        /// ECDSA P-256 SHA-256 (COSE alg -7).
        Es256,
    }
);

value_enum!(
    /// Log format on stderr.
    LogFormatArg => crate::config::LogFormat {
        Text,
        Json,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leeway_is_bounded() {
        assert_eq!(parse_leeway("0s"), Ok(0));
        assert_eq!(parse_leeway("30s"), Ok(30));
        assert_eq!(parse_leeway("5m"), Ok(300));
        assert!(parse_leeway("6m").unwrap_err().contains("clock skew"));
        assert!(parse_leeway("-1").is_err());
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex(" 0xabCD\n").unwrap(), Hex(vec![0xab, 0xcd]));
        assert!(parse_hex("abc").is_err());
    }
}
