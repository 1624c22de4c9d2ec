//! The IPv6 neighbour-discovery responder. A Neighbor Solicitation for an
//! address Flowgate answers for is sent to the controller by a flow entry
//! of the answering module (never flooded across hosts), and the controller
//! answers with the Neighbor Advertisement (RFC 4861 §4.4, §7.2.4) out of
//! the ingress port. (The switch cannot build an NA itself: OpenFlow 1.3
//! has no way to set the NA flags or turn the source link-layer option
//! into a target one.)

use std::net::Ipv6Addr;

use flowgate_openflow::MacAddr;

const ETH_IPV6: u16 = 0x86dd;
const ICMPV6: u8 = 58;
const NEIGHBOR_SOLICITATION: u8 = 135;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Solicited and Override flags (RFC 4861 §4.4).
const FLAGS_SOLICITED_OVERRIDE: u32 = 0x6000_0000;
/// Option type: target link-layer address.
const OPT_TARGET_LLADDR: u8 = 2;

/// What an NS asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicitation {
    pub eth_src: MacAddr,
    pub src: Ipv6Addr,
    pub target: Ipv6Addr,
}

impl Solicitation {
    /// Parses an Ethernet frame carrying an NS (no extension headers).
    pub fn parse(frame: &[u8]) -> Option<Solicitation> {
        let eth_src = MacAddr(frame.get(6..12)?.try_into().ok()?);
        if u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?) != ETH_IPV6 {
            return None;
        }
        let ip = frame.get(14..54)?;
        if ip[0] >> 4 != 6 || ip[6] != ICMPV6 {
            return None;
        }
        let icmp = frame.get(54..78)?;
        if icmp[0] != NEIGHBOR_SOLICITATION || icmp[1] != 0 {
            return None;
        }
        let addr = |b: &[u8]| -> Option<Ipv6Addr> {
            let octets: [u8; 16] = b.try_into().ok()?;
            Some(Ipv6Addr::from(octets))
        };
        Some(Solicitation {
            eth_src,
            src: addr(&ip[8..24])?,
            target: addr(&icmp[8..24])?,
        })
    }
}

/// The NA that answers `ns` on behalf of `mac`; `None` for duplicate
/// address detection (unspecified source): the owner's own probe must stay
/// unanswered.
pub fn advertisement(ns: &Solicitation, mac: MacAddr) -> Option<Vec<u8>> {
    if ns.src.is_unspecified() {
        return None;
    }
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[NEIGHBOR_ADVERTISEMENT, 0, 0, 0]);
    icmp.extend_from_slice(&FLAGS_SOLICITED_OVERRIDE.to_be_bytes());
    icmp.extend_from_slice(&ns.target.octets());
    icmp.extend_from_slice(&[OPT_TARGET_LLADDR, 1]);
    icmp.extend_from_slice(&mac.0);
    let sum = checksum(&ns.target, &ns.src, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut frame = Vec::with_capacity(14 + 40 + icmp.len());
    frame.extend_from_slice(&ns.eth_src.0);
    frame.extend_from_slice(&mac.0);
    frame.extend_from_slice(&ETH_IPV6.to_be_bytes());
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[ICMPV6, 255]);
    frame.extend_from_slice(&ns.target.octets());
    frame.extend_from_slice(&ns.src.octets());
    frame.extend_from_slice(&icmp);
    Some(frame)
}

/// ICMPv6 checksum over the IPv6 pseudo-header and the message.
fn checksum(src: &Ipv6Addr, dst: &Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum = ones_sum(0, &src.octets());
    sum = ones_sum(sum, &dst.octets());
    sum = ones_sum(sum, &(message.len() as u32).to_be_bytes());
    sum = ones_sum(sum, &[0, 0, 0, ICMPV6]);
    sum = ones_sum(sum, message);
    !(sum as u16)
}

fn ones_sum(mut sum: u32, bytes: &[u8]) -> u32 {
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NS as Linux sends it: fd00::1 asks for fd00::3 (to the
    /// solicited-node multicast address), with a source link-layer option.
    fn ns_frame(src: Ipv6Addr) -> Vec<u8> {
        let target: Ipv6Addr = "fd00::3".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1:ff00:3".parse().unwrap();
        let mac = [2, 0, 0, 0, 1, 1];
        let mut icmp = vec![NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&target.octets());
        icmp.extend_from_slice(&[1, 1]);
        icmp.extend_from_slice(&mac);
        let sum = checksum(&src, &dst, &icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut f = vec![0x33, 0x33, 0xff, 0, 0, 3];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        f.extend_from_slice(&[58, 255]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&icmp);
        f
    }

    #[test]
    fn advertisement_answers_the_solicitation() {
        let ns = Solicitation::parse(&ns_frame("fd00::1".parse().unwrap())).unwrap();
        assert_eq!(ns.target, "fd00::3".parse::<Ipv6Addr>().unwrap());
        let mac = MacAddr([2, 0, 0, 0, 1, 3]);
        let na = advertisement(&ns, mac).unwrap();
        assert_eq!(&na[0..6], &[2, 0, 0, 0, 1, 1], "to the asker");
        assert_eq!(&na[6..12], &mac.0);
        assert_eq!(
            &na[22..38],
            &"fd00::3".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(
            &na[38..54],
            &"fd00::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(na[54], NEIGHBOR_ADVERTISEMENT);
        assert_eq!(&na[58..62], &[0x60, 0, 0, 0], "solicited, override");
        assert_eq!(&na[78..80], &[OPT_TARGET_LLADDR, 1]);
        assert_eq!(&na[80..86], &mac.0);
        // A correct checksum makes the sum over pseudo-header and message
        // come out as all ones.
        let src: Ipv6Addr = "fd00::3".parse().unwrap();
        let dst: Ipv6Addr = "fd00::1".parse().unwrap();
        let mut sum = ones_sum(0, &src.octets());
        sum = ones_sum(sum, &dst.octets());
        sum = ones_sum(sum, &32u32.to_be_bytes());
        sum = ones_sum(sum, &[0, 0, 0, 58]);
        sum = ones_sum(sum, &na[54..]);
        assert_eq!(sum, 0xffff);
    }

    #[test]
    fn duplicate_address_probes_and_other_frames_get_no_answer() {
        let dad = Solicitation::parse(&ns_frame(Ipv6Addr::UNSPECIFIED)).unwrap();
        assert_eq!(advertisement(&dad, MacAddr([2, 0, 0, 0, 1, 3])), None);
        let mut not_ns = ns_frame("fd00::1".parse().unwrap());
        not_ns[54] = 128; // echo request
        assert_eq!(Solicitation::parse(&not_ns), None);
        assert_eq!(Solicitation::parse(&[0u8; 20]), None);
    }
}
