//! Framing of a JSON-RPC stream (RFC 7047 §4): messages are JSON objects
//! sent back to back with no length prefix, so one `read()` may hold half a
//! message or several. [`Framer`] buffers bytes and yields whole values.

use serde_json::Value;
use thiserror::Error;

/// Largest message we buffer (a monitor reply of a big host is a few MB).
pub const MAX_MESSAGE: usize = 64 << 20;

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("invalid JSON on the OVSDB stream: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("OVSDB message over {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("OVSDB message is not a JSON object")]
    NotAnObject,
}

/// Turns a byte stream into JSON values.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned as a message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. An
    /// error means the stream cannot be resynchronised: close it.
    pub fn next_message(&mut self) -> Result<Option<Value>, FrameError> {
        let Some(start) = self.buf.iter().position(|b| !b.is_ascii_whitespace()) else {
            self.buf.clear();
            return Ok(None);
        };
        if self.buf[start] != b'{' {
            return Err(FrameError::NotAnObject);
        }
        let mut values =
            serde_json::Deserializer::from_slice(&self.buf[start..]).into_iter::<Value>();
        match values.next() {
            None => Ok(None),
            Some(Ok(value)) => {
                let end = start + values.byte_offset();
                self.buf.drain(..end);
                Ok(Some(value))
            }
            Some(Err(e)) if e.is_eof() => {
                if self.buf.len() > MAX_MESSAGE {
                    Err(FrameError::TooLarge)
                } else {
                    Ok(None)
                }
            }
            Some(Err(e)) => Err(FrameError::Syntax(e)),
        }
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
        let text = br#"{"method":"echo","params":["}{\"x"],"id":"echo"}"#;
        let mut f = Framer::default();
        for (i, b) in text.iter().enumerate() {
            f.push(&[*b]);
            let got = f.next_message().unwrap();
            if i + 1 < text.len() {
                assert!(got.is_none(), "early message at byte {i}");
            } else {
                assert_eq!(got.unwrap()["params"], json!(["}{\"x"]));
            }
        }
    }

    #[test]
    fn whitespace_between_messages_is_skipped() {
        let mut f = Framer::default();
        f.push(b"\n  {\"id\":1}\r\n\t{\"id\":2}  \n");
        assert_eq!(drain(&mut f), vec![json!({"id":1}), json!({"id":2})]);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut f = Framer::default();
        f.push(b"[1,2]");
        assert!(matches!(f.next_message(), Err(FrameError::NotAnObject)));
        let mut f = Framer::default();
        f.push(b"{\"id\": nope}");
        assert!(matches!(f.next_message(), Err(FrameError::Syntax(_))));
    }
}
