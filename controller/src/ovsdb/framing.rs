//! Framing of a JSON-RPC stream (RFC 7047 §4): messages are JSON objects
//! sent back to back with no length prefix, so one `read()` may hold half a
//! message or several. [`Framer`] buffers bytes and yields whole values.
//!
//! Each byte is scanned once, as it arrives: the framer follows strings,
//! escapes and nesting to find where a message ends, and only then parses
//! it, once. (Parsing the whole buffer again on every read made one 8 MiB
//! message cost 15 s of CPU.) What a peer can make a connection hold is
//! bounded by [`Limits`]: the bytes of one message, and how many JSON
//! values it has (a parsed value takes tens of bytes, so `[1,1,1,...]`
//! would otherwise grow sixteenfold when parsed).

use serde_json::Value;
use thiserror::Error;

/// What one message may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one message (a monitor reply of a host with a few
    /// thousand interfaces is about a megabyte).
    pub max_message: usize,
    /// JSON values (strings, numbers, arrays, objects, ...) in one message.
    pub max_values: usize,
    /// Rows of the monitored tables a connection keeps (its replica): the
    /// rest of its memory budget, beside one message's bytes and values.
    pub max_rows: usize,
}

impl Limits {
    /// `max_message` bytes, and one value per 8 of them (OVSDB's values are
    /// mostly UUIDs and names, far longer than that).
    pub fn for_message(max_message: usize) -> Limits {
        Limits {
            max_message,
            max_values: (max_message / 8).max(64),
            max_rows: 100_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::for_message(4 << 20)
    }
}

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("invalid JSON on the OVSDB stream: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("OVSDB message over {0} bytes")]
    TooLarge(usize),
    #[error("OVSDB message with over {0} JSON values")]
    TooManyValues(usize),
    #[error("OVSDB message is not a JSON object")]
    NotAnObject,
    #[error("OVSDB message nested over {0} levels")]
    TooDeep(usize),
    #[error("OVSDB message closes a bracket it did not open")]
    Unbalanced,
}

/// Deepest nesting of a message (serde_json's own limit).
const MAX_DEPTH: usize = 128;

/// A buffer above this that is mostly empty is given back after a message.
const KEEP_CAPACITY: usize = 64 << 10;

/// Where the scan of the message being received stands.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    /// Offset of the message's `{`, once seen.
    start: Option<usize>,
    /// Offset of the next byte to look at.
    next: usize,
    depth: usize,
    /// One bit per open level, innermost lowest: 1 for an array.
    nesting: u128,
    in_string: bool,
    escaped: bool,
    values: usize,
}

/// Turns a byte stream into JSON values.
#[derive(Debug, Default)]
pub struct Framer {
    limits: Limits,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already returned as messages.
    consumed: usize,
    scan: Scan,
}

