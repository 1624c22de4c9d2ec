//! Port description, port status and port-mod (spec 7.2.1, 7.3.4.3, 7.4.3).

use bytes::{BufMut, BytesMut};

use crate::error::Result;
use crate::types::MacAddr;
use crate::wire::{put_zeros, Reader, Wire};

/// `ofp_port_config` bits (administrative settings).
pub mod port_config {
    pub const PORT_DOWN: u32 = 1 << 0;
    pub const NO_RECV: u32 = 1 << 2;
    pub const NO_FWD: u32 = 1 << 5;
    pub const NO_PACKET_IN: u32 = 1 << 6;
}

/// `ofp_port_state` bits (what the switch observes).
pub mod port_state {
    pub const LINK_DOWN: u32 = 1 << 0;
    pub const BLOCKED: u32 = 1 << 1;
    pub const LIVE: u32 = 1 << 2;
}

/// `ofp_port_features` bits (curr/advertised/supported/peer).
pub mod port_features {
    pub const F_10MB_HD: u32 = 1 << 0;
    pub const F_10MB_FD: u32 = 1 << 1;
    pub const F_100MB_HD: u32 = 1 << 2;
    pub const F_100MB_FD: u32 = 1 << 3;
    pub const F_1GB_HD: u32 = 1 << 4;
    pub const F_1GB_FD: u32 = 1 << 5;
    pub const F_10GB_FD: u32 = 1 << 6;
    pub const F_40GB_FD: u32 = 1 << 7;
    pub const F_100GB_FD: u32 = 1 << 8;
    pub const F_1TB_FD: u32 = 1 << 9;
    pub const F_OTHER: u32 = 1 << 10;
    pub const F_COPPER: u32 = 1 << 11;
    pub const F_FIBER: u32 = 1 << 12;
    pub const F_AUTONEG: u32 = 1 << 13;
    pub const F_PAUSE: u32 = 1 << 14;
    pub const F_PAUSE_ASYM: u32 = 1 << 15;
}

/// Size of `OFP_MAX_PORT_NAME_LEN` name fields.
pub const PORT_NAME_LEN: usize = 16;

/// Reads an `n`-byte NUL-padded string field: up to the first NUL, invalid
/// UTF-8 bytes become `'?'` one for one, so the result never outgrows the
/// field and re-encodes to the same length.
pub fn read_fixed_str(r: &mut Reader<'_>, n: usize) -> Result<String> {
    let raw = r.bytes(n)?;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(n);
    let mut s = String::with_capacity(end);
    for chunk in raw[..end].utf8_chunks() {
        s.push_str(chunk.valid());
        s.extend(chunk.invalid().iter().map(|_| '?'));
    }
    Ok(s)
}

/// Writes `s` into an `n`-byte NUL-padded field, cut at a char boundary.
pub fn put_fixed_str(out: &mut BytesMut, s: &str, n: usize) {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.put_slice(&s.as_bytes()[..end]);
    put_zeros(out, n - end);
}

/// `ofp_port` (64 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Port {
    pub port_no: u32,
    pub hw_addr: MacAddr,
    /// Up to 16 bytes on the wire, NUL padded.
    pub name: String,
    pub config: u32,
    pub state: u32,
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    /// kbps
    pub curr_speed: u32,
    /// kbps
    pub max_speed: u32,
}

impl Port {
    pub const LEN: usize = 64;

    /// Link up, not blocked and not administratively down.
    pub fn is_up(&self) -> bool {
        self.state & port_state::LINK_DOWN == 0 && self.config & port_config::PORT_DOWN == 0
    }
}

impl Wire for Port {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let port_no = r.u32()?;
        r.skip(4)?;
        let hw_addr = MacAddr(r.array()?);
        r.skip(2)?;
        let name = read_fixed_str(r, PORT_NAME_LEN)?;
        Ok(Port {
            port_no,
            hw_addr,
            name,
            config: r.u32()?,
            state: r.u32()?,
            curr: r.u32()?,
            advertised: r.u32()?,
            supported: r.u32()?,
            peer: r.u32()?,
            curr_speed: r.u32()?,
            max_speed: r.u32()?,
        })
    }

    fn buffer_len(&self) -> usize {
        Self::LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.port_no);
        put_zeros(out, 4);
        out.put_slice(&self.hw_addr.0);
        put_zeros(out, 2);
        put_fixed_str(out, &self.name, PORT_NAME_LEN);
        for v in [
            self.config,
            self.state,
            self.curr,
            self.advertised,
            self.supported,
            self.peer,
            self.curr_speed,
            self.max_speed,
        ] {
            out.put_u32(v);
        }
    }
}

/// Why a port-status message was sent (`ofp_port_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortReason {
    Add,
    Delete,
    Modify,
    Unknown(u8),
}

impl From<u8> for PortReason {
    fn from(v: u8) -> Self {
        match v {
            0 => PortReason::Add,
            1 => PortReason::Delete,
            2 => PortReason::Modify,
            n => PortReason::Unknown(n),
        }
    }
}

