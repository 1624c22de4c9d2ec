//! The LLDP frames Flowgate sends and recognizes for link discovery
//! (IEEE 802.1AB). Only what discovery needs, no allocation-free tricks:
//!
//! ```text
//! Ethernet  dst 01:80:c2:00:00:0e  src <port hw_addr>  type 0x88cc
//! TLV 1  Chassis ID  subtype 7 (locally assigned)  "dpid:<16 hex digits>"
//! TLV 2  Port ID     subtype 2 (port component)    port number, u32 big-endian
//! TLV 3  TTL         u16 seconds
//! TLV 127 org.       OUI 02:66:67, subtype 1       controller id, u64 big-endian
//! TLV 127 org.       OUI 02:66:67, subtype 2       time stamp u64 (ms), tag (16 bytes)
//! TLV 0  End
//! ```
//!
//! Each TLV starts with a 16-bit header: 7 bits type, 9 bits length. The
//! Flowgate TLV names the controller instance that sent the probe, so a
//! probe from another controller (or from this one before a restart) is not
//! mistaken for one of ours. Its OUI has the locally-administered bit set:
//! it is ours by convention, not a registered identifier. The second
//! Flowgate TLV authenticates the probe: a tag over chassis, port and time
//! stamp under the instance's secret (see [`super::auth`]).

use bytes::{BufMut, Bytes, BytesMut};
use flowgate_openflow::MacAddr;
use thiserror::Error;

use super::auth::TAG_LEN;

/// LLDP's EtherType.
pub const ETH_TYPE_LLDP: u16 = 0x88cc;
/// Nearest-bridge group address: never forwarded by 802.1D bridges.
pub const LLDP_DST: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e]);
/// Organizationally unique identifier of the Flowgate TLV.
pub const FLOWGATE_OUI: [u8; 3] = [0x02, 0x66, 0x67];
/// Subtype of the Flowgate TLV carrying the controller id.
const FLOWGATE_SUBTYPE_CONTROLLER: u8 = 1;
/// Subtype of the Flowgate TLV carrying the time stamp and tag.
const FLOWGATE_SUBTYPE_AUTH: u8 = 2;

const TLV_END: u8 = 0;
const TLV_CHASSIS_ID: u8 = 1;
const TLV_PORT_ID: u8 = 2;
const TLV_TTL: u8 = 3;
const TLV_ORG: u8 = 127;
const CHASSIS_LOCAL: u8 = 7;
const PORT_COMPONENT: u8 = 2;
const DPID_PREFIX: &[u8] = b"dpid:";

/// One discovery probe: who sent it from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Datapath id of the sending switch.
    pub dpid: u64,
    /// Port the probe left through.
    pub port: u32,
    /// Seconds a receiver may keep the information.
    pub ttl: u16,
    /// The controller instance that sent it; `None` for foreign LLDP.
    pub controller: Option<u64>,
    /// When it was sent and the tag vouching for it; `None` if absent.
    pub auth: Option<ProbeAuth>,
}

