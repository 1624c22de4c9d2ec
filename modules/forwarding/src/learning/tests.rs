use bytes::Bytes;
use flowgate_controller::module::{Change, PacketIns};
use flowgate_controller::testing::{FakeSwitch, Packet};
use flowgate_openflow::{FlowRemoved, Message, PacketInReason, Port, PortStatus};

use super::*;

const DPID: u64 = 7;
const A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);

/// A learning module and the fake switch its changes land on.
struct Harness {
    module: L2Learning,
    switch: FakeSwitch,
}

impl Harness {
    fn up(installed: &[FlowStats]) -> Self {
        let mut h = Harness {
            module: L2Learning::default(),
            switch: FakeSwitch::new(DPID),
        };
        h.event(&Event::SwitchUp {
            dpid: DPID,
            ports: &[],
            installed,
            groups: &[],
            meters: &[],
        });
        h
    }

    fn event(&mut self, event: &Event<'_>) -> Vec<Change> {
        let mut ctx = Ctx::new(std::time::Instant::now());
        self.module.handle(event, &mut ctx);
        let changes = ctx.take_changes();
        self.switch.apply(&changes);
        changes
    }

    /// Sends a frame from `src` to `dst` into the fake switch; if the switch
    /// copies it to the controller, feeds the packet-in to the module.
    fn send(&mut self, in_port: u32, src: MacAddr, dst: MacAddr) -> Vec<u32> {
        let packet = Packet::new(vec![Oxm::EthSrc(src, None), Oxm::EthDst(dst, None)]);
        let trace = self.switch.process(in_port, &packet);
        if trace.to_controller() {
            let packet_in = PacketIn {
                buffer_id: flowgate_openflow::NO_BUFFER,
                total_len: 60,
                reason: PacketInReason::Action,
                table_id: LEARN,
                cookie: trace.cookies[trace.tables.iter().position(|t| *t == LEARN).unwrap()],
                match_: Match::new().with(Oxm::InPort(in_port)),
                data: frame(src, dst),
            };
            self.event(&Event::PacketIn {
                dpid: DPID,
                packet_in: &packet_in,
            });
        }
        trace
            .outputs
            .into_iter()
            .filter(|p| *p != port_no::CONTROLLER)
            .collect()
    }
}

fn frame(src: MacAddr, dst: MacAddr) -> Bytes {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(60, 0);
    Bytes::from(f)
}

#[test]
fn unknown_destination_floods_and_learns_the_source() {
    let mut h = Harness::up(&[]);
    assert_eq!(h.send(1, A, B), vec![port_no::FLOOD]);
    assert_eq!(h.module.port_of(DPID, A), Some(1));
    // The reply goes straight to A's port, and B is learned on the way.
    assert_eq!(h.send(2, B, A), vec![1]);
    assert_eq!(h.send(1, A, B), vec![2]);
}

#[test]
fn known_sources_no_longer_reach_the_controller() {
    let mut h = Harness::up(&[]);
    h.send(1, A, B);
    let trace = h.switch.process(
        1,
        &Packet::new(vec![Oxm::EthSrc(A, None), Oxm::EthDst(B, None)]),
    );
    assert!(!trace.to_controller());
}

#[test]
fn a_moved_host_is_relearned_and_its_old_entry_removed() {
    let mut h = Harness::up(&[]);
    h.send(1, A, B);
    h.send(2, B, A);
    h.send(3, A, B);
    assert_eq!(h.module.port_of(DPID, A), Some(3));
    assert_eq!(h.send(2, B, A), vec![3]);
    assert!(!h.switch.flows.contains_key(&learn_key(A, 1)));
}

#[test]
fn multicast_sources_are_never_learned() {
    let mut h = Harness::up(&[]);
    h.send(1, MacAddr::BROADCAST, B);
    assert_eq!(h.module.port_of(DPID, MacAddr::BROADCAST), None);
}

#[test]
fn an_expired_entry_forgets_the_host_and_its_sibling() {
    let mut h = Harness::up(&[]);
    h.send(1, A, B);
    let removed = FlowRemoved {
        cookie: Owner::Forwarding.cookie(mac_object(A)),
        priority: HOST_PRIORITY,
        reason: 0,
        table_id: FORWARD,
        duration_sec: 300,
        duration_nsec: 0,
        idle_timeout: 300,
        hard_timeout: 0,
        packet_count: 0,
        byte_count: 0,
        match_: Match::new().with(Oxm::EthDst(A, None)),
    };
    h.event(&Event::FlowRemoved {
        dpid: DPID,
        removed: &removed,
    });
    assert_eq!(h.module.port_of(DPID, A), None);
    assert!(!h.switch.flows.contains_key(&learn_key(A, 1)));
}

