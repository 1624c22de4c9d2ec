//! Small shared wire types and reserved numbers (spec 7.1–7.2).

use core::fmt;
use core::str::FromStr;

/// An Ethernet MAC address as carried in OXM fields, ports and packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Group bit set (includes broadcast): such frames are flooded, never learned.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The address as a 48-bit integer (handy for cookies and sorting).
    pub fn to_u64(&self) -> u64 {
        self.0
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?} (want aa:bb:cc:dd:ee:ff)")]
pub struct ParseMacError(pub String);

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// Accepts six hex octets separated by `:` or `-`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

/// Reserved port numbers (spec 7.2.1, `enum ofp_port_no`).
pub mod port_no {
    /// Highest number of a physical/logical port.
    pub const MAX: u32 = 0xffff_ff00;
    /// Send the packet out the port it came in on.
    pub const IN_PORT: u32 = 0xffff_fff8;
    /// Submit the packet to the first flow table (packet-out only).
    pub const TABLE: u32 = 0xffff_fff9;
    /// Forward using the switch's non-OpenFlow pipeline.
    pub const NORMAL: u32 = 0xffff_fffa;
    /// Flood along the non-OpenFlow spanning tree.
    pub const FLOOD: u32 = 0xffff_fffb;
    /// All ports except the input port.
    pub const ALL: u32 = 0xffff_fffc;
    /// Send to the controller (packet-in).
    pub const CONTROLLER: u32 = 0xffff_fffd;
    /// The switch's local networking stack.
    pub const LOCAL: u32 = 0xffff_fffe;
    /// Wildcard (no port) in requests and filters.
    pub const ANY: u32 = 0xffff_ffff;
}

/// buffer_id meaning "the packet is not buffered, data is inline".
pub const NO_BUFFER: u32 = 0xffff_ffff;
/// Wildcard group in flow-mod/stats filters.
pub const OFPG_ANY: u32 = 0xffff_ffff;
/// All groups (group-mod delete).
pub const OFPG_ALL: u32 = 0xffff_fffc;
/// Highest group id usable by the controller.
pub const OFPG_MAX: u32 = 0xffff_ff00;
/// All tables (flow-mod delete, stats requests).
pub const OFPTT_ALL: u8 = 0xff;
/// Output to controller: send the whole packet, do not buffer.
pub const OFPCML_NO_BUFFER: u16 = 0xffff;
/// Highest max_len usable in an output-to-controller action.
pub const OFPCML_MAX: u16 = 0xffe5;
/// All meters (meter-mod delete, stats requests).
pub const OFPM_ALL: u32 = 0xffff_ffff;
/// Highest meter id usable by the controller.
pub const OFPM_MAX: u32 = 0xffff_0000;

/// OpenFlow 1.0 wire version.
pub const OFP_VERSION_1_0: u8 = 1;
/// OpenFlow 1.3 wire version, the only one this codec decodes beyond HELLO.
pub const OFP_VERSION_1_3: u8 = 4;

/// Bit set in OXM VLAN_VID values when a VLAN tag is present (spec 7.2.3.8).
pub const OFPVID_PRESENT: u16 = 0x1000;
/// VLAN_VID value matching packets without a VLAN tag.
pub const OFPVID_NONE: u16 = 0x0000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_display_and_parse_round_trip() {
        let m = MacAddr([0x00, 0x1b, 0x21, 0xaa, 0xbb, 0x0c]);
        assert_eq!(m.to_string(), "00:1b:21:aa:bb:0c");
        assert_eq!("00:1b:21:aa:bb:0c".parse::<MacAddr>(), Ok(m));
        assert_eq!("00-1B-21-AA-BB-0C".parse::<MacAddr>(), Ok(m));
        assert_eq!(m.to_u64(), 0x001b_21aa_bb0c);
    }

    #[test]
    fn mac_parse_rejects_malformed() {
        for bad in [
            "",
            "00:11:22:33:44",
            "00:11:22:33:44:55:66",
            "00:11:22:33:44:5g",
            "000:11:22:33:44:55",
            "00::22:33:44:55",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]).is_multicast());
        assert!(!MacAddr([0x02, 0, 0, 0, 0, 1]).is_multicast());
        assert!(!MacAddr::ZERO.is_broadcast());
    }
}
