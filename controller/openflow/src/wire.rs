//! Bounds-checked cursor over untrusted bytes and big-endian emit helpers.
//! All parsing goes through [`Reader`], so a short buffer is an error, never a panic.

use crate::error::{DecodeError, Result};
use bytes::{BufMut, Bytes, BytesMut};

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

    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Takes the next `n` bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        match self.buf.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(out) => {
                self.pos += n;
                Ok(out)
            }
            None => Err(self.truncated(n)),
        }
    }

    // Out of line: the field readers inline into every parser, and the
    // error's construction would bloat each call site.
    #[cold]
    #[inline(never)]
    fn truncated(&self, need: usize) -> DecodeError {
        DecodeError::Truncated {
            what: self.what,
            need,
            have: self.remaining(),
        }
    }

    /// Takes everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Takes the next `n` bytes as a sub-reader for a nested structure.
    #[inline]
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>> {
        Ok(Reader::new(self.bytes(n)?, what))
    }

    #[inline]
    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    #[inline]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// The next `N` bytes, if there are that many, without taking them.
    #[inline]
    pub fn peek_array<const N: usize>(&self) -> Option<[u8; N]> {
        let next = self.buf.get(self.pos..)?.get(..N)?;
        next.try_into().ok()
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    #[inline]
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    #[inline]
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Takes the next `n` bytes as an owned [`Bytes`] (payloads kept raw).
    pub fn owned(&mut self, n: usize) -> Result<Bytes> {
        self.bytes(n).map(Bytes::copy_from_slice)
    }

    /// Takes everything left as an owned [`Bytes`].
    pub fn rest_owned(&mut self) -> Bytes {
        Bytes::copy_from_slice(self.rest())
    }

    /// Errors unless the cursor has consumed every byte: a fixed-size body
    /// followed by junk is a length error, not something to silently drop
    /// (dropping it would also break byte-exact re-emission).
    pub fn finish(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::BadLength {
                what: self.what,
                len: self.buf.len(),
            })
        }
    }

    /// Reads one `type: u16, len: u16` TLV header (actions, instructions,
    /// hello elements, ...) and returns `(type, len, body)` where `body` covers
    /// the `len - 4` bytes after the header.
    ///
    /// `len` must be at least `min_len` (never below 4, so a zero length can
    /// not loop forever), a multiple of `align` (pass 1 for none) and must fit
    /// in what is left.
    pub fn tlv(
        &mut self,
        what: &'static str,
        min_len: usize,
        align: usize,
    ) -> Result<(u16, usize, Reader<'a>)> {
        let ty = self.peek_u16(0).map_err(|e| retag(e, what))?;
        let len = usize::from(self.peek_u16(2).map_err(|e| retag(e, what))?);
        if len < min_len.max(4) || len % align.max(1) != 0 {
            return Err(DecodeError::BadLength { what, len });
        }
        if len > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                need: len,
                have: self.remaining(),
            });
        }
        let mut body = self.sub(len, what)?;
        body.skip(4)?;
        Ok((ty, len, body))
    }

    /// Peeks a big-endian u16 at `offset` from the cursor without consuming.
    pub fn peek_u16(&self, offset: usize) -> Result<u16> {
        let mut r = self.clone();
        r.skip(offset)?;
        r.u16()
    }
}

/// Renames the structure in a truncation error so the message says what was
/// actually being read.
fn retag(e: DecodeError, what: &'static str) -> DecodeError {
    match e {
        DecodeError::Truncated { need, have, .. } => DecodeError::Truncated { what, need, have },
        other => other,
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

/// Rounds `len` up to the next multiple of 8.
pub const fn round8(len: usize) -> usize {
    len + pad8(len)
}

/// Converts a nested structure's encoded length to its u16 wire field.
///
/// The message encoders ([`crate::encode`] and friends) refuse a message
/// longer than 65535 bytes before writing it, and everything nested in a
/// message that fits fits too; so this only saturates (rather than wrap or
/// panic) for a structure emitted on its own through [`Wire::emit`].
pub fn len16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
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