impl Framer {
    pub fn new(limits: Limits) -> Framer {
        Framer {
            limits,
            ..Framer::default()
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned as a message.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// Bytes the buffer holds on to (its capacity).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Drops the returned messages' bytes, and a large buffer they left
    /// mostly empty.
    fn compact(&mut self) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.scan.start = self.scan.start.map(|s| s - self.consumed);
            self.scan.next -= self.consumed;
            self.consumed = 0;
        }
        if self.buf.capacity() > KEEP_CAPACITY && self.buf.len() < self.buf.capacity() / 4 {
            self.buf.shrink_to(self.buf.len().max(KEEP_CAPACITY));
        }
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. An
    /// error means the stream cannot be resynchronised: close it.
    pub fn next_message(&mut self) -> Result<Option<Value>, FrameError> {
        let s = &mut self.scan;
        while s.next < self.buf.len() {
            let b = self.buf[s.next];
            s.next += 1;
            let Some(start) = s.start else {
                match b {
                    b'{' => {
                        *s = Scan {
                            start: Some(s.next - 1),
                            depth: 1,
                            values: 1,
                            ..*s
                        };
                    }
                    b' ' | b'\t' | b'\n' | b'\r' => self.consumed = s.next,
                    _ => return Err(FrameError::NotAnObject),
                }
                continue;
            };
            if s.next - start > self.limits.max_message {
                return Err(FrameError::TooLarge(self.limits.max_message));
            }
            if s.in_string {
                match b {
                    _ if s.escaped => s.escaped = false,
                    b'\\' => s.escaped = true,
                    b'"' => s.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => {
                    s.in_string = true;
                    s.values += 1;
                }
                b'{' | b'[' => {
                    if s.depth >= MAX_DEPTH {
                        return Err(FrameError::TooDeep(MAX_DEPTH));
                    }
                    s.depth += 1;
                    s.nesting = (s.nesting << 1) | u128::from(b == b'[');
                    s.values += 1;
                }
                // Each further element of an array (a scalar or not).
                b',' => s.values += 1,
                b'}' | b']' => {
                    if (s.nesting & 1 == 1) != (b == b']') {
                        return Err(FrameError::Unbalanced);
                    }
                    s.nesting >>= 1;
                    s.depth -= 1;
                    if s.depth == 0 {
                        let end = s.next;
                        *s = Scan {
                            next: end,
                            ..Scan::default()
                        };
                        self.consumed = end;
                        return Ok(Some(serde_json::from_slice(&self.buf[start..end])?));
                    }
                }
                _ => {}
            }
            if s.values > self.limits.max_values {
                return Err(FrameError::TooManyValues(self.limits.max_values));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn drain(f: &mut Framer) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(v) = f.next_message().unwrap() {
            out.push(v);
        }
        out
    }

    #[test]
    fn one_read_may_hold_several_messages() {
        let mut f = Framer::default();
        f.push(
            br#"{"id":1,"result":[],"error":null}{"id":null,"method":"update","params":[null,{}]}"#,
        );
        let got = drain(&mut f);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["id"], json!(1));
        assert_eq!(got[1]["method"], json!("update"));
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn a_message_may_arrive_byte_by_byte() {
        // Braces and quotes inside strings must not confuse the framer.
        let text = br#"{"method":"echo","params":["}{\"x", "\\", "]"],"id":"echo"}"#;
        let mut f = Framer::default();
        for (i, b) in text.iter().enumerate() {
            f.push(&[*b]);
            let got = f.next_message().unwrap();
            if i + 1 < text.len() {
                assert!(got.is_none(), "early message at byte {i}");
            } else {
                assert_eq!(got.unwrap()["params"], json!(["}{\"x", "\\", "]"]));
            }
        }
    }

    #[test]
    fn whitespace_between_messages_is_skipped() {
        let mut f = Framer::default();
        f.push(b"\n  {\"id\":1}\r\n\t{\"id\":2}  \n");
        assert_eq!(drain(&mut f), vec![json!({"id":1}), json!({"id":2})]);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut f = Framer::default();
        f.push(b"[1,2]");
        assert!(matches!(f.next_message(), Err(FrameError::NotAnObject)));
        let mut f = Framer::default();
        f.push(b"{\"id\": nope}");
        assert!(matches!(f.next_message(), Err(FrameError::Syntax(_))));
        let mut f = Framer::default();
        f.push(b"{\"id\": [1}");
        assert!(matches!(f.next_message(), Err(FrameError::Unbalanced)));
        let mut f = Framer::default();
        f.push(b"{\"a\":");
        f.push(&[b'['; 200]);
        assert!(matches!(f.next_message(), Err(FrameError::TooDeep(128))));
    }

    #[test]
    fn a_message_over_the_limit_is_refused_before_it_is_complete() {
        let mut f = Framer::new(Limits::for_message(1024));
        f.push(b"{\"result\":\"");
        f.push(&[b'a'; 1000]);
        assert!(f.next_message().unwrap().is_none());
        f.push(&[b'a'; 100]);
        assert!(matches!(f.next_message(), Err(FrameError::TooLarge(1024))));
        // Exactly at the limit is fine.
        let mut f = Framer::new(Limits::for_message(16));
        f.push(br#"{"a":"12345678"}"#);
        assert_eq!(f.next_message().unwrap(), Some(json!({"a": "12345678"})));
    }

    #[test]
    fn a_message_of_tiny_values_is_refused() {
        let mut f = Framer::new(Limits::for_message(4096));
        f.push(b"{\"result\":[");
        f.push(&b"1,".repeat(1000));
        assert!(matches!(
            f.next_message(),
            Err(FrameError::TooManyValues(512))
        ));
        // The same bytes as a few long strings pass.
        let mut f = Framer::new(Limits::for_message(4096));
        let long = format!(r#"{{"result":["{}"]}}"#, "1,".repeat(1000));
        f.push(long.as_bytes());
        assert!(f.next_message().unwrap().is_some());
    }

    #[test]
    fn a_big_message_leaves_no_big_buffer() {
        // 8 MiB in 64 KiB reads; the buffer shrinks back once it is out.
        let body = format!(r#"{{"id":1,"result":"{}"}}"#, "x".repeat(8 << 20));
        let mut f = Framer::new(Limits::for_message(16 << 20));
        let mut got = None;
        for chunk in body.as_bytes().chunks(64 << 10) {
            f.push(chunk);
            if let Some(v) = f.next_message().unwrap() {
                got = Some(v);
            }
        }
        assert_eq!(got.unwrap()["id"], json!(1));
        f.push(br#"{"id":2}"#);
        assert_eq!(f.next_message().unwrap(), Some(json!({"id": 2})));
        assert!(f.capacity() <= KEEP_CAPACITY, "{}", f.capacity());
    }
}