/// A probe's time stamp and tag (see [`super::auth::ProbeKey`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeAuth {
    /// Milliseconds since the sending instance's epoch.
    pub stamp: u64,
    pub tag: [u8; TAG_LEN],
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LldpError {
    #[error("frame too short for an Ethernet header")]
    ShortFrame,
    #[error("EtherType {0:#06x} is not LLDP")]
    NotLldp(u16),
    #[error("TLV at offset {0} runs past the frame")]
    Truncated(usize),
    #[error("mandatory TLV {0} missing or out of order")]
    Missing(&'static str),
    #[error("chassis id is not a Flowgate dpid")]
    ForeignChassis,
    #[error("port id is not a 4-byte port component")]
    ForeignPort,
}

impl Probe {
    /// The complete Ethernet frame, sent from a port whose address is `src`.
    pub fn to_frame(&self, src: MacAddr) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        out.put_slice(&LLDP_DST.0);
        out.put_slice(&src.0);
        out.put_u16(ETH_TYPE_LLDP);
        let chassis = format!("dpid:{:016x}", self.dpid);
        put_tlv(
            &mut out,
            TLV_CHASSIS_ID,
            &[&[CHASSIS_LOCAL], chassis.as_bytes()],
        );
        put_tlv(
            &mut out,
            TLV_PORT_ID,
            &[&[PORT_COMPONENT], &self.port.to_be_bytes()],
        );
        put_tlv(&mut out, TLV_TTL, &[&self.ttl.to_be_bytes()]);
        if let Some(id) = self.controller {
            put_tlv(
                &mut out,
                TLV_ORG,
                &[
                    &FLOWGATE_OUI,
                    &[FLOWGATE_SUBTYPE_CONTROLLER],
                    &id.to_be_bytes(),
                ],
            );
        }
        if let Some(auth) = &self.auth {
            put_tlv(
                &mut out,
                TLV_ORG,
                &[
                    &FLOWGATE_OUI,
                    &[FLOWGATE_SUBTYPE_AUTH],
                    &auth.stamp.to_be_bytes(),
                    &auth.tag,
                ],
            );
        }
        put_tlv(&mut out, TLV_END, &[]);
        // Pad to the Ethernet minimum (60 bytes without FCS).
        if out.len() < 60 {
            out.put_bytes(0, 60 - out.len());
        }
        out.freeze()
    }

    /// Parses an Ethernet frame carrying LLDP sent by a Flowgate controller
    /// (any instance: compare [`Probe::controller`] to tell which).
    pub fn from_frame(frame: &[u8]) -> Result<Probe, LldpError> {
        let eth_type = frame
            .get(12..14)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(LldpError::ShortFrame)?;
        if eth_type != ETH_TYPE_LLDP {
            return Err(LldpError::NotLldp(eth_type));
        }
        let mut tlvs = Tlvs {
            data: frame,
            offset: 14,
        };
        let chassis = tlvs.expect(TLV_CHASSIS_ID, "chassis id")?;
        let dpid = parse_chassis(chassis)?;
        let port = match tlvs.expect(TLV_PORT_ID, "port id")? {
            [PORT_COMPONENT, a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
            _ => return Err(LldpError::ForeignPort),
        };
        let ttl = match tlvs.expect(TLV_TTL, "ttl")? {
            [a, b] => u16::from_be_bytes([*a, *b]),
            _ => return Err(LldpError::Missing("ttl")),
        };
        let mut controller = None;
        let mut auth = None;
        while let Some((tlv_type, value)) = tlvs.next_tlv()? {
            match (tlv_type, value) {
                (TLV_END, _) => break,
                (TLV_ORG, [o1, o2, o3, FLOWGATE_SUBTYPE_AUTH, rest @ ..])
                    if [*o1, *o2, *o3] == FLOWGATE_OUI =>
                {
                    if let (Some(stamp), Some(tag)) = (rest.get(..8), rest.get(8..)) {
                        if let (Ok(stamp), Ok(tag)) =
                            (<[u8; 8]>::try_from(stamp), <[u8; TAG_LEN]>::try_from(tag))
                        {
                            let stamp = u64::from_be_bytes(stamp);
                            auth = Some(ProbeAuth { stamp, tag });
                        }
                    }
                }
                (TLV_ORG, [o1, o2, o3, FLOWGATE_SUBTYPE_CONTROLLER, id @ ..])
                    if [*o1, *o2, *o3] == FLOWGATE_OUI =>
                {
                    if let Ok(id) = <[u8; 8]>::try_from(id) {
                        controller = Some(u64::from_be_bytes(id));
                    }
                }
                _ => {}
            }
        }
        Ok(Probe {
            dpid,
            port,
            ttl,
            controller,
            auth,
        })
    }
}

fn put_tlv(out: &mut BytesMut, tlv_type: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    // Every TLV built here is far below the 9-bit limit (511 bytes).
    let header = (u16::from(tlv_type) << 9) | (len as u16 & 0x1ff);
    out.put_u16(header);
    for part in parts {
        out.put_slice(part);
    }
}

fn parse_chassis(value: &[u8]) -> Result<u64, LldpError> {
    let text = match value {
        [CHASSIS_LOCAL, rest @ ..] => rest
            .strip_prefix(DPID_PREFIX)
            .ok_or(LldpError::ForeignChassis)?,
        _ => return Err(LldpError::ForeignChassis),
    };
    let text = std::str::from_utf8(text).map_err(|_| LldpError::ForeignChassis)?;
    if text.len() != 16 {
        return Err(LldpError::ForeignChassis);
    }
    u64::from_str_radix(text, 16).map_err(|_| LldpError::ForeignChassis)
}

/// Cursor over the TLVs of an LLDPDU.
struct Tlvs<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> Tlvs<'a> {
    /// The next TLV, or `None` at the end of the frame (padding included:
    /// a frame without an End TLV simply ends).
    fn next_tlv(&mut self) -> Result<Option<(u8, &'a [u8])>, LldpError> {
        let Some(header) = self.data.get(self.offset..self.offset + 2) else {
            return Ok(None);
        };
        let header = u16::from_be_bytes([header[0], header[1]]);
        let tlv_type = (header >> 9) as u8;
        let len = usize::from(header & 0x1ff);
        let start = self.offset + 2;
        let value = self
            .data
            .get(start..start + len)
            .ok_or(LldpError::Truncated(self.offset))?;
        self.offset = start + len;
        Ok(Some((tlv_type, value)))
    }

    fn expect(&mut self, want: u8, name: &'static str) -> Result<&'a [u8], LldpError> {
        match self.next_tlv()? {
            Some((t, value)) if t == want => Ok(value),
            _ => Err(LldpError::Missing(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x11]);

    fn probe() -> Probe {
        Probe {
            dpid: 0x0000_0000_0000_002a,
            port: 3,
            ttl: 15,
            controller: Some(0xfeed_f00d_0000_0001),
            auth: Some(ProbeAuth {
                stamp: 0x0102_0304_0506_0708,
                tag: [0xa5; TAG_LEN],
            }),
        }
    }

    #[test]
    fn round_trips() {
        let frame = probe().to_frame(SRC);
        assert_eq!(Probe::from_frame(&frame), Ok(probe()));
        assert_eq!(&frame[0..6], &LLDP_DST.0);
        assert_eq!(&frame[6..12], &SRC.0);
        assert_eq!(frame.len(), 95);
    }

    #[test]
    fn byte_layout_is_lldp() {
        let frame = probe().to_frame(SRC);
        // Chassis id TLV: type 1, length 1 + 5 + 16 = 22.
        assert_eq!(&frame[14..16], &[0x02, 22]);
        assert_eq!(frame[16], CHASSIS_LOCAL);
        assert_eq!(&frame[17..38], b"dpid:000000000000002a");
        // Port id TLV: type 2, length 5, subtype 2, port 3.
        assert_eq!(&frame[38..45], &[0x04, 5, 2, 0, 0, 0, 3]);
        // TTL TLV: type 3, length 2, 15 s.
        assert_eq!(&frame[45..49], &[0x06, 2, 0, 15]);
        // Flowgate TLV: type 127, length 12.
        assert_eq!(&frame[49..51], &[0xfe, 12]);
        assert_eq!(&frame[51..55], &[0x02, 0x66, 0x67, 1]);
        // Authentication TLV: type 127, length 4 + 8 + 16.
        assert_eq!(&frame[63..65], &[0xfe, 28]);
        assert_eq!(&frame[65..69], &[0x02, 0x66, 0x67, 2]);
        assert_eq!(&frame[69..77], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&frame[77..93], &[0xa5; TAG_LEN]);
        // End TLV.
        assert_eq!(&frame[93..95], &[0, 0]);
    }

    #[test]
    fn probe_without_flowgate_tlv_has_no_controller() {
        let p = Probe {
            controller: None,
            auth: None,
            ..probe()
        };
        let frame = p.to_frame(SRC);
        assert_eq!(frame.len(), 60, "padded to the Ethernet minimum");
        assert_eq!(Probe::from_frame(&frame).unwrap().controller, None);
    }

    #[test]
    fn other_ethertypes_are_refused() {
        let mut frame = probe().to_frame(SRC).to_vec();
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(Probe::from_frame(&frame), Err(LldpError::NotLldp(0x0800)));
        assert_eq!(Probe::from_frame(&frame[..10]), Err(LldpError::ShortFrame));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let frame = probe().to_frame(SRC);
        // Up to the end of the TTL TLV every cut loses a mandatory TLV.
        for cut in 0..49 {
            assert!(Probe::from_frame(&frame[..cut]).is_err(), "cut at {cut}");
        }
        // A cut inside the Flowgate TLV is a truncated TLV.
        assert_eq!(
            Probe::from_frame(&frame[..55]),
            Err(LldpError::Truncated(49))
        );
    }

    #[test]
    fn foreign_chassis_and_port_ids_are_refused() {
        let mut frame = probe().to_frame(SRC).to_vec();
        frame[16] = 4; // MAC address subtype
        assert_eq!(Probe::from_frame(&frame), Err(LldpError::ForeignChassis));
        let mut frame = probe().to_frame(SRC).to_vec();
        frame[40] = 3; // port id subtype "MAC address"
        assert_eq!(Probe::from_frame(&frame), Err(LldpError::ForeignPort));
        let mut frame = probe().to_frame(SRC).to_vec();
        frame[30] = b'x'; // not hex
        assert_eq!(Probe::from_frame(&frame), Err(LldpError::ForeignChassis));
    }

    #[test]
    fn tlvs_out_of_order_are_refused() {
        let mut frame = probe().to_frame(SRC).to_vec();
        frame[38] = 0x06; // port id TLV relabelled as TTL
        assert_eq!(
            Probe::from_frame(&frame),
            Err(LldpError::Missing("port id"))
        );
    }
}