#[test]
fn a_port_going_down_forgets_its_hosts() {
    let mut h = Harness::up(&[]);
    h.send(1, A, B);
    h.send(2, B, A);
    let status = PortStatus {
        reason: PortReason::Delete,
        desc: Port {
            port_no: 1,
            hw_addr: MacAddr::ZERO,
            name: "p1".into(),
            config: 0,
            state: 0,
            curr: 0,
            advertised: 0,
            supported: 0,
            peer: 0,
            curr_speed: 0,
            max_speed: 0,
        },
    };
    h.event(&Event::PortStatus {
        dpid: DPID,
        status: &status,
    });
    assert_eq!(h.module.port_of(DPID, A), None);
    assert_eq!(h.module.port_of(DPID, B), Some(2));
}

#[test]
fn host_entries_found_after_a_restart_are_adopted_unchanged() {
    let mut first = Harness::up(&[]);
    first.send(1, A, B);
    let installed: Vec<FlowStats> = first
        .switch
        .flows
        .iter()
        .filter(|(k, _)| k.priority == HOST_PRIORITY)
        .map(|(k, s)| FlowStats {
            table_id: k.table_id,
            duration_sec: 42,
            duration_nsec: 0,
            priority: k.priority,
            idle_timeout: s.idle_timeout,
            hard_timeout: s.hard_timeout,
            flags: s.flags,
            cookie: s.cookie,
            packet_count: 5,
            byte_count: 500,
            match_: k.match_().clone(),
            instructions: s.instructions.clone(),
        })
        .collect();
    assert_eq!(installed.len(), 2);
    let mut restarted = Harness::up(&installed);
    assert_eq!(restarted.module.port_of(DPID, A), Some(1));
    for flow in &installed {
        let entry = FlowEntry::from_stats(flow);
        assert_eq!(restarted.switch.flows.get(&entry.key), Some(&entry.spec));
    }
    assert_eq!(restarted.send(2, B, A), vec![1]);
    // An adopted source entry can be re-sent: it was declared with the key
    // the host table keeps.
    assert!(restarted.switch.lose(&learn_key(A, 1)));
    restarted.send(1, A, B);
    assert!(restarted.switch.flows.contains_key(&learn_key(A, 1)));
}

#[test]
fn a_learned_host_whose_source_entry_is_missing_gets_it_again() {
    let mut h = Harness::up(&[]);
    h.send(1, A, B);
    // The switch lost A's source entry: A's packets hit the learn miss again.
    assert!(h.switch.lose(&learn_key(A, 1)));
    let packet_in = PacketIn {
        buffer_id: flowgate_openflow::NO_BUFFER,
        total_len: 60,
        reason: PacketInReason::Action,
        table_id: LEARN,
        cookie: Owner::Forwarding.cookie(LEARN_MISS_OBJECT),
        match_: Match::new().with(Oxm::InPort(1)),
        data: frame(A, B),
    };
    let mut ctx = Ctx::new(std::time::Instant::now());
    h.module.handle(
        &Event::PacketIn {
            dpid: DPID,
            packet_in: &packet_in,
        },
        &mut ctx,
    );
    let changes = ctx.take_changes();
    assert!(
        matches!(&changes[..], [Change::ResendFlow { dpid: DPID, id, .. }]
            if *id == h.module.macs[&DPID].get(&A).unwrap().learn.id()),
        "only the source entry, re-sent: {changes:?}"
    );
    h.switch.apply(&changes);
    let trace = h.switch.process(
        1,
        &Packet::new(vec![Oxm::EthSrc(A, None), Oxm::EthDst(B, None)]),
    );
    assert!(!trace.to_controller());
    assert_eq!(trace.outputs, vec![port_no::FLOOD], "B is still unknown");
}

