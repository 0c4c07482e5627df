//! TPML_PCR_SELECTION (Part 2 §10.9.7) and the PCR values a host claims for a selection.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::alg::HashAlg;
use super::wire::{ParseError, Reader, Writer};

/// Highest PCR index a selection may name: PCR_SELECT_MAX is 4 bytes (32 PCRs).
pub const MAX_PCR_INDEX: u8 = 31;
const PCR_SELECT_MAX: u8 = 4;
/// HASH_COUNT bound on the banks in one selection.
const MAX_BANKS: u32 = 16;

/// One TPMS_PCR_SELECTION: a bank and the PCRs selected in it, ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrBank {
    pub hash: HashAlg,
    pcrs: Vec<u8>,
    size_of_select: u8,
}

impl PcrBank {
    /// A bank selection over `pcrs` (any order, duplicates ignored), with the 3-byte bitmap of a PC Client TPM.
    pub fn new(hash: HashAlg, pcrs: impl IntoIterator<Item = u8>) -> Result<Self, PcrValuesError> {
        let mut v: Vec<u8> = pcrs.into_iter().collect();
        if let Some(&bad) = v.iter().find(|&&i| i > MAX_PCR_INDEX) {
            return Err(PcrValuesError::IndexOutOfRange(bad));
        }
        v.sort_unstable();
        v.dedup();
        let size_of_select = v.last().map_or(3, |&max| (max / 8 + 1).max(3));
        Ok(Self { hash, pcrs: v, size_of_select })
    }

    /// Selected PCR indices in ascending order (the order the TPM hashes them, Part 3 §18.4).
    pub fn pcrs(&self) -> &[u8] {
        &self.pcrs
    }
}

/// TPML_PCR_SELECTION: banks in the order the TPM lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PcrSelection {
    banks: Vec<PcrBank>,
}

impl PcrSelection {
    pub fn new(banks: Vec<PcrBank>) -> Result<Self, PcrValuesError> {
        let mut seen = Vec::new();
        for b in &banks {
            if seen.contains(&b.hash) {
                return Err(PcrValuesError::DuplicateBank(b.hash));
            }
            seen.push(b.hash);
        }
        Ok(Self { banks })
    }

    pub fn banks(&self) -> &[PcrBank] {
        &self.banks
    }

    /// (bank, index) pairs in selection order: banks as listed, PCRs ascending within each.
    pub fn iter(&self) -> impl Iterator<Item = (HashAlg, u8)> + '_ {
        self.banks.iter().flat_map(|b| b.pcrs.iter().map(move |&i| (b.hash, i)))
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Same (bank, index) set, whatever the bank order or bitmap size.
    pub fn same_pcrs(&self, other: &PcrSelection) -> bool {
        let mut a: Vec<_> = self.iter().collect();
        let mut b: Vec<_> = other.iter().collect();
        a.sort_unstable();
        b.sort_unstable();
        a == b
    }

    pub fn parse(r: &mut Reader<'_>) -> Result<Self, ParseError> {
        let offset = r.offset();
        let count = r.u32("TPML_PCR_SELECTION.count")?;
        if count > MAX_BANKS {
            return Err(ParseError::Oversized {
                field: "TPML_PCR_SELECTION.count",
                offset,
                size: count as usize,
                max: MAX_BANKS as usize,
            });
        }
        let mut banks: Vec<PcrBank> = Vec::new();
        for _ in 0..count {
            let hash_offset = r.offset();
            let hash_id = r.u16("TPMS_PCR_SELECTION.hash")?;
            let hash = HashAlg::from_alg_id(hash_id)
                .ok_or_else(|| r.invalid("TPMS_PCR_SELECTION.hash", hash_offset, hash_id))?;
            if banks.iter().any(|b| b.hash == hash) {
                return Err(ParseError::Invalid {
                    field: "TPMS_PCR_SELECTION.hash",
                    offset: hash_offset,
                    reason: "bank selected twice",
                });
            }
            let size_offset = r.offset();
            let size_of_select = r.u8("TPMS_PCR_SELECTION.sizeofSelect")?;
            if size_of_select > PCR_SELECT_MAX {
                return Err(ParseError::Oversized {
                    field: "TPMS_PCR_SELECTION.sizeofSelect",
                    offset: size_offset,
                    size: size_of_select.into(),
                    max: PCR_SELECT_MAX.into(),
                });
            }
            let bitmap = r.take(size_of_select.into(), "TPMS_PCR_SELECTION.pcrSelect")?;
            let mut pcrs = Vec::new();
            for (byte_index, byte) in (0u8..).zip(bitmap) {
                for bit in 0..8 {
                    if byte & (1 << bit) != 0 {
                        pcrs.push(byte_index * 8 + bit);
                    }
                }
            }
            banks.push(PcrBank { hash, pcrs, size_of_select });
        }
        Ok(Self { banks })
    }

