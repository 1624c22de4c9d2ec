//! Inputs found by the `decode` fuzz target (see FUZZING.md), kept as
//! regression tests. Each must decode (or be rejected) without panicking, and
//! anything accepted must re-encode to a message that decodes to the same value.

use bytes::BytesMut;
use flowgate_openflow::{decode, encode_with_version, Message};

/// The fuzz target's property: decode ∘ encode is the identity on whatever
/// decode accepts, and (HELLO aside) the re-encoding is as long as the input.
fn assert_stable(input: &[u8]) {
    let Ok((header, msg)) = decode(input) else {
        return;
    };
    let mut out = BytesMut::new();
    encode_with_version(header.version, header.xid, &msg, &mut out)
        .expect("a decoded message fits");
    let (_, again) = decode(&out).expect("our own encoding decodes");
    assert_eq!(again, msg, "re-decoded message differs");
    if !matches!(msg, Message::Hello(_)) {
        assert_eq!(out.len(), input.len(), "re-encoded length differs");
    }
}

/// PORT_STATUS whose 16-byte port name is not UTF-8 (found after ~2.8k runs).
/// port.rs decodes names with `String::from_utf8_lossy`, so each bad byte
/// becomes U+FFFD (3 bytes); the 16-byte field then cuts the string on emit,
/// mid-character, and the name decodes differently the second time.
#[test]
fn port_name_with_invalid_utf8_is_stable() {
    let input: [u8; 80] = [
        4, 12, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 242, 11, 164,
        208, 63, 112, 0, 0, 231, 167, 129, 227, 129, 174, 227, 131, 157, 227, 255, 255, 255, 255,
        136, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 40, 8, 0, 0, 40, 0, 0, 0, 40, 8, 0, 0, 40, 8, 0, 0,
        19, 136, 0, 0, 19, 136,
    ];
    assert_stable(&input);

    // The same defect, minimal: a port name of sixteen 0xff bytes in a
    // PORT_DESC reply.
    let mut reply = vec![4, 19, 0, 80, 0, 0, 0, 1, 0, 13, 0, 0, 0, 0, 0, 0];
    reply.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    reply.extend([0xff; 16]);
    reply.extend([0; 32]);
    assert_eq!(reply.len(), 80);
    assert_stable(&reply);
}