impl From<PortReason> for u8 {
    fn from(v: PortReason) -> u8 {
        match v {
            PortReason::Add => 0,
            PortReason::Delete => 1,
            PortReason::Modify => 2,
            PortReason::Unknown(n) => n,
        }
    }
}

/// OFPT_PORT_STATUS body: reason, 7 pad bytes, `ofp_port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortStatus {
    pub reason: PortReason,
    pub desc: Port,
}

impl Wire for PortStatus {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let reason = PortReason::from(r.u8()?);
        r.skip(7)?;
        Ok(PortStatus {
            reason,
            desc: Port::parse(r)?,
        })
    }

    fn buffer_len(&self) -> usize {
        8 + Port::LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u8(self.reason.into());
        put_zeros(out, 7);
        self.desc.emit(out);
    }
}

/// OFPT_PORT_MOD body (32 bytes): change `config` bits selected by `mask`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMod {
    pub port_no: u32,
    /// Must match the port's address; guards against renumbered ports.
    pub hw_addr: MacAddr,
    pub config: u32,
    pub mask: u32,
    /// Features to advertise; 0 leaves them unchanged.
    pub advertise: u32,
}

impl Wire for PortMod {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let port_no = r.u32()?;
        r.skip(4)?;
        let hw_addr = MacAddr(r.array()?);
        r.skip(2)?;
        let config = r.u32()?;
        let mask = r.u32()?;
        let advertise = r.u32()?;
        r.skip(4)?;
        Ok(PortMod {
            port_no,
            hw_addr,
            config,
            mask,
            advertise,
        })
    }

    fn buffer_len(&self) -> usize {
        32
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.port_no);
        put_zeros(out, 4);
        out.put_slice(&self.hw_addr.0);
        put_zeros(out, 2);
        out.put_u32(self.config);
        out.put_u32(self.mask);
        out.put_u32(self.advertise);
        put_zeros(out, 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::arb_port;
    use proptest::prelude::*;

    fn port_fixture() -> (Vec<u8>, Port) {
        let mut b = vec![
            0, 0, 0, 1, 0, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0, 0,
        ];
        b.extend_from_slice(b"s1-eth1\0\0\0\0\0\0\0\0\0");
        for v in [0u32, 4, 0x2840, 0, 0, 0, 10_000_000, 0] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        let p = Port {
            port_no: 1,
            hw_addr: MacAddr([0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f]),
            name: "s1-eth1".into(),
            config: 0,
            state: port_state::LIVE,
            curr: 0x2840,
            advertised: 0,
            supported: 0,
            peer: 0,
            curr_speed: 10_000_000,
            max_speed: 0,
        };
        (b, p)
    }

    #[test]
    fn port_fixture_round_trip() {
        let (bytes, want) = port_fixture();
        assert_eq!(bytes.len(), 64);
        let mut r = Reader::new(&bytes, "t");
        assert_eq!(Port::parse(&mut r).unwrap(), want);
        assert!(r.is_empty());
        assert!(want.is_up());
        let mut out = BytesMut::new();
        want.emit(&mut out);
        assert_eq!(out.to_vec(), bytes);
    }

    #[test]
    fn port_status_fixture() {
        let (port_bytes, port) = port_fixture();
        let mut bytes = vec![2, 0, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&port_bytes);
        let mut r = Reader::new(&bytes, "t");
        let ps = PortStatus::parse(&mut r).unwrap();
        assert_eq!(
            ps,
            PortStatus {
                reason: PortReason::Modify,
                desc: port
            }
        );
        let mut out = BytesMut::new();
        ps.emit(&mut out);
        assert_eq!(out.to_vec(), bytes);
        // Truncated port.
        let mut r = Reader::new(&bytes[..40], "t");
        assert!(PortStatus::parse(&mut r).is_err());
    }

    #[test]
    fn port_mod_fixture() {
        let bytes = [
            0, 0, 0, 3, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0,
            0, 0, 0,
        ];
        let pm = PortMod {
            port_no: 3,
            hw_addr: MacAddr([1, 2, 3, 4, 5, 6]),
            config: port_config::PORT_DOWN,
            mask: port_config::PORT_DOWN,
            advertise: 0,
        };
        let mut r = Reader::new(&bytes, "t");
        assert_eq!(PortMod::parse(&mut r).unwrap(), pm);
        let mut out = BytesMut::new();
        pm.emit(&mut out);
        assert_eq!(out.to_vec(), bytes);
    }

    #[test]
    fn long_names_are_truncated_to_field() {
        let p = Port {
            name: "a-very-long-interface-name".into(),
            ..Port::default()
        };
        let mut out = BytesMut::new();
        p.emit(&mut out);
        assert_eq!(out.len(), 64);
        let back = Port::parse(&mut Reader::new(&out, "t")).unwrap();
        assert_eq!(back.name, "a-very-long-inte");
    }

    proptest! {
        #[test]
        fn port_round_trip(p in arb_port()) {
            let mut out = BytesMut::new();
            p.emit(&mut out);
            prop_assert_eq!(Port::parse(&mut Reader::new(&out, "t")).unwrap(), p);
        }
    }
}
