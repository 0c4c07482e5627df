//! The little CBOR (RFC 8949) the token needs. Writing: a small closed [`Cbor`] type, encoded
//! deterministically (§4.2.1). Reading: ciborium's `Value`, one item per input and no trailing bytes,
//! integer-keyed maps without duplicate or unknown keys, typed accessors. Errors are plain text; callers
//! wrap them in the [`super::TokenError`] variant that fits (token, claim or key).

use coset::cbor::value::Value;

/// What the token writes: integers, byte and text strings, booleans, null, arrays, integer-keyed maps, tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cbor {
    Int(i64),
    Uint(u64),
    Bytes(Vec<u8>),
    Text(String),
    Bool(bool),
    Null,
    Array(Vec<Cbor>),
    Map(Vec<(i64, Cbor)>),
    Tag(u64, Box<Cbor>),
}

/// Deterministically encoded CBOR (RFC 8949 §4.2.1): shortest heads, definite lengths, and map keys sorted
/// by the bytewise order of their encodings (so 1, 2, …, 265, then -1, -2, …). Callers never put a key
/// twice in one map.
pub(crate) fn encode(item: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    write(item, &mut out);
    out
}

fn write(item: &Cbor, out: &mut Vec<u8>) {
    match item {
        Cbor::Int(i) if *i >= 0 => head(0, i.unsigned_abs(), out),
        // Major type 1 carries -1 - n, which for negative n is !n.
        Cbor::Int(i) => head(1, !*i as u64, out),
        Cbor::Uint(u) => head(0, *u, out),
        Cbor::Bytes(b) => {
            head(2, b.len() as u64, out);
            out.extend_from_slice(b);
        }
        Cbor::Text(t) => {
            head(3, t.len() as u64, out);
            out.extend_from_slice(t.as_bytes());
        }
        Cbor::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Cbor::Null => out.push(0xf6),
        Cbor::Array(items) => {
            head(4, items.len() as u64, out);
            items.iter().for_each(|i| write(i, out));
        }
        Cbor::Map(entries) => {
            let mut encoded: Vec<(Vec<u8>, &Cbor)> = entries.iter().map(|(k, v)| (encode(&Cbor::Int(*k)), v)).collect();
            encoded.sort_by(|a, b| a.0.cmp(&b.0));
            head(5, encoded.len() as u64, out);
            for (k, v) in encoded {
                out.extend_from_slice(&k);
                write(v, out);
            }
        }
        Cbor::Tag(tag, item) => {
            head(6, *tag, out);
            write(item, out);
        }
    }
}

/// The initial byte and argument of a data item, in the shortest form (RFC 8949 §3, §4.2.1).
fn head(major: u8, arg: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match arg {
        0..=23 => out.push(m | arg as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

/// Decodes exactly one CBOR data item that fills `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, String> {
    let mut rest = bytes;
    let value: Value = coset::cbor::de::from_reader(&mut rest).map_err(|e| format!("not CBOR: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the CBOR item", rest.len()));
    }
    Ok(value)
}

/// An integer-keyed map being taken apart: every key is an integer in `allowed`, none twice.
#[derive(Debug)]
pub(crate) struct IntMap {
    entries: Vec<(i64, Value)>,
}

impl IntMap {
    pub(crate) fn new(value: Value, what: &str, allowed: &[i64]) -> Result<Self, String> {
        let Value::Map(raw) = value else {
            return Err(format!("{what} is not a map"));
        };
        let mut entries: Vec<(i64, Value)> = Vec::with_capacity(raw.len());
        for (k, v) in raw {
            let label = as_i64(&k).ok_or_else(|| format!("{what} has a key that is not an integer"))?;
            if !allowed.contains(&label) {
                return Err(format!("{what} has an unknown key {label}"));
            }
            // RFC 9052 §14, RFC 8392 §7.2: a map with a duplicate key is invalid as a whole.
            if entries.iter().any(|(l, _)| *l == label) {
                return Err(format!("{what} has key {label} twice"));
            }
            entries.push((label, v));
        }
        Ok(Self { entries })
    }

    pub(crate) fn take(&mut self, label: i64) -> Option<Value> {
        let i = self.entries.iter().position(|(l, _)| *l == label)?;
        Some(self.entries.swap_remove(i).1)
    }

    pub(crate) fn require(&mut self, label: i64, what: &str) -> Result<Value, String> {
        self.take(label).ok_or_else(|| format!("{what} lacks key {label}"))
    }
}

pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => i64::try_from(i128::from(*i)).ok(),
        _ => None,
    }
}

