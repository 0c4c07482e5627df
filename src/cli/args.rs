//! Parsing of command-line values: PCR selections and hex.

use runtrust_attestation::tpm2::PcrSelection;
use runtrust_attestation::HashAlg;

/// Parses `--pcrs`: a list of indices and ranges (`0-7`, `0,2,4-6`) in the `--bank` bank, or tpm2-tools
/// style banks (`sha1:0-7+sha256:0,1`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex() {
        assert_eq!(parse_hex(" 0xabCD\n").unwrap(), Hex(vec![0xab, 0xcd]));
        assert!(parse_hex("abc").is_err());
    }
}
