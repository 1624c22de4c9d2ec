//! The probe state machine on a simulated clock.

use std::net::IpAddr;

use super::*;

const SOURCE: &str = "10.0.0.250";

fn key(n: u8) -> TargetKey {
    TargetKey {
        pool: "web".into(),
        member: MemberKey {
            address: IpAddr::from([10, 0, 0, n]),
            port: 80,
        },
    }
}

fn target(n: u8, kind: CheckKind) -> Target {
    Target {
        key: key(n),
        source: SOURCE.parse().unwrap(),
        check: Check {
            kind,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 2,
        },
    }
}

/// A prober with `targets` and its simulated clock.
struct Sim {
    prober: Prober,
    start: Instant,
    now: Instant,
    wall: SystemTime,
}

impl Sim {
    fn new(targets: Vec<Target>) -> Sim {
        let now = Instant::now();
        let mut prober = Prober::default();
        prober.set_targets(targets, now, SystemTime::UNIX_EPOCH, &HashMap::new());
        Sim {
            prober,
            start: now,
            now,
            wall: SystemTime::UNIX_EPOCH,
        }
    }

    /// Moves the clock to `ms` after the start, polling every 250 ms.
    fn until(&mut self, ms: u64) -> Vec<Out> {
        let mut out = Vec::new();
        let end = self.start + Duration::from_millis(ms);
        while self.now < end {
            self.now = (self.now + Duration::from_millis(250)).min(end);
            self.wall = SystemTime::UNIX_EPOCH + (self.now - self.start);
            out.extend(self.prober.poll(self.now, self.wall));
        }
        out
    }

    fn answer(&mut self, answer: Answer) -> Vec<Out> {
        self.prober.on_answer(&answer, self.wall)
    }
}

fn sent(out: &[Out]) -> Vec<ProbePacket> {
    out.iter()
        .filter_map(|o| match o {
            Out::Send { packet, .. } => Some(packet.clone()),
            _ => None,
        })
        .collect()
}