    /// Parses a TPML_PCR_SELECTION that must fill `bytes` exactly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new(bytes);
        let sel = Self::parse(&mut r)?;
        r.finish("TPML_PCR_SELECTION")?;
        Ok(sel)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u32(self.banks.len() as u32);
        for b in &self.banks {
            w.u16(b.hash.alg_id());
            w.u8(b.size_of_select);
            let mut bitmap = vec![0u8; b.size_of_select.into()];
            for &i in &b.pcrs {
                if let Some(byte) = bitmap.get_mut(usize::from(i / 8)) {
                    *byte |= 1 << (i % 8);
                }
            }
            w.0.extend_from_slice(&bitmap);
        }
    }

    /// The canonical TPML_PCR_SELECTION encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.write(&mut w);
        w.0
    }
}

impl PcrSelection {
    /// Parses `0-7`, `0,2,4-6` (in `default_bank`) or tpm2-tools style `sha1:0-7+sha256:0,1`.
    pub fn parse_spec(default_bank: HashAlg, spec: &str) -> Result<Self, String> {
        let mut banks = Vec::new();
        for part in spec.split('+') {
            let (hash, list) = match part.split_once(':') {
                Some((h, l)) => (h.trim().parse::<HashAlg>()?, l),
                None => (default_bank, part),
            };
            banks.push(PcrBank::new(hash, parse_indices(list)?).map_err(|e| e.to_string())?);
        }
        let sel = PcrSelection::new(banks).map_err(|e| e.to_string())?;
        if sel.is_empty() {
            return Err("no PCR selected".into());
        }
        Ok(sel)
    }
}

fn parse_indices(list: &str) -> Result<Vec<u8>, String> {
    let index = |s: &str| -> Result<u8, String> {
        s.trim()
            .parse::<u8>()
            .ok()
            .filter(|&i| i <= MAX_PCR_INDEX)
            .ok_or_else(|| format!("{s:?} is not a PCR index 0-{MAX_PCR_INDEX}"))
    };
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
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

/// The [`fmt::Display`] form, `sha256:0,1,2+sha1:0`; every bank must be named.
impl std::str::FromStr for PcrSelection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.split('+').any(|part| !part.contains(':')) {
            return Err(format!("{s:?}: name the bank of every PCR list, e.g. sha256:0-7"));
        }
        Self::parse_spec(HashAlg::Sha256, s)
    }
}

impl fmt::Display for PcrSelection {
    /// tpm2-tools style: `sha256:0,1,2+sha1:0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, b) in self.banks.iter().enumerate() {
            if n > 0 {
                f.write_str("+")?;
            }
            write!(f, "{}:", b.hash)?;
            for (k, i) in b.pcrs.iter().enumerate() {
                if k > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{i}")?;
            }
        }
        Ok(())
    }
}

/// What is wrong with a set of claimed PCR values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcrValuesError {
    #[error("PCR index {0} is out of range (0-31)")]
    IndexOutOfRange(u8),
    #[error("bank {0} selected twice")]
    DuplicateBank(HashAlg),
    #[error("{bank} PCR {index}: value is {actual} bytes, a {bank} digest is {expected}")]
    WrongLength { bank: HashAlg, index: u8, expected: usize, actual: usize },
}

/// PCR values as a host read them: bank → index → digest.
///
/// JSON form (docs/design.md §9, `pcrs.json`): `{"sha256": {"0": "<hex>", ...}, "sha1": {...}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PcrValues(BTreeMap<HashAlg, BTreeMap<u8, Vec<u8>>>);

impl PcrValues {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, bank: HashAlg, index: u8, value: Vec<u8>) -> Result<(), PcrValuesError> {
        if index > MAX_PCR_INDEX {
            return Err(PcrValuesError::IndexOutOfRange(index));
        }
        if value.len() != bank.digest_len() {
            return Err(PcrValuesError::WrongLength { bank, index, expected: bank.digest_len(), actual: value.len() });
        }
        self.0.entry(bank).or_default().insert(index, value);
        Ok(())
    }

    pub fn get(&self, bank: HashAlg, index: u8) -> Option<&[u8]> {
        self.0.get(&bank)?.get(&index).map(Vec::as_slice)
    }

    /// (bank, index, value), banks in algorithm order, indices ascending.
    pub fn iter(&self) -> impl Iterator<Item = (HashAlg, u8, &[u8])> + '_ {
        self.0.iter().flat_map(|(&bank, m)| m.iter().map(move |(&i, v)| (bank, i, v.as_slice())))
    }

    pub fn len(&self) -> usize {
        self.0.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The selection these values cover (banks in algorithm order).
    pub fn selection(&self) -> PcrSelection {
        let banks = self.0.iter().filter_map(|(&bank, m)| PcrBank::new(bank, m.keys().copied()).ok()).collect();
        PcrSelection { banks }
    }

    /// The values restricted to `selection`, or None when one is missing.
    pub fn restrict(&self, selection: &PcrSelection) -> Option<PcrValues> {
        let mut out = PcrValues::new();
        for (bank, index) in selection.iter() {
            let v = self.get(bank, index)?;
            out.0.entry(bank).or_default().insert(index, v.to_vec());
        }
        Some(out)
    }

    /// Concatenation of the values in `selection` order, or None when one is missing.
    pub fn concat(&self, selection: &PcrSelection) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for (bank, index) in selection.iter() {
            out.extend_from_slice(self.get(bank, index)?);
        }
        Some(out)
    }

    /// pcrDigest as TPM2_Quote computes it (Part 3 §18.4): H(values in selection order).
    pub fn digest(&self, selection: &PcrSelection, hash: HashAlg) -> Option<Vec<u8>> {
        Some(hash.digest(&self.concat(selection)?))
    }
}

