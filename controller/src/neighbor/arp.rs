//! The in-switch ARP responder: an ARP request for an address Flowgate
//! answers for (a tenant port it knows, a load-balancer VIP) is turned into
//! the reply right there and sent back out of the ingress port, so such ARP
//! never reaches the controller or crosses hosts.
//!
//! Turning a request into a reply needs "copy field A to field B", which
//! OpenFlow 1.3 lacks; Open vSwitch's Nicira extension `NXAST_REG_MOVE`
//! provides it (the same action `ovs-ofctl` writes as `move:A->B`).

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};
use flowgate_openflow::{port_no, Action, MacAddr, Oxm};

/// Nicira's experimenter id.
const NX_VENDOR_ID: u32 = 0x0000_2320;
/// `NXAST_REG_MOVE`.
const NXAST_REG_MOVE: u16 = 6;

/// NXM field headers (class << 16 | field << 9 | length). We use the NXM
/// (not OXM) spellings because Open vSwitch reports `move` actions that way
/// in OpenFlow 1.3 flow stats; identical bytes keep reconciliation quiet.
mod nxm {
    pub const ETH_DST: u32 = 0x0000_0206;
    pub const ETH_SRC: u32 = 0x0000_0406;
    pub const ARP_SPA: u32 = 0x0000_2004;
    pub const ARP_TPA: u32 = 0x0000_2204;
    pub const ARP_SHA: u32 = 0x0001_2206;
    pub const ARP_THA: u32 = 0x0001_2406;
}

/// `move:src->dst` of a whole field of `bits` bits.
///
/// ```text
/// ofp_action_experimenter: type=0xffff len=24 experimenter=0x2320
/// subtype=6 | n_bits | src_ofs=0 | dst_ofs=0 | src header | dst header
/// ```
pub fn reg_move(src: u32, dst: u32, bits: u16) -> Action {
    let mut data = BytesMut::with_capacity(16);
    data.put_u16(NXAST_REG_MOVE);
    data.put_u16(bits);
    data.put_u16(0);
    data.put_u16(0);
    data.put_u32(src);
    data.put_u32(dst);
    Action::Experimenter {
        experimenter: NX_VENDOR_ID,
        data: data.freeze(),
    }
}

/// Actions that answer an ARP request for `ip` with `mac` and send the
/// reply back where the request came from.
pub fn responder(ip: Ipv4Addr, mac: MacAddr) -> Vec<Action> {
    vec![
        reg_move(nxm::ETH_SRC, nxm::ETH_DST, 48),
        Action::SetField(Oxm::EthSrc(mac, None)),
        Action::SetField(Oxm::ArpOp(2)),
        reg_move(nxm::ARP_SHA, nxm::ARP_THA, 48),
        Action::SetField(Oxm::ArpSha(mac, None)),
        reg_move(nxm::ARP_SPA, nxm::ARP_TPA, 32),
        Action::SetField(Oxm::ArpSpa(ip, None)),
        Action::Output {
            port: port_no::IN_PORT,
            max_len: 0,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use flowgate_openflow::wire::Wire;

    #[test]
    fn reg_move_bytes_match_ovs() {
        // `ovs-ofctl -O OpenFlow13 add-flow br 'actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]'`
        // as OVS 3.1 encodes it.
        let want: [u8; 24] = [
            0xff, 0xff, 0x00, 0x18, 0x00, 0x00, 0x23, 0x20, 0x00, 0x06, 0x00, 0x30, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x04, 0x06, 0x00, 0x00, 0x02, 0x06,
        ];
        let mut out = BytesMut::new();
        reg_move(nxm::ETH_SRC, nxm::ETH_DST, 48).emit(&mut out);
        assert_eq!(&out[..], &want[..]);
        let mut r = flowgate_openflow::wire::Reader::new(&want, "action");
        let parsed = Action::parse(&mut r).unwrap();
        assert_eq!(
            parsed,
            Action::Experimenter {
                experimenter: NX_VENDOR_ID,
                data: Bytes::copy_from_slice(&want[8..])
            }
        );
    }
}