fn changes(out: &[Out]) -> Vec<(Health, Health)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Changed { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

/// The member's answer to a SYN: SYN-ACK (listening) or RST (closed).
fn reply_to(syn: &ProbePacket, listening: bool) -> Answer {
    let ProbePacket::Tcp { src, dst, seq, .. } = syn else {
        panic!("not TCP: {syn:?}")
    };
    Answer::Tcp {
        src: *dst,
        dst: *src,
        seq: 1000,
        ack: Some(seq.wrapping_add(1)),
        syn: listening,
        rst: !listening,
        payload: vec![],
    }
}

#[test]
fn a_tcp_member_that_answers_is_up_and_each_probe_is_closed() {
    let mut sim = Sim::new(vec![target(2, CheckKind::Tcp { port: 80 })]);
    let out = sim.until(250);
    let syns = sent(&out);
    assert_eq!(syns.len(), 1, "one SYN at once: {out:?}");
    let ProbePacket::Tcp { src, dst, syn, .. } = &syns[0] else {
        panic!()
    };
    assert!(*syn);
    assert_eq!(src.ip().to_string(), SOURCE);
    assert_eq!(dst.to_string(), "10.0.0.2:80");
    let out = sim.answer(reply_to(&syns[0], true));
    assert_eq!(changes(&out), vec![(Health::Unknown, Health::Up)]);
    let rst = sent(&out);
    assert!(
        matches!(&rst[..], [ProbePacket::Tcp { rst: true, .. }]),
        "the half-open connection is reset: {rst:?}"
    );
    // The next probe a second later.
    assert!(sent(&sim.until(1000)).is_empty());
    assert_eq!(sent(&sim.until(1250)).len(), 1);
}

#[test]
fn fall_failures_take_a_member_down_and_rise_successes_bring_it_back() {
    let mut sim = Sim::new(vec![target(2, CheckKind::Tcp { port: 80 })]);
    let syn = sent(&sim.until(250)).remove(0);
    sim.answer(reply_to(&syn, true));
    assert_eq!(sim.prober.health(&key(2)), Some(Health::Up));
    // The server goes away: RST to every SYN.
    let mut transitions = Vec::new();
    for second in 1..=3u64 {
        let out = sim.until(250 + second * 1000);
        for syn in sent(&out) {
            transitions.extend(changes(&sim.answer(reply_to(&syn, false))));
        }
        if second == 1 {
            assert!(transitions.is_empty(), "one failure is not enough (fall 2)");
        }
    }
    assert_eq!(transitions, vec![(Health::Up, Health::Down)]);
    let status = sim.prober.status(&key(2)).unwrap();
    assert_eq!(status.reason, "connection refused");
    assert_eq!(
        status.since,
        SystemTime::UNIX_EPOCH + Duration::from_millis(2250)
    );
    // Back: two successes in a row.
    let mut back = Vec::new();
    for second in 4..=5u64 {
        for syn in sent(&sim.until(250 + second * 1000)) {
            back.extend(changes(&sim.answer(reply_to(&syn, true))));
        }
        if second == 4 {
            assert!(back.is_empty(), "one success is not enough (rise 2)");
        }
    }
    assert_eq!(back, vec![(Health::Down, Health::Up)]);
    assert_eq!(sim.prober.status(&key(2)).unwrap().transitions.len(), 3);
}

#[test]
fn silence_is_a_failure_after_the_timeout() {
    let mut sim = Sim::new(vec![target(3, CheckKind::Tcp { port: 80 })]);
    let out = sim.until(2750);
    assert_eq!(sent(&out).len(), 3, "a probe every second");
    assert_eq!(
        changes(&out),
        vec![(Health::Unknown, Health::Down)],
        "two timeouts"
    );
    assert_eq!(
        sim.prober.status(&key(3)).unwrap().reason,
        "no answer in time"
    );
    // A late answer to an old probe counts for nothing.
    let late = reply_to(&sent(&out)[0], true);
    assert!(sim.answer(late).is_empty());
}

#[test]
fn answers_must_come_from_the_member_to_the_probe() {
    let mut sim = Sim::new(vec![target(2, CheckKind::Tcp { port: 80 })]);
    let syn = sent(&sim.until(250)).remove(0);
    let Answer::Tcp {
        src,
        dst,
        seq,
        ack,
        syn: s,
        rst,
        payload,
    } = reply_to(&syn, true)
    else {
        panic!()
    };
    let spoofed = Answer::Tcp {
        src: "10.0.0.9:80".parse().unwrap(),
        dst,
        seq,
        ack,
        syn: s,
        rst,
        payload: payload.clone(),
    };
    assert!(sim.answer(spoofed).is_empty());
    let wrong_ack = Answer::Tcp {
        src,
        dst,
        seq,
        ack: Some(12345),
        syn: s,
        rst,
        payload,
    };
    assert!(sim.answer(wrong_ack).is_empty());
    assert_eq!(sim.prober.health(&key(2)), Some(Health::Unknown));
}

#[test]
fn http_gets_the_path_and_checks_the_status() {
    let kind = CheckKind::Http {
        port: 80,
        path: "/health".into(),
        expected: 200,
    };
    let mut sim = Sim::new(vec![target(2, kind)]);
    let syn = sent(&sim.until(250)).remove(0);
    let out = sim.answer(reply_to(&syn, true));
    assert!(
        changes(&out).is_empty(),
        "the handshake alone is not enough"
    );
    let get = sent(&out);
    let [ProbePacket::Tcp {
        src,
        dst,
        seq,
        ack,
        payload,
        ..
    }] = &get[..]
    else {
        panic!("{get:?}")
    };
    assert_eq!(*ack, Some(1001));
    let text = String::from_utf8(payload.clone()).unwrap();
    assert!(text.starts_with("GET /health HTTP/1.0\r\n"), "{text}");
    let answer = |status: &str| Answer::Tcp {
        src: *dst,
        dst: *src,
        seq: 1001,
        ack: Some(seq.wrapping_add(payload.len() as u32)),
        syn: false,
        rst: false,
        payload: format!("HTTP/1.0 {status}\r\nServer: x\r\n\r\n").into_bytes(),
    };
    let out = sim.answer(answer("200 OK"));
    assert_eq!(changes(&out), vec![(Health::Unknown, Health::Up)]);
    assert!(matches!(
        &sent(&out)[..],
        [ProbePacket::Tcp { rst: true, .. }]
    ));
    // Next round: a 503 is a failure, named.
    let syn = sent(&sim.until(1250)).remove(0);
    let out = sim.answer(reply_to(&syn, true));
    let ProbePacket::Tcp {
        src,
        dst,
        seq,
        payload,
        ..
    } = sent(&out).remove(0)
    else {
        panic!()
    };
    let bad = Answer::Tcp {
        src: dst,
        dst: src,
        seq: 1001,
        ack: Some(seq.wrapping_add(payload.len() as u32)),
        syn: false,
        rst: false,
        payload: b"HTTP/1.0 503 Service Unavailable\r\n\r\n".to_vec(),
    };
    sim.answer(bad);
    assert_eq!(
        sim.prober.status(&key(2)).unwrap().reason,
        "HTTP 503, expected 200"
    );
    assert_eq!(status_code(b"HTTP/1.1 404 Not Found\r\n"), Some(404));
    assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
}

#[test]
fn icmp_echo_replies_count() {
    let mut sim = Sim::new(vec![target(4, CheckKind::Icmp)]);
    let echo = sent(&sim.until(250)).remove(0);
    let ProbePacket::Echo { dst, id, seq, .. } = echo else {
        panic!("{echo:?}")
    };
    assert_eq!(dst.to_string(), "10.0.0.4");
    assert!(sim
        .answer(Answer::EchoReply {
            src: dst,
            id,
            seq: seq.wrapping_add(1)
        })
        .is_empty());
    let out = sim.answer(Answer::EchoReply { src: dst, id, seq });
    assert_eq!(changes(&out), vec![(Health::Unknown, Health::Up)]);
}

#[test]
fn targets_keep_their_health_across_updates_and_restore_it() {
    let mut sim = Sim::new(vec![target(2, CheckKind::Tcp { port: 80 })]);
    let syn = sent(&sim.until(250)).remove(0);
    sim.answer(reply_to(&syn, true));
    let now = sim.now;
    sim.prober.set_targets(
        vec![
            target(2, CheckKind::Tcp { port: 80 }),
            target(3, CheckKind::Icmp),
        ],
        now,
        sim.wall,
        &HashMap::from([(key(3), (Health::Down, SystemTime::UNIX_EPOCH))]),
    );
    assert_eq!(sim.prober.health(&key(2)), Some(Health::Up), "kept");
    assert_eq!(sim.prober.health(&key(3)), Some(Health::Down), "restored");
    sim.prober
        .set_targets(vec![], now, sim.wall, &HashMap::new());
    assert_eq!(sim.prober.health(&key(2)), None);
    assert_eq!(sim.prober.next_deadline(), None);
}

#[test]
fn a_probe_that_could_not_be_sent_counts_for_nothing() {
    let mut sim = Sim::new(vec![target(2, CheckKind::Tcp { port: 80 })]);
    for second in 0..5u64 {
        let out = sim.until(250 + second * 1000);
        assert_eq!(sent(&out).len(), 1);
        // The member is not located: the module sends nothing.
        sim.prober.abandon(&key(2));
    }
    assert_eq!(sim.prober.health(&key(2)), Some(Health::Unknown));
    assert!(sim.prober.status(&key(2)).unwrap().transitions.is_empty());
}
