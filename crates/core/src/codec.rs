//! The canonical binary encoding: fixed-width big-endian integers and length-prefixed byte
//! strings, every length checked against a named limit before anything is allocated.
//!
//! Canonical means one value has exactly one encoding: decoders reject trailing bytes, so
//! re-encoding a decoded value gives back the bytes that were signed.

use thiserror::Error;

/// Why a byte string could not be decoded. Decoding never panics: every failure is one of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the named field was complete.
    #[error("input ended while reading {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A length prefix exceeded the limit for its field.
    #[error("{field} is {len} bytes, over the limit of {max}")]
    TooLong {
        /// The field whose length was refused.
        field: &'static str,
        /// The length found in the input.
        len: usize,
        /// The named limit.
        max: usize,
    },
    /// Bytes were left after a complete value: the encoding would not be canonical.
    #[error("{count} trailing bytes after a complete {what}")]
    TrailingBytes {
        /// What was decoded.
        what: &'static str,
        /// How many bytes were left over.
        count: usize,
    },
    /// A field held a value that has no meaning (an unknown tag, invalid UTF-8, ...).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The encoding version is not one this code understands.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// What carried the version.
        what: &'static str,
        /// The version found.
        version: u8,
    },
}

/// Appends canonical encodings to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer with room reserved for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }
    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Appends a big-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Appends a big-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Appends raw bytes with no length prefix (fixed-size fields).
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// Appends a u16 length prefix and the bytes. Callers keep values under their limits, which
    /// are all far below `u16::MAX`; the prefix saturates rather than wrapping so a bug cannot
    /// produce an encoding that decodes to something else.
    pub fn bytes16(&mut self, v: &[u8]) {
        self.u16(u16::try_from(v.len()).unwrap_or(u16::MAX));
        self.raw(v);
    }
    /// Appends a u32 length prefix and the bytes.
    pub fn bytes32(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.raw(v);
    }
    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads canonical encodings from a byte slice, never past its end.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated { field })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }
    /// Reads one byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }
    /// Reads a big-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    /// Reads a big-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    /// Reads a big-endian u64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    /// Reads a u16-prefixed byte string of at most `max` bytes.
    pub fn bytes16(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        self.take(len, field)
    }
    /// Reads a u32-prefixed byte string of at most `max` bytes.
    pub fn bytes32(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.u32(field)?).unwrap_or(usize::MAX);
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        self.take(len, field)
    }
    /// Reads a u16-prefixed UTF-8 string of at most `max` bytes.
    pub fn str16(&mut self, field: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes16(field, max)?).map_err(|_| DecodeError::Invalid {
            field,
            reason: "not UTF-8",
        })
    }
    /// The bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Fails unless every byte was consumed (canonical encodings have no trailing bytes).
    pub fn finish(self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { what, count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_overlong_prefix() {
        let mut w = Writer::default();
        w.u8(7);
        w.u64(u64::MAX - 1);
        w.bytes16(b"hello");
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u64("b").unwrap(), u64::MAX - 1);
        assert_eq!(r.bytes16("c", 5).unwrap(), b"hello");
        r.finish("test").unwrap();

        let mut r = Reader::new(&bytes[9..]);
        assert_eq!(
            r.bytes16("c", 4),
            Err(DecodeError::TooLong {
                field: "c",
                len: 5,
                max: 4
            })
        );
        let mut r = Reader::new(&bytes[..3]);
        assert!(matches!(r.u64("x"), Err(DecodeError::Truncated { .. })));
    }
}

/// How 32-byte ids (member keys, event ids) go through serde: hex text for people (the API's
/// JSON), the 32 bytes themselves for binary formats (snapshots).
pub(crate) mod id32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(id))
        } else {
            serde::Serialize::serialize(id, s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            let mut out = [0u8; 32];
            hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
            Ok(out)
        } else {
            <[u8; 32]>::deserialize(d)
        }
    }
}
