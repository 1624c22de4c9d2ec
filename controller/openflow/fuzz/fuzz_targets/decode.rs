//! Arbitrary bytes through the whole receive path: framing, decode, and for
//! anything accepted, encode and decode again.
//!
//! Properties checked (a failure aborts and libFuzzer saves the input):
//! - no panic anywhere in `frame_len` / `decode` / `encode`;
//! - `frame_len` never claims more bytes than the buffer holds;
//! - an accepted message re-encodes to exactly `header.length` bytes, with the
//!   same header, and decodes again to the same value (decode ∘ encode is the
//!   identity on everything decode produces).
//!
//! HELLO is the one deliberate exception to the length check: it is parsed
//! leniently (any version, missing element padding tolerated, non-1.3 bodies
//! ignored) so version negotiation can always answer, and so its re-encoding
//! may be canonical rather than byte-identical. It must still re-decode equal.
#![no_main]

use bytes::BytesMut;
use flowgate_openflow::{decode, encode_with_version, frame_len, Message};
use libfuzzer_sys::fuzz_target;

fn check(buf: &[u8]) {
    let Ok((header, msg)) = decode(buf) else {
        return;
    };
    let mut out = BytesMut::new();
    encode_with_version(header.version, header.xid, &msg, &mut out).expect("a decoded message fits");
    assert_eq!(out.len(), 8 + msg.body_len(), "body_len agrees with encode");
    let (header2, msg2) = decode(&out).expect("our own encoding decodes");
    assert_eq!(msg2, msg, "message survives a round trip");
    if !matches!(msg, Message::Hello(_)) {
        assert_eq!(out.len(), usize::from(header.length), "encoded length");
        assert_eq!(header2, header, "header survives a round trip");
    }
}

fuzz_target!(|data: &[u8]| {
    // The input as one whole message (decode checks header.length itself).
    check(data);
    // The input as a stream: cut messages off the front while framing allows.
    let mut rest = data;
    while let Ok(Some(len)) = frame_len(rest) {
        assert!(
            (8..=rest.len()).contains(&len),
            "frame_len {len} of {}",
            rest.len()
        );
        check(&rest[..len]);
        rest = &rest[len..];
    }
});