pub(crate) fn to_i64(v: Value, what: &str) -> Result<i64, String> {
    as_i64(&v).ok_or_else(|| format!("{what} is not an integer in the signed 64-bit range"))
}

pub(crate) fn to_u64(v: Value, what: &str) -> Result<u64, String> {
    match v {
        Value::Integer(i) => u64::try_from(i128::from(i)).map_err(|_| format!("{what} is not an unsigned integer")),
        _ => Err(format!("{what} is not an unsigned integer")),
    }
}

pub(crate) fn to_bytes(v: Value, what: &str) -> Result<Vec<u8>, String> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(format!("{what} is not a byte string")),
    }
}

pub(crate) fn to_text(v: Value, what: &str) -> Result<String, String> {
    match v {
        Value::Text(t) => Ok(t),
        _ => Err(format!("{what} is not a text string")),
    }
}

pub(crate) fn to_bool(v: Value, what: &str) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(b),
        _ => Err(format!("{what} is not a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_item_only() {
        assert!(decode(&[0x01]).is_ok());
        assert!(decode(&[0x01, 0x02]).unwrap_err().contains("trailing"));
        assert!(decode(&[]).is_err());
        assert!(decode(&[0x42, 0x00]).is_err(), "truncated byte string");
    }

    #[test]
    fn deterministic_encoding() {
        // Keys given out of order come out sorted: 1, 265, -1, -70001.
        let v = Cbor::Map(vec![
            (-70001, Cbor::Text("a".into())),
            (265, Cbor::Bool(true)),
            (-1, Cbor::Int(-8)),
            (1, Cbor::Uint(2)),
        ]);
        assert_eq!(hex::encode(encode(&v)), "a40102190109f520273a000111706161");
        for (n, hex) in [
            (0i64, "00"),
            (23, "17"),
            (24, "1818"),
            (255, "18ff"),
            (256, "190100"),
            (65536, "1a00010000"),
            (1 << 32, "1b0000000100000000"),
            (-1, "20"),
            (-24, "37"),
            (-25, "3818"),
            (-257, "390100"),
            (-65535, "39fffe"),
            (i64::MIN, "3b7fffffffffffffff"),
        ] {
            assert_eq!(hex::encode(encode(&Cbor::Int(n))), hex, "{n}");
            // ciborium reads the same number back.
            assert_eq!(as_i64(&decode(&encode(&Cbor::Int(n))).unwrap()), Some(n));
        }
        assert_eq!(hex::encode(encode(&Cbor::Array(vec![Cbor::Bytes(vec![1]), Cbor::Bool(false)]))), "824101f4");
        assert_eq!(hex::encode(encode(&Cbor::Text("ab".into()))), "626162");
        assert_eq!(hex::encode(encode(&Cbor::Tag(18, Box::new(Cbor::Null)))), "d2f6");
    }

    #[test]
    fn int_maps_refuse_duplicates_unknown_and_non_integer_keys() {
        let int = |i: i64| Value::Integer(i.into());
        let dup = Value::Map(vec![(int(1), int(1)), (int(1), int(2))]);
        assert!(IntMap::new(dup, "m", &[1]).unwrap_err().contains("twice"));
        let unknown = Value::Map(vec![(int(2), int(1))]);
        assert!(IntMap::new(unknown, "m", &[1]).unwrap_err().contains("unknown key 2"));
        let text = Value::Map(vec![(Value::Text("1".into()), int(1))]);
        assert!(IntMap::new(text, "m", &[1]).is_err());
        assert!(IntMap::new(int(1), "m", &[1]).is_err());
    }
}
