//! A bounded little-endian reader for event logs: unlike TPM structures, everything the firmware writes into
//! the log is little-endian (PFP §10.2, "all fields are little-endian").

use super::parse::EventLogError;

/// Reads little-endian fields from a byte slice; never reads past its end.
#[derive(Debug, Clone)]
pub(super) struct LeReader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the whole log, so that errors name absolute offsets.
    base: usize,
}

impl<'a> LeReader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0, base: 0 }
    }

    /// A reader over `buf`, a part of the log that starts at byte `base`.
    pub(super) fn at(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Offset in the whole log of the next unread byte.
    pub(super) fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes left to read.
    pub(super) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], EventLogError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.len() < len {
            return Err(EventLogError::Truncated { field, offset: self.offset(), needed: len - rest.len() });
        }
        let (out, _) = rest.split_at(len);
        self.pos += len;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], EventLogError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, EventLogError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16, EventLogError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, EventLogError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_and_bounded() {
        let mut r = LeReader::new(&[1, 0, 2, 0, 0]);
        assert_eq!(r.u16("a").unwrap(), 1);
        assert_eq!(r.u32("b"), Err(EventLogError::Truncated { field: "b", offset: 2, needed: 1 }));
        assert_eq!(r.take(3, "c").unwrap(), &[2, 0, 0]);
        assert!(r.is_empty());
    }
}