impl Serialize for PcrValues {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<&str, BTreeMap<String, String>> = self
            .0
            .iter()
            .map(|(bank, vals)| (bank.name(), vals.iter().map(|(i, v)| (i.to_string(), hex::encode(v))).collect()))
            .collect();
        m.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PcrValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::deserialize(d)?;
        let mut out = PcrValues::new();
        for (bank, vals) in m {
            let bank: HashAlg = bank.parse().map_err(D::Error::custom)?;
            for (index, value) in vals {
                let index: u8 = index
                    .parse()
                    .map_err(|_| D::Error::custom(format!("{bank}: PCR index {index:?} is not a number 0-31")))?;
                let value =
                    hex::decode(&value).map_err(|e| D::Error::custom(format!("{bank} PCR {index}: not hex: {e}")))?;
                out.insert(bank, index, value).map_err(D::Error::custom)?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_round_trips() {
        let sel = PcrSelection::new(vec![
            PcrBank::new(HashAlg::Sha256, [7, 0, 1]).unwrap(),
            PcrBank::new(HashAlg::Sha1, [16]).unwrap(),
        ])
        .unwrap();
        let bytes = sel.to_bytes();
        assert_eq!(hex::encode(&bytes), "00000002000b03830000000403000001");
        let back = PcrSelection::from_bytes(&bytes).unwrap();
        assert_eq!(back, sel);
        assert_eq!(back.to_string(), "sha256:0,1,7+sha1:16");
        assert_eq!(back.iter().collect::<Vec<_>>()[3], (HashAlg::Sha1, 16));
    }

    #[test]
    fn selection_rejects_bad_input() {
        // unknown bank (SM3)
        assert!(PcrSelection::from_bytes(&hex::decode("00000001001203ff0000").unwrap()).is_err());
        // sizeofSelect 5
        assert!(matches!(
            PcrSelection::from_bytes(&hex::decode("00000001000b05ffffffffff").unwrap()),
            Err(ParseError::Oversized { .. })
        ));
        // count 17
        assert!(PcrSelection::from_bytes(&hex::decode("00000011").unwrap()).is_err());
        // duplicate bank
        assert!(PcrSelection::from_bytes(&hex::decode("00000002000b0301000000000b03020000").unwrap()).is_err());
        // trailing byte
        assert!(matches!(
            PcrSelection::from_bytes(&hex::decode("00000001000b0301000000").unwrap()),
            Err(ParseError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn specs() {
        let p = |s: &str| PcrSelection::parse_spec(HashAlg::Sha256, s).map(|s| s.to_string());
        assert_eq!(p("0-7").unwrap(), "sha256:0,1,2,3,4,5,6,7");
        assert_eq!(p("7,0, 2-3").unwrap(), "sha256:0,2,3,7");
        assert_eq!(p("sha256:0+sha1:1").unwrap(), "sha256:0+sha1:1");
        for bad in ["", "8-2", "32", "a", "md5:1", "0+0", "sha1:"] {
            assert!(p(bad).is_err(), "{bad}");
        }
        let sel: PcrSelection = "sha1:0,1+sha256:2".parse().unwrap();
        assert_eq!(sel.to_string().parse::<PcrSelection>().unwrap(), sel);
        assert!("0-7".parse::<PcrSelection>().is_err(), "the bank must be named");
    }

    #[test]
    fn values_json_is_strict() {
        let v: PcrValues = serde_json::from_str(&format!(r#"{{"sha256": {{"3": "{}"}}}}"#, "ab".repeat(32))).unwrap();
        assert_eq!(v.get(HashAlg::Sha256, 3).unwrap(), &[0xab; 32]);
        assert_eq!(serde_json::to_string(&v).unwrap(), format!(r#"{{"sha256":{{"3":"{}"}}}}"#, "ab".repeat(32)));
        for bad in [
            r#"{"sha256": {"3": "abcd"}}"#,
            r#"{"md5": {"3": "00"}}"#,
            r#"{"sha1": {"x": "00"}}"#,
            r#"{"sha1": {"40": "0000000000000000000000000000000000000000"}}"#,
        ] {
            assert!(serde_json::from_str::<PcrValues>(bad).is_err(), "{bad}");
        }
    }
}
