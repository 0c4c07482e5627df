//! A bounded big-endian reader for TPM marshalled data (Part 1 §18 "Canonical representation").

/// Why a TPM structure did not parse. Every variant names the field and the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{field}: truncated at byte {offset} ({needed} more bytes needed)")]
    Truncated { field: &'static str, offset: usize, needed: usize },
    #[error("{field}: size {size} at byte {offset} exceeds the maximum of {max}")]
    Oversized { field: &'static str, offset: usize, size: usize, max: usize },
    #[error("{structure}: {count} trailing bytes after the structure at byte {offset}")]
    TrailingBytes { structure: &'static str, offset: usize, count: usize },
    #[error("{field}: unsupported or invalid value {value:#x} at byte {offset}")]
    InvalidValue { field: &'static str, offset: usize, value: u64 },
    #[error("{field}: {reason} at byte {offset}")]
    Invalid { field: &'static str, offset: usize, reason: &'static str },
}

/// Reads TPM wire types from a byte slice; never reads past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Offset of the next unread byte.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        let rest = &self.buf[self.pos..];
        if rest.len() < len {
            return Err(ParseError::Truncated { field, offset: self.pos, needed: len - rest.len() });
        }
        let (out, _) = rest.split_at(len);
        self.pos += len;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, ParseError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A TPM2B: a u16 size, then that many bytes; the size may not exceed `max`.
    pub fn tpm2b(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], ParseError> {
        let offset = self.pos;
        let size = usize::from(self.u16(field)?);
        if size > max {
            return Err(ParseError::Oversized { field, offset, size, max });
        }
        self.take(size, field)
    }

    /// TPMI_YES_NO (Part 2 §9.2): exactly 0 or 1.
    pub fn yes_no(&mut self, field: &'static str) -> Result<bool, ParseError> {
        let offset = self.pos;
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(ParseError::InvalidValue { field, offset, value: v.into() }),
        }
    }

    pub fn invalid(&self, field: &'static str, offset: usize, value: impl Into<u64>) -> ParseError {
        ParseError::InvalidValue { field, offset, value: value.into() }
    }

    /// The whole input must have been consumed.
    pub fn finish(self, structure: &'static str) -> Result<(), ParseError> {
        let count = self.buf.len() - self.pos;
        if count != 0 {
            return Err(ParseError::TrailingBytes { structure, offset: self.pos, count });
        }
        Ok(())
    }
}

/// Big-endian writer, the inverse of [`Reader`]; used to re-marshal structures.
#[derive(Debug, Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_names_field_and_offset() {
        let mut r = Reader::new(&[0, 1, 2]);
        assert_eq!(r.u16("a").unwrap(), 1);
        assert_eq!(r.u32("b"), Err(ParseError::Truncated { field: "b", offset: 2, needed: 3 }));
    }

    #[test]
    fn tpm2b_is_bounded() {
        let mut r = Reader::new(&[0, 5, 1, 2, 3, 4, 5]);
        assert!(matches!(r.clone().tpm2b("x", 4), Err(ParseError::Oversized { size: 5, max: 4, .. })));
        assert_eq!(r.tpm2b("x", 5).unwrap(), &[1, 2, 3, 4, 5]);
        r.finish("X").unwrap();
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut r = Reader::new(&[1, 2]);
        r.u8("a").unwrap();
        assert!(matches!(r.finish("X"), Err(ParseError::TrailingBytes { count: 1, offset: 1, .. })));
    }

    #[test]
    fn yes_no_is_strict() {
        assert!(Reader::new(&[2]).yes_no("safe").is_err());
        assert!(Reader::new(&[1]).yes_no("safe").unwrap());
    }
}
