//! Datapath id text forms.
//!
//! Operators copy dpids from many tools: `ovs-ofctl show` prints 16 hex
//! digits, Ryu and ONOS print colon-separated bytes, Mininet configs use
//! decimal. The API accepts the unambiguous ones:
//! - decimal: `1`, `18446744073709551615`
//! - hex with a `0x`/`0X` prefix: `0x1`, `0x00000000000000ff`
//! - colon form of exactly 8 bytes: `00:00:00:00:00:00:00:01`
//!
//! Bare hex digits (`000000000000000a`) are rejected because they read as a
//! different decimal number. Output is always the colon form.

use std::fmt;

/// Why a dpid string was rejected; the text is shown to the API caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpidParseError(String);

impl fmt::Display for DpidParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DpidParseError {}

const EXPECTED: &str = "expected decimal (1), hex (0x1) or 8 colon-separated hex bytes \
                        (00:00:00:00:00:00:00:01)";

fn invalid(input: &str) -> DpidParseError {
    DpidParseError(format!("invalid dpid {input:?}: {EXPECTED}"))
}

/// Parses a dpid in any accepted form.
pub fn parse_dpid(input: &str) -> Result<u64, DpidParseError> {
    let s = input.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return parse_hex_digits(hex, 16).ok_or_else(|| invalid(input));
    }
    if s.contains(':') {
        return parse_colon(s).ok_or_else(|| invalid(input));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map_err(|_| DpidParseError(format!("invalid dpid {input:?}: larger than 64 bits")));
    }
    Err(invalid(input))
}

/// 1..=`max` hex digits (no sign, no underscores) as a u64.
fn parse_hex_digits(s: &str, max: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn parse_colon(s: &str) -> Option<u64> {
    let mut value: u64 = 0;
    let mut groups = 0;
    for part in s.split(':') {
        if part.len() != 2 {
            return None;
        }
        value = (value << 8) | parse_hex_digits(part, 2)?;
        groups += 1;
    }
    (groups == 8).then_some(value)
}

/// The colon form, `00:00:00:00:00:00:00:01`.
pub fn format_dpid(dpid: u64) -> String {
    let b = dpid.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_documented_form() {
        assert_eq!(parse_dpid("1"), Ok(1));
        assert_eq!(parse_dpid("0"), Ok(0));
        assert_eq!(parse_dpid("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_dpid("0x1"), Ok(1));
        assert_eq!(parse_dpid("0XfF"), Ok(255));
        assert_eq!(parse_dpid("0x00000000000000ff"), Ok(255));
        assert_eq!(parse_dpid("0xffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(parse_dpid("00:00:00:00:00:00:00:01"), Ok(1));
        assert_eq!(
            parse_dpid("0A:0b:00:00:00:00:01:00"),
            Ok(0x0a0b_0000_0000_0100)
        );
        assert_eq!(parse_dpid(" 7 "), Ok(7));
    }

    #[test]
    fn rejects_ambiguous_and_malformed_input() {
        for bad in [
            "",
            " ",
            "-1",
            "+1",
            "1.0",
            "abc",
            "000000000000000a",
            "0x",
            "0x1_0",
            "0x-1",
            "0x10000000000000000",
            "18446744073709551616",
            "00:00:00:00:00:00:01",
            "00:00:00:00:00:00:00:00:01",
            "0:0:0:0:0:0:0:1",
            "00:00:00:00:00:00:00:0g",
            "00:00:00:00:00:00:00:+1",
            "00-00-00-00-00-00-00-01",
            "00:00:00:00:00:00:00:",
        ] {
            assert!(parse_dpid(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn errors_say_what_is_accepted() {
        let e = parse_dpid("s1").unwrap_err().to_string();
        assert!(e.contains("\"s1\"") && e.contains("0x1"), "{e}");
        let e = parse_dpid("99999999999999999999").unwrap_err().to_string();
        assert!(e.contains("64 bits"), "{e}");
    }

    #[test]
    fn formats_colon_form_and_round_trips() {
        assert_eq!(format_dpid(1), "00:00:00:00:00:00:00:01");
        assert_eq!(
            format_dpid(0x0a0b_0c0d_0e0f_1011),
            "0a:0b:0c:0d:0e:0f:10:11"
        );
        for dpid in [0, 1, 0xff, 0x1234_5678_9abc_def0, u64::MAX] {
            assert_eq!(parse_dpid(&format_dpid(dpid)), Ok(dpid));
        }
    }
}
