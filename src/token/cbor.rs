//! The little CBOR (RFC 8949) the token needs. Writing: a small closed [`Cbor`] type, encoded
//! deterministically (§4.2.1). Reading: a strict [`Reader`] that accepts only that encoding (shortest-form
//! heads, definite lengths, map keys in ascending bytewise order, no floats or other simple values), into
//! ciborium's `Value`: one item per input and no trailing bytes, integer-keyed maps without duplicate or
//! unknown keys, typed accessors. Errors are plain text; callers wrap them in the [`super::TokenError`]
//! variant that fits (token, claim or key).

use coset::cbor::value::{Integer, Value};

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
pub(crate) fn head(major: u8, arg: u64, out: &mut Vec<u8>) {
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

/// How deep arrays, maps and tags may nest (claims: 3).
const MAX_DEPTH: usize = 8;

/// One item in any valid encoding (ciborium), nothing after it: COSE_Key and COSE_KeySet, which other tools
/// may write (RFC 9052 §7 does not require deterministic encoding).
pub(crate) fn decode_any(bytes: &[u8]) -> Result<Value, String> {
    let mut rest = bytes;
    let value: Value = coset::cbor::de::from_reader(&mut rest).map_err(|e| format!("not CBOR: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the CBOR item", rest.len()));
    }
    Ok(value)
}

/// One deterministically encoded item (RFC 8949 §4.2.1), nothing after it: tokens and their claims.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, String> {
    let mut r = Reader::new(bytes);
    let value = r.value(0)?;
    r.end()?;
    Ok(value)
}

