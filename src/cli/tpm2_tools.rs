//! The PCR file `tpm2_quote -o` writes (tpm2-tools 5.x, `-F serialized`, the default): a little-endian
//! dump of the C structs TPML_PCR_SELECTION, a u32 count, then that many TPML_DIGEST.
//!
//! Layout: TPML_PCR_SELECTION is 132 bytes (u32 count, 16 × {u16 hash, u8 sizeofSelect, u8[4], pad});
//! each TPML_DIGEST is 532 bytes (u32 count ≤ 8, 8 × {u16 size, u8[64]}). Digests fill the lists eight at
//! a time in selection order.

use runtrust_attestation::tpm2::{PcrBank, PcrSelection};
use runtrust_attestation::{HashAlg, PcrValues};

const SELECTION_LEN: usize = 4 + 16 * 8;
const DIGEST_LIST_LEN: usize = 4 + 8 * (2 + 64);
/// 16 banks × 32 PCRs, eight per list.
const MAX_LISTS: usize = 64;

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a serialized PCR file into values keyed by the selection the file itself states. (That
/// selection is not signed: verify_quote checks it against the quote's.)
pub fn parse_serialized_pcrs(b: &[u8]) -> Result<PcrValues, String> {
    let bad = |what: &str| format!("not a tpm2_quote -o (serialized) PCR file: {what}");
    let count = le32(b, 0).ok_or_else(|| bad("shorter than a TPML_PCR_SELECTION"))? as usize;
    if count > 16 {
        return Err(bad(&format!("{count} banks")));
    }
    let mut banks = Vec::new();
    for k in 0..count {
        let at = 4 + 8 * k;
        let hash_id = le16(b, at).ok_or_else(|| bad("truncated selection"))?;
        let hash = HashAlg::from_alg_id(hash_id).ok_or_else(|| bad(&format!("unknown bank {hash_id:#06x}")))?;
        let size = usize::from(*b.get(at + 2).ok_or_else(|| bad("truncated selection"))?);
        if size > 4 {
            return Err(bad(&format!("sizeofSelect {size}")));
        }
        let bitmap = b.get(at + 3..at + 3 + size).ok_or_else(|| bad("truncated selection"))?;
        let pcrs = (0u8..32).filter(|&i| bitmap.get(usize::from(i / 8)).is_some_and(|x| x & (1 << (i % 8)) != 0));
        banks.push(PcrBank::new(hash, pcrs).map_err(|e| bad(&e.to_string()))?);
    }
    let selection = PcrSelection::new(banks).map_err(|e| bad(&e.to_string()))?;
    let lists = le32(b, SELECTION_LEN).ok_or_else(|| bad("no digest count"))? as usize;
    if lists > MAX_LISTS || b.len() != SELECTION_LEN + 4 + lists * DIGEST_LIST_LEN {
        return Err(bad(&format!("{} bytes do not hold {lists} digest lists", b.len())));
    }
    let mut digests = Vec::new();
    for l in 0..lists {
        let at = SELECTION_LEN + 4 + l * DIGEST_LIST_LEN;
        let n = le32(b, at).ok_or_else(|| bad("truncated digest list"))? as usize;
        if n > 8 {
            return Err(bad(&format!("digest list with {n} entries")));
        }
        for d in 0..n {
            let slot = at + 4 + d * 66;
            let size = usize::from(le16(b, slot).ok_or_else(|| bad("truncated digest"))?);
            if size > 64 {
                return Err(bad(&format!("digest of {size} bytes")));
            }
            digests.push(b.get(slot + 2..slot + 2 + size).ok_or_else(|| bad("truncated digest"))?);
        }
    }
    let pairs: Vec<(HashAlg, u8)> = selection.iter().collect();
    if pairs.len() != digests.len() {
        return Err(bad(&format!("{} PCRs selected but {} digests", pairs.len(), digests.len())));
    }
    let mut values = PcrValues::new();
    for ((bank, index), d) in pairs.into_iter().zip(digests) {
        values.insert(bank, index, d.to_vec()).map_err(|e| bad(&e.to_string()))?;
    }
    Ok(values)
}

/// A PCR file: `pcrs.json` (docs/design.md §9) or `tpm2_quote -o` serialized output.
pub fn parse_pcr_file(b: &[u8]) -> Result<PcrValues, String> {
    if b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{') {
        serde_json::from_slice(b).map_err(|e| format!("pcrs.json: {e}"))
    } else {
        parse_serialized_pcrs(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str, file: &str) -> Vec<u8> {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("attestation/tests/vectors").join(name).join(file);
        std::fs::read(p).unwrap()
    }

    #[test]
    fn serialized_matches_json_on_real_files() {
        for name in ["rsa", "ecc", "rsa-multibank"] {
            let from_bin = parse_pcr_file(&vector(name, "pcrs.bin")).unwrap();
            let from_json = parse_pcr_file(&vector(name, "pcrs.json")).unwrap();
            assert_eq!(from_bin, from_json, "{name}");
        }
    }

    #[test]
    fn serialized_is_strict() {
        let good = vector("rsa", "pcrs.bin");
        for n in [0, 3, 100, 135, 136, good.len() - 1] {
            assert!(parse_serialized_pcrs(&good[..n]).is_err(), "truncated at {n}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(parse_serialized_pcrs(&long).is_err());
        let mut absurd = good.clone();
        absurd[SELECTION_LEN..SELECTION_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_serialized_pcrs(&absurd).is_err());
        let mut fewer = good.clone();
        fewer[SELECTION_LEN + 4] = 7; // 7 digests for 8 PCRs
        assert!(parse_serialized_pcrs(&fewer).is_err());
    }
}
