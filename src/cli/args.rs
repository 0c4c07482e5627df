//! Parsing of command-line values: PCR selections and hex.

use runtrust_attestation::tpm2::{PcrBank, PcrSelection, MAX_PCR_INDEX};
use runtrust_attestation::HashAlg;

/// Parses `--pcrs`: a list of indices and ranges (`0-7`, `0,2,4-6`) in the `--bank` bank, or tpm2-tools
/// style banks (`sha1:0-7+sha256:0,1`).
pub fn parse_selection(bank: HashAlg, spec: &str) -> Result<PcrSelection, String> {
    let mut banks = Vec::new();
    for part in spec.split('+') {
        let (hash, list) = match part.split_once(':') {
            Some((h, l)) => (h.trim().parse::<HashAlg>()?, l),
            None => (bank, part),
        };
        banks.push(PcrBank::new(hash, parse_indices(list)?).map_err(|e| e.to_string())?);
    }
    let sel = PcrSelection::new(banks).map_err(|e| e.to_string())?;
    if sel.is_empty() {
        return Err("no PCR selected".into());
    }
    Ok(sel)
}

fn parse_indices(list: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let index = |s: &str| -> Result<u8, String> {
            s.trim()
                .parse::<u8>()
                .ok()
                .filter(|&i| i <= MAX_PCR_INDEX)
                .ok_or_else(|| format!("{s:?} is not a PCR index 0-{MAX_PCR_INDEX}"))
        };
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (index(a)?, index(b)?);
                if a > b {
                    return Err(format!("range {item:?} runs backwards"));
                }
                out.extend(a..=b);
            }
            None => out.push(index(item)?),
        }
    }
    Ok(out)
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
    fn selections() {
        assert_eq!(
            parse_selection(HashAlg::Sha256, "0-7").unwrap().to_string(),
            "sha256:0,1,2,3,4,5,6,7"
        );
        assert_eq!(
            parse_selection(HashAlg::Sha256, "7,0, 2-3").unwrap().to_string(),
            "sha256:0,2,3,7"
        );
        assert_eq!(
            parse_selection(HashAlg::Sha1, "sha256:0+1").unwrap().to_string(),
            "sha256:0+sha1:1"
        );
        for bad in ["", "8-2", "32", "a", "md5:1", "0+0", "sha1:"] {
            assert!(parse_selection(HashAlg::Sha256, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex(" 0xabCD\n").unwrap(), Hex(vec![0xab, 0xcd]));
        assert!(parse_hex("abc").is_err());
    }
}