/// Reads deterministically encoded CBOR (RFC 8949 §4.2.1) from a byte slice; anything else is an error.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Nothing may follow the item.
    pub(crate) fn end(&self) -> Result<(), String> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(format!("extraneous data: {n} trailing bytes after the CBOR item")),
        }
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n).ok().filter(|n| *n <= self.rest.len()).ok_or("not CBOR: truncated item")?;
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn uint(&mut self, n: u64) -> Result<u64, String> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// The next head: major type and argument, the argument in its shortest form (§4.2.1), never
    /// indefinite (§3.2.1).
    pub(crate) fn head(&mut self) -> Result<(u8, u64), String> {
        let initial = self.take(1)?.first().copied().unwrap_or(0);
        let (major, info) = (initial >> 5, initial & 0x1f);
        let (arg, floor) = match info {
            0..=23 => (u64::from(info), 0),
            24 => (self.uint(1)?, 24),
            25 => (self.uint(2)?, 0x100),
            26 => (self.uint(4)?, 0x1_0000),
            27 => (self.uint(8)?, 0x1_0000_0000),
            _ => return Err("not deterministic CBOR: indefinite length or reserved value".into()),
        };
        if arg < floor {
            return Err("not deterministic CBOR: an argument is not in its shortest form".into());
        }
        Ok((major, arg))
    }

    /// A byte string (major type 2).
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], String> {
        match self.head()? {
            (2, n) => self.take(n),
            _ => Err("not a byte string".into()),
        }
    }

    /// A byte string, or null (None).
    pub(crate) fn bytes_or_null(&mut self) -> Result<Option<&'a [u8]>, String> {
        if self.rest.first() == Some(&0xf6) {
            self.rest = self.rest.get(1..).unwrap_or_default();
            return Ok(None);
        }
        self.bytes().map(Some)
    }

    /// The head of an array (major type 4) of exactly `len` items, of a map (5) of `len` pairs, or of tag
    /// `len` (6).
    pub(crate) fn expect(&mut self, major: u8, len: u64, what: &str) -> Result<(), String> {
        match self.head()? {
            (m, n) if m == major && n == len => Ok(()),
            _ => Err(format!("not {what}")),
        }
    }

    /// How many items of at least one byte each can follow: a length beyond that is a lie. Returns the
    /// capacity to reserve, at most 64 (a vector grows past that as items actually arrive).
    fn count(&self, n: u64) -> Result<usize, String> {
        let n = usize::try_from(n).ok().filter(|n| *n <= self.rest.len()).ok_or("not CBOR: truncated item")?;
        Ok(n.min(64))
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("CBOR nested deeper than {MAX_DEPTH}"));
        }
        Ok(match self.head()? {
            (0, n) => Value::Integer(Integer::from(n)),
            // Major type 1 carries -1 - n.
            (1, n) => Value::Integer(Integer::try_from(-1 - i128::from(n)).map_err(|e| e.to_string())?),
            (2, n) => Value::Bytes(self.take(n)?.to_vec()),
            (3, n) => Value::Text(String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "text is not UTF-8")?),
            (4, n) => {
                let mut items = Vec::with_capacity(self.count(n)?);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            (5, n) => {
                let mut entries = Vec::with_capacity(self.count(n)?);
                let mut previous: Option<&[u8]> = None;
                for _ in 0..n {
                    let before = self.rest;
                    let key = self.value(depth + 1)?;
                    let encoded = before.get(..before.len() - self.rest.len()).unwrap_or_default();
                    // §4.2.1: keys in ascending bytewise order of their encodings (so no duplicates either).
                    if previous.is_some_and(|p| p >= encoded) {
                        return Err("not deterministic CBOR: map keys out of order or repeated".into());
                    }
                    previous = Some(encoded);
                    entries.push((key, self.value(depth + 1)?));
                }
                Value::Map(entries)
            }
            (6, tag) => Value::Tag(tag, Box::new(self.value(depth + 1)?)),
            (7, 20) => Value::Bool(false),
            (7, 21) => Value::Bool(true),
            (7, 22) => Value::Null,
            _ => return Err("unsupported CBOR item (float, undefined or simple value)".into()),
        })
    }
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
            // The reader reads the same number back.
            assert_eq!(as_i64(&decode(&encode(&Cbor::Int(n))).unwrap()), Some(n));
        }
        assert_eq!(hex::encode(encode(&Cbor::Array(vec![Cbor::Bytes(vec![1]), Cbor::Bool(false)]))), "824101f4");
        assert_eq!(hex::encode(encode(&Cbor::Text("ab".into()))), "626162");
        assert_eq!(hex::encode(encode(&Cbor::Tag(18, Box::new(Cbor::Null)))), "d2f6");
    }

    #[test]
    fn the_reader_accepts_only_the_deterministic_encoding() {
        let good = encode(&Cbor::Map(vec![(1, Cbor::Text("a".into())), (-1, Cbor::Array(vec![Cbor::Null]))]));
        let v = decode(&good).unwrap();
        assert!(matches!(&v, Value::Map(m) if m.len() == 2));
        for (bad, why) in [
            ("1817", "23 in two bytes"),
            ("190017", "23 in three bytes"),
            ("1a000000ff", "255 in five bytes"),
            ("1b00000000ffffffff", "2^32 - 1 in nine bytes"),
            ("5f4101ff", "indefinite byte string"),
            ("9f01ff", "indefinite array"),
            ("a2200101f4", "keys -1 then 1: out of order"),
            ("a201f401f5", "key 1 twice"),
            ("f93c00", "half float"),
            ("f7", "undefined"),
            ("f810", "simple value"),
            ("62c328", "invalid UTF-8"),
            ("9bffffffffffffffff", "array longer than the input"),
            ("5a00000004", "byte string longer than the input"),
            ("81818181818181818181818101", "nested too deep"),
        ] {
            assert!(decode(&hex::decode(bad).unwrap()).is_err(), "{why} was accepted");
        }
    }

    #[test]
    fn the_reader_never_panics_on_arbitrary_bytes() {
        // xorshift64*, fixed seed: reproducible. Bytes drawn mostly from CBOR heads so that deep and long
        // items are reached, not only errors at the first byte.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let heads =
            [0x00, 0x18, 0x19, 0x1b, 0x20, 0x38, 0x41, 0x58, 0x5f, 0x62, 0x81, 0x9f, 0xa1, 0xbf, 0xd2, 0xf6, 0xf9];
        let mut accepted = 0;
        for _ in 0..200_000 {
            let len = (next() % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        (r >> 8) as u8
                    } else {
                        heads[(r >> 8) as usize % heads.len()]
                    }
                })
                .collect();
            if let Ok(value) = decode(&bytes) {
                // Accepted means deterministic: ciborium (shortest heads, map order kept) writes it back
                // byte for byte.
                let mut again = Vec::new();
                coset::cbor::ser::into_writer(&value, &mut again).unwrap();
                assert_eq!(again, bytes, "accepted a non-deterministic encoding");
                accepted += 1;
            }
        }
        assert!(accepted > 0, "some inputs are valid deterministic CBOR");
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
