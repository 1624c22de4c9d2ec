use bytes::Bytes;
use flowgate_controller::desired::FlowId;
use flowgate_controller::module::Change;
use flowgate_openflow::{FlowStats, Instruction, PacketInReason, Port};

use super::*;

const DPID: u64 = 3;
const A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);

fn frame(src: MacAddr, dst: MacAddr) -> Bytes {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    Bytes::from(f)
}

/// Feeds one table-miss packet-in; returns the changes.
fn miss(m: &mut L2Single, in_port: u32, src: MacAddr, dst: MacAddr, buffer_id: u32) -> Vec<Change> {
    let packet_in = PacketIn {
        buffer_id,
        total_len: 60,
        reason: PacketInReason::NoMatch,
        table_id: 0,
        cookie: 0,
        match_: Match::new().with(Oxm::InPort(in_port)),
        data: frame(src, dst),
    };
    let mut ctx = Ctx::new(std::time::Instant::now());
    m.handle(
        &Event::PacketIn {
            dpid: DPID,
            packet_in: &packet_in,
        },
        &mut ctx,
    );
    ctx.take_changes()
}

fn outputs(changes: &[Change]) -> Vec<(u32, u32, usize)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::PacketOut { packet_out, .. } => match packet_out.actions.as_slice() {
                [Action::Output { port, .. }] => {
                    Some((packet_out.buffer_id, *port, packet_out.data.len()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn flows(changes: &[Change]) -> Vec<FlowEntry> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::InstallFlow { entry, .. } => Some(entry.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn only_openflow_10_switches() {
    let m = L2Single::default();
    assert!(m.supports(OFP_VERSION_1_0));
    assert!(!m.supports(flowgate_openflow::OFP_VERSION_1_3));
}

#[test]
fn unknown_destination_is_flooded_and_the_source_learned() {
    let mut m = L2Single::default();
    let changes = miss(&mut m, 1, A, B, NO_BUFFER);
    assert_eq!(outputs(&changes), vec![(NO_BUFFER, port_no::FLOOD, 60)]);
    assert!(flows(&changes).is_empty());
    assert_eq!(m.port_of(DPID, A), Some(1));
}

/// The re-sends among `changes`: (key id, buffer id).
fn resends(changes: &[Change]) -> Vec<(FlowId, u32)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::ResendFlow { id, buffer_id, .. } => Some((*id, *buffer_id)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_buffered_packet_to_a_known_destination_is_answered_by_one_flow_mod() {
    let mut m = L2Single::default();
    miss(&mut m, 1, A, B, NO_BUFFER);
    // B answers from port 2: A is known, so a flow goes out, and it
    // carries the switch's buffer: no PACKET_OUT.
    let changes = miss(&mut m, 2, B, A, 77);
    let installed = flows(&changes);
    assert_eq!(installed.len(), 1);
    let e = &installed[0];
    assert_eq!((e.key.table_id, e.key.priority), (0, PAIR_PRIORITY));
    assert_eq!(e.spec.instructions, output_to(1));
    assert_eq!(e.key.match_().fields.len(), 3);
    assert_eq!(resends(&changes), vec![(e.key.id(), 77)]);
    assert!(outputs(&changes).is_empty(), "{changes:?}");
    // Every flow has a 1.0 form.
    let fm =
        flowgate_openflow::Message::FlowMod(e.to_flow_mod(flowgate_openflow::FlowModCommand::Add));
    assert!(flowgate_openflow::of10::encode(1, &fm, &mut bytes::BytesMut::new()).is_ok());
}

#[test]
fn an_unbuffered_packet_to_a_known_destination_gets_its_flow_and_a_packet_out() {
    let mut m = L2Single::default();
    miss(&mut m, 1, A, B, NO_BUFFER);
    let changes = miss(&mut m, 2, B, A, NO_BUFFER);
    let installed = flows(&changes);
    assert_eq!(resends(&changes), vec![(installed[0].key.id(), NO_BUFFER)]);
    assert_eq!(outputs(&changes), vec![(NO_BUFFER, 1, 60)]);
}

#[test]
fn a_repeated_miss_re_sends_the_declared_flow_until_it_is_removed() {
    let mut m = L2Single::default();
    miss(&mut m, 1, A, B, NO_BUFFER);
    let first = miss(&mut m, 2, B, A, 5);
    let id = flows(&first)[0].key.id();
    // The switch lacks it: the same key again, nothing restated.
    let again = miss(&mut m, 2, B, A, 6);
    assert!(flows(&again).is_empty(), "{again:?}");
    assert_eq!(resends(&again), vec![(id, 6)]);
    // Once it idled out, the next miss declares it anew.
    let removed = FlowRemoved {
        cookie: Owner::Forwarding.cookie(mac_object(A)),
        priority: PAIR_PRIORITY,
        reason: 0,
        table_id: 0,
        duration_sec: 300,
        duration_nsec: 0,
        idle_timeout: 300,
        hard_timeout: 0,
        packet_count: 1,
        byte_count: 60,
        match_: flows(&first)[0].key.match_().clone(),
    };
    let mut ctx = Ctx::new(std::time::Instant::now());
    m.handle(
        &Event::FlowRemoved {
            dpid: DPID,
            removed: &removed,
        },
        &mut ctx,
    );
    assert_eq!(flows(&miss(&mut m, 2, B, A, 7)).len(), 1);
    // A destination that moved gets a flow towards its new port.
    miss(&mut m, 3, A, B, NO_BUFFER);
    let moved = flows(&miss(&mut m, 2, B, A, 8));
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].spec.instructions, output_to(3));
}

#[test]
fn broadcast_is_flooded_and_same_port_traffic_dropped() {
    let mut m = L2Single::default();
    let changes = miss(&mut m, 1, A, MacAddr::BROADCAST, NO_BUFFER);
    assert_eq!(outputs(&changes), vec![(NO_BUFFER, port_no::FLOOD, 60)]);
    miss(&mut m, 1, B, A, NO_BUFFER);
    let changes = miss(&mut m, 1, A, B, NO_BUFFER);
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn a_port_going_down_forgets_its_hosts_and_restarts_adopt_flows() {
    let mut m = L2Single::default();
    miss(&mut m, 1, A, B, NO_BUFFER);
    let mut desc = Port {
        port_no: 1,
        hw_addr: MacAddr::ZERO,
        name: "p1".into(),
        config: 0,
        state: flowgate_openflow::port_state::LINK_DOWN,
        curr: 0,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 0,
        max_speed: 0,
    };
    let mut ctx = Ctx::new(std::time::Instant::now());
    let status = PortStatus {
        reason: PortReason::Modify,
        desc: desc.clone(),
    };
    m.handle(
        &Event::PortStatus {
            dpid: DPID,
            status: &status,
        },
        &mut ctx,
    );
    assert_eq!(m.port_of(DPID, A), None);
    desc.state = 0;
    let kept = FlowStats {
        table_id: 0,
        duration_sec: 5,
        duration_nsec: 0,
        priority: PAIR_PRIORITY,
        idle_timeout: 300,
        hard_timeout: 0,
        flags: 0,
        cookie: Owner::Forwarding.cookie(1),
        packet_count: 1,
        byte_count: 60,
        match_: Match::new().with(Oxm::EthDst(B, None)),
        instructions: vec![Instruction::ApplyActions(vec![Action::Output {
            port: 2,
            max_len: 0,
        }])],
    };
    let mut ctx = Ctx::new(std::time::Instant::now());
    m.handle(
        &Event::SwitchUp {
            dpid: DPID,
            ports: &[desc],
            installed: std::slice::from_ref(&kept),
            groups: &[],
            meters: &[],
        },
        &mut ctx,
    );
    assert_eq!(
        flows(&ctx.take_changes()),
        vec![FlowEntry::from_stats(&kept)]
    );
}

#[test]
fn an_adopted_flow_is_re_sent_by_the_key_it_was_adopted_with() {
    let mut m = L2Single::default();
    let kept = FlowStats {
        table_id: 0,
        duration_sec: 5,
        duration_nsec: 0,
        priority: PAIR_PRIORITY,
        idle_timeout: 300,
        hard_timeout: 0,
        flags: 1,
        cookie: Owner::Forwarding.cookie(mac_object(A)),
        packet_count: 1,
        byte_count: 60,
        match_: Match::new()
            .with(Oxm::InPort(2))
            .with(Oxm::EthSrc(B, None))
            .with(Oxm::EthDst(A, None)),
        instructions: vec![Instruction::ApplyActions(vec![Action::Output {
            port: 1,
            max_len: 0,
        }])],
    };
    let mut ctx = Ctx::new(std::time::Instant::now());
    m.handle(
        &Event::SwitchUp {
            dpid: DPID,
            ports: &[],
            installed: std::slice::from_ref(&kept),
            groups: &[],
            meters: &[],
        },
        &mut ctx,
    );
    let adopted = flows(&ctx.take_changes())[0].key.id();
    miss(&mut m, 1, A, B, NO_BUFFER);
    let changes = miss(&mut m, 2, B, A, 9);
    assert!(flows(&changes).is_empty(), "{changes:?}");
    assert_eq!(resends(&changes), vec![(adopted, 9)]);
}

#[test]
fn a_run_of_packet_ins_is_answered_as_one_by_one() {
    let packet_in = |in_port: u32, src, dst, buffer_id| {
        flowgate_openflow::Message::PacketIn(PacketIn {
            buffer_id,
            total_len: 60,
            reason: PacketInReason::NoMatch,
            table_id: 0,
            cookie: 0,
            match_: Match::new().with(Oxm::InPort(in_port)),
            data: frame(src, dst),
        })
    };
    let messages = vec![
        (1, packet_in(1, A, B, NO_BUFFER)),
        (2, packet_in(2, B, A, 5)),
        (3, packet_in(2, B, A, 6)),
    ];
    let mut batched = L2Single::default();
    let mut ctx = Ctx::new(std::time::Instant::now());
    batched.handle_packet_ins(
        DPID,
        flowgate_controller::module::PacketIns::new(&messages),
        &mut ctx,
    );
    let run = ctx.take_changes();
    let mut single = L2Single::default();
    let mut one_by_one = miss(&mut single, 1, A, B, NO_BUFFER);
    one_by_one.extend(miss(&mut single, 2, B, A, 5));
    one_by_one.extend(miss(&mut single, 2, B, A, 6));
    // Alike but for the key allocations a re-send names.
    let shown = |changes: &[Change]| -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::ResendFlow { buffer_id, .. } => format!("re-send releasing {buffer_id}"),
                other => format!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(shown(&run), shown(&one_by_one));
    assert_eq!(
        resends(&run).iter().map(|r| r.1).collect::<Vec<_>>(),
        [5, 6]
    );
}
