use super::*;
use crate::model::{Actions, QueueAction};
use flowgate_controller::testing::{FakeSwitch, Packet};
use flowgate_openflow::MeterBand;
use serde_json::json;

fn policy(v: serde_json::Value) -> Policy {
    let p: Policy = serde_json::from_value(v).unwrap();
    p.validate().expect("valid");
    p
}

fn ports() -> BTreeMap<String, u32> {
    [("s1-eth1".to_owned(), 1), ("s1-eth2".to_owned(), 2)]
        .into_iter()
        .collect()
}

fn tcp_from(src: [u8; 4]) -> Packet {
    Packet::new(vec![
        Oxm::EthType(0x0800),
        Oxm::Ipv4Src(src.into(), None),
        Oxm::Ipv4Dst([10, 0, 0, 9].into(), None),
        Oxm::IpProto(6),
        Oxm::TcpSrc(40000),
        Oxm::TcpDst(5001),
    ])
}

/// A switch with the policy's entries and meter, and a last table that
/// outputs to port 9 what reaches it.
fn switch_with(p: &Policy) -> FakeSwitch {
    let mut sw = FakeSwitch::new(1);
    let desired = compile_policy(p, &ports());
    for m in &desired.meters {
        sw.meters.insert(m.id, m.spec.clone());
    }
    for f in desired.flows {
        sw.install(f);
    }
    sw.install(FlowEntry::new(
        flowgate_controller::pipeline::FLOOD,
        1,
        Match::default(),
        FlowSpec::new(
            Owner::Forwarding.cookie(1),
            flowgate_controller::desired::output_to(9),
        ),
    ));
    sw
}

#[test]
fn a_metered_policy_meters_only_its_packets_and_lets_them_on() {
    let p = policy(
        json!({"id": 7, "priority": 100, "match": {"ip_src": "10.0.0.1", "ip_proto": "tcp"},
        "actions": {"meter": {"rate": 2000}}}),
    );
    let sw = switch_with(&p);
    let t = sw.process(1, &tcp_from([10, 0, 0, 1]));
    assert_eq!(t.meters, vec![meter_id(7)]);
    assert_eq!(
        t.outputs,
        vec![9],
        "metered packets go on through the pipeline"
    );
    assert!(t.cookies.contains(&policy_cookie(7)));
    let other = sw.process(1, &tcp_from([10, 0, 0, 3]));
    assert!(other.meters.is_empty());
    assert_eq!(other.outputs, vec![9]);
    let meter = &compile_policy(&p, &ports()).meters[0];
    assert_eq!(meter.id, Owner::Qos.meter_id(7));
    assert_eq!(
        meter.spec.bands,
        vec![MeterBand::Drop {
            rate: 2000,
            burst_size: 2000
        }],
        "in the form OVS reports back"
    );
    assert_eq!(meter.spec.flags, meter_flags::KBPS);
}

#[test]
fn marking_and_queueing_set_their_fields() {
    let p = policy(json!({"id": 1, "priority": 10, "actions": {"dscp": 46, "queue": {"id": 2}}}));
    let sw = switch_with(&p);
    let t = sw.process(1, &tcp_from([10, 0, 0, 1]));
    assert_eq!(t.outputs, vec![9]);
    let (_, out) = &t.emitted[0];
    assert!(out.fields.contains(&Oxm::IpDscp(46)));
    let entries = compile_policy(&p, &ports()).flows;
    assert_eq!(entries.len(), 2, "one per IP version: DSCP needs IP");
    assert!(entries
        .iter()
        .all(|e| e
            .spec
            .instructions
            .contains(&Instruction::ApplyActions(vec![
                Action::SetQueue(2),
                Action::SetField(Oxm::IpDscp(46))
            ]))));
}

#[test]
fn enqueue_to_a_named_port_outputs_there() {
    let mut p = policy(json!({"id": 1, "priority": 10, "actions": {"dscp": 0},
        "placement": {"switch": 1}}));
    p.actions = Actions {
        queue: Some(QueueAction {
            id: 1,
            port: Some("s1-eth2".into()),
        }),
        ..Actions::default()
    };
    let sw = switch_with(&p);
    assert_eq!(sw.process(1, &tcp_from([10, 0, 0, 1])).outputs, vec![2]);
    // By number too (Floodlight's enqueue-port), and nothing for a port the
    // switch does not have.
    p.actions.queue.as_mut().unwrap().port = Some("2".into());
    assert_eq!(
        switch_with(&p).process(1, &tcp_from([10, 0, 0, 1])).outputs,
        vec![2]
    );
    p.actions.queue.as_mut().unwrap().port = Some("s1-eth9".into());
    assert!(compile_policy(&p, &ports()).is_empty());
}

#[test]
fn tenant_and_in_port_scope_the_entries() {
    let p = policy(json!({"id": 1, "priority": 10, "tenant": 5, "in_port": 1,
        "actions": {"meter": {"rate": 10, "unit": "pktps"}}}));
    let sw = switch_with(&p);
    let tenant = |vni: u32| {
        let mut pkt = tcp_from([10, 0, 0, 1]);
        pkt.fields.push(Oxm::Metadata(metadata::tenant(vni), None));
        pkt
    };
    assert_eq!(sw.process(1, &tenant(5)).meters.len(), 1);
    assert!(sw.process(1, &tenant(6)).meters.is_empty());
    assert!(sw.process(2, &tenant(5)).meters.is_empty());
}
