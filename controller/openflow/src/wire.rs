//! Bounds-checked cursor over untrusted bytes and big-endian emit helpers.
//! All parsing goes through [`Reader`], so a short buffer is an error, never a panic.

use crate::error::{DecodeError, Result};
use bytes::{BufMut, BytesMut};

/// A cursor over a byte slice; every read checks the remaining length.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// `what` names the structure being parsed, for error messages.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                what: self.what,
                need: n,
                have: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Takes the next `n` bytes as a sub-reader for a nested structure.
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>> {
        Ok(Reader::new(self.bytes(n)?, what))
    }

    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Peeks a big-endian u16 at `offset` from the cursor without consuming.
    pub fn peek_u16(&self, offset: usize) -> Result<u16> {
        let mut r = self.clone();
        r.skip(offset)?;
        r.u16()
    }
}

/// Writes `n` zero bytes of padding.
pub fn put_zeros(out: &mut BytesMut, n: usize) {
    out.put_bytes(0, n);
}

/// Padding needed to round `len` up to a multiple of 8 (OpenFlow alignment).
pub const fn pad8(len: usize) -> usize {
    (8 - len % 8) % 8
}

/// Overwrites a big-endian u16 length field at `at` once the body is written.
pub fn patch_u16(out: &mut BytesMut, at: usize, value: u16) {
    out[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// An owned wire structure: parse from a cursor, report its encoded size, emit.
///
/// `parse` consumes exactly the structure's bytes from the reader (including
/// its own padding) and leaves the cursor after it. `emit` appends exactly
/// `buffer_len()` bytes.
pub trait Wire: Sized {
    fn parse(r: &mut Reader<'_>) -> Result<Self>;
    fn buffer_len(&self) -> usize;
    fn emit(&self, out: &mut BytesMut);
}