#[test]
fn a_run_of_packet_ins_is_answered_as_one_at_a_time_would_be() {
    let packet_in = |in_port, src| PacketIn {
        buffer_id: flowgate_openflow::NO_BUFFER,
        total_len: 60,
        reason: PacketInReason::Action,
        table_id: LEARN,
        cookie: Owner::Forwarding.cookie(LEARN_MISS_OBJECT),
        match_: Match::new().with(Oxm::InPort(in_port)),
        data: frame(src, B),
    };
    // Known on its port (a re-send), new, moved, and a re-send again.
    let run = [
        (1, Message::PacketIn(packet_in(1, A))),
        (2, Message::PacketIn(packet_in(1, B))),
        (3, Message::PacketIn(packet_in(2, A))),
        (4, Message::PacketIn(packet_in(2, A))),
    ];
    let mut at_once = Harness::up(&[]);
    at_once.send(1, A, B);
    let mut ctx = Ctx::new(std::time::Instant::now());
    at_once
        .module
        .handle_packet_ins(DPID, PacketIns::new(&run), &mut ctx);
    let batched = ctx.take_changes();

    let mut one_by_one = Harness::up(&[]);
    one_by_one.send(1, A, B);
    let mut each = Vec::new();
    for (_, message) in &run {
        let Message::PacketIn(packet_in) = message else {
            unreachable!()
        };
        each.extend(one_by_one.event(&Event::PacketIn {
            dpid: DPID,
            packet_in,
        }));
    }
    // Equal but for the key allocations that ids name, which differ
    // between the two modules.
    let without_pointers = |changes: &[Change]| {
        let text = format!("{changes:?}");
        let mut parts = text.split("match_ptr: ");
        let mut out = parts.next().unwrap_or_default().to_string();
        for part in parts {
            out.push_str(part.trim_start_matches(|c: char| c.is_ascii_digit()));
        }
        out
    };
    assert_eq!(without_pointers(&batched), without_pointers(&each));
    let kinds: Vec<&str> = batched
        .iter()
        .map(|c| match c {
            Change::ResendFlow { .. } => "resend",
            Change::InstallFlow { .. } => "install",
            Change::RemoveFlow { .. } => "remove",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["resend", "install", "install", "remove", "install", "install", "resend"]
    );
    // The last re-send names the entry learned on A's new port.
    let learned = at_once.module.macs[&DPID].get(&A).unwrap().learn.id();
    assert!(
        matches!(batched.last(), Some(Change::ResendFlow { id, .. }) if *id == learned),
        "{batched:?}"
    );
}

/// A table miss as a 1.3 switch sends it from a table-miss entry someone
/// else installed: cookie 0, table 0, reason no-match.
fn table_miss(in_port: u32, src: MacAddr, dst: MacAddr, buffer_id: u32) -> PacketIn {
    PacketIn {
        buffer_id,
        total_len: 60,
        reason: PacketInReason::NoMatch,
        table_id: 0,
        cookie: 0,
        match_: Match::new().with(Oxm::InPort(in_port)),
        data: frame(src, dst),
    }
}

/// The resubmits among `changes`: (in_port, buffer_id, data).
fn resubmits(changes: &[Change]) -> Vec<(u32, u32, &Bytes)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Resubmit {
                in_port,
                buffer_id,
                data,
                ..
            } => Some((*in_port, *buffer_id, data)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_unbuffered_table_miss_is_learned_and_sent_on_through_the_tables() {
    let mut h = Harness::up(&[]);
    let miss = table_miss(1, A, B, flowgate_openflow::NO_BUFFER);
    let changes = h.event(&Event::PacketIn {
        dpid: DPID,
        packet_in: &miss,
    });
    assert_eq!(h.module.port_of(DPID, A), Some(1));
    assert_eq!(
        resubmits(&changes),
        [(1, miss.buffer_id, &miss.data)],
        "{changes:?}"
    );
    // A known host's miss: only the packet. The miss happened in a table
    // before ours, so it says nothing of the source entry.
    let changes = h.event(&Event::PacketIn {
        dpid: DPID,
        packet_in: &miss,
    });
    assert!(
        matches!(&changes[..], [Change::Resubmit { .. }]),
        "{changes:?}"
    );
}

#[test]
fn a_buffered_table_miss_of_a_new_host_is_released_by_its_source_entry() {
    let mut h = Harness::up(&[]);
    let first = h.event(&Event::PacketIn {
        dpid: DPID,
        packet_in: &table_miss(1, A, B, 11),
    });
    assert!(resubmits(&first).is_empty(), "{first:?}");
    let learned = h.module.macs[&DPID].get(&A).unwrap().learn.id();
    assert!(first
        .iter()
        .any(|c| matches!(c, Change::ResendFlow { id, buffer_id: 11, .. } if *id == learned)));
    // In a run, each known host's packet is released by one resubmit.
    let messages: Vec<(u32, Message)> = [12, 13]
        .into_iter()
        .map(|b| (b, Message::PacketIn(table_miss(1, A, B, b))))
        .collect();
    let mut ctx = Ctx::new(std::time::Instant::now());
    h.module
        .handle_packet_ins(DPID, PacketIns::new(&messages), &mut ctx);
    let buffers: Vec<u32> = ctx
        .take_changes()
        .iter()
        .map(|c| match c {
            Change::Resubmit { buffer_id, .. } => *buffer_id,
            other => panic!("only resubmits: {other:?}"),
        })
        .collect();
    assert_eq!(buffers, [12, 13]);
}

#[test]
fn a_table_miss_with_no_source_to_learn_is_still_sent_on() {
    let mut h = Harness::up(&[]);
    let changes = h.event(&Event::PacketIn {
        dpid: DPID,
        packet_in: &table_miss(1, MacAddr::BROADCAST, B, 21),
    });
    let outs = resubmits(&changes);
    assert_eq!(outs.len(), 1, "{changes:?}");
    assert_eq!(outs[0].1, 21);
    assert!(outs[0].2.is_empty(), "the switch has the packet");
}
