//! Health checks as a pure state machine, OVN service-monitor style: the
//! controller builds each probe (TCP SYN; HTTP: SYN, then ACK with the GET,
//! then RST once the status line is in; ICMP echo), the module sends it as
//! a packet-out from the probe source toward the member, and the answers,
//! trapped back by a flow, come in here. Rise and fall count consecutive
//! results; a transition is reported once, with its reason.
//!
//! No clock and no I/O: [`Prober::poll`] and [`Prober::on_answer`] take the
//! time, so tests drive it with a simulated clock. The module's task is
//! only the clock (a tick every 250 ms).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::MemberKey;

/// Transitions kept per target for REST.
pub const HISTORY: usize = 10;
/// Source ports probes use (ephemeral range, rotating).
const PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;

/// A member's health as its monitor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = MemberHealth)]
pub enum Health {
    /// Not probed to a conclusion yet: it keeps its bucket.
    Unknown,
    Up,
    /// Out of the buckets; established connections are left alone.
    Down,
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Tcp {
        port: u16,
    },
    Http {
        port: u16,
        path: String,
        expected: u16,
    },
    Icmp,
}

/// A monitor's settings, for one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u8,
    pub fall: u8,
}

/// Who is probed: a member of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    pub pool: String,
    pub member: MemberKey,
}

/// A member to probe, from `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub key: TargetKey,
    pub source: IpAddr,
    pub check: Check,
}

/// A packet to send toward a member (the module adds Ethernet and picks
/// the port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbePacket {
    Tcp {
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        /// The acknowledgement number, with the ACK flag.
        ack: Option<u32>,
        syn: bool,
        rst: bool,
        payload: Vec<u8>,
    },
    Echo {
        src: IpAddr,
        dst: IpAddr,
        id: u16,
        seq: u16,
    },
}

/// A packet trapped on its way to a probe source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Tcp {
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        ack: Option<u32>,
        syn: bool,
        rst: bool,
        payload: Vec<u8>,
    },
    EchoReply {
        src: IpAddr,
        id: u16,
        seq: u16,
    },
}

/// What the module must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Send {
        key: TargetKey,
        packet: ProbePacket,
    },
    Changed {
        key: TargetKey,
        from: Health,
        to: Health,
        reason: String,
    },
}

/// One health transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Transition {
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String)]
    pub at: SystemTime,
    pub from: Health,
    pub to: Health,
    pub reason: String,
}

pub(crate) fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

/// A target's health with its story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub health: Health,
    pub since: SystemTime,
    /// The last probe's result.
    pub reason: String,
    /// Newest last.
    pub transitions: VecDeque<Transition>,
}

#[derive(Debug, Clone)]
struct State {
    target: Target,
    status: Status,
    successes: u8,
    failures: u8,
    next_at: Instant,
    probe: Option<InFlight>,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    deadline: Instant,
    stage: Stage,
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    /// SYN sent from `port` with sequence number `isn`.
    Syn {
        port: u16,
        isn: u32,
    },
    /// HTTP: handshake done, GET of `sent` bytes sent.
    Get {
        port: u16,
        isn: u32,
        sent: u32,
    },
    Echo {
        id: u16,
        seq: u16,
    },
}

/// Every target's probing state.
#[derive(Debug, Clone)]
pub struct Prober {
    targets: BTreeMap<TargetKey, State>,
    by_port: HashMap<u16, TargetKey>,
    by_echo: HashMap<u16, TargetKey>,
    next_port: u16,
    next_id: u16,
    counter: u32,
}

impl Default for Prober {
    fn default() -> Self {
        Prober {
            targets: BTreeMap::new(),
            by_port: HashMap::new(),
            by_echo: HashMap::new(),
            next_port: *PORTS.start(),
            next_id: 1,
            counter: 0,
        }
    }
}

impl Prober {
    /// Replaces the set of targets: new ones start in `restored`'s state
    /// (what an earlier run persisted) or unknown and are probed at once;
    /// kept ones keep their health; others are forgotten.
    pub fn set_targets(
        &mut self,
        targets: Vec<Target>,
        now: Instant,
        wall: SystemTime,
        restored: &HashMap<TargetKey, (Health, SystemTime)>,
    ) {
        let mut old = std::mem::take(&mut self.targets);
        for target in targets {
            let key = target.key.clone();
            let state = match old.remove(&key) {
                Some(mut state) => {
                    if state.target != target {
                        self.cancel(&mut state);
                        state.next_at = now;
                    }
                    state.target = target;
                    state
                }
                None => {
                    let (health, since) = restored
                        .get(&key)
                        .copied()
                        .unwrap_or((Health::Unknown, wall));
                    State {
                        target,
                        status: Status {
                            health,
                            since,
                            reason: String::new(),
                            transitions: VecDeque::new(),
                        },
                        successes: 0,
                        failures: 0,
                        next_at: now,
                        probe: None,
                    }
                }
            };
            self.targets.insert(key, state);
        }
        for (_, mut gone) in old {
            self.cancel(&mut gone);
        }
    }

    fn cancel(&mut self, state: &mut State) {
        match state.probe.take().map(|p| p.stage) {
            Some(Stage::Syn { port, .. } | Stage::Get { port, .. }) => {
                self.by_port.remove(&port);
            }
            Some(Stage::Echo { id, .. }) => {
                self.by_echo.remove(&id);
            }
            None => {}
        }
    }

    /// Forgets `key`'s probe in flight without a result: it could not be
    /// sent (the member is not located yet, e.g. right after a restart),
    /// which says nothing about the member's health.
    pub fn abandon(&mut self, key: &TargetKey) {
        if let Some(mut state) = self.targets.remove(key) {
            self.cancel(&mut state);
            self.targets.insert(key.clone(), state);
        }
    }

    /// The health of `key`, if it is probed.
    pub fn status(&self, key: &TargetKey) -> Option<&Status> {
        self.targets.get(key).map(|s| &s.status)
    }

    pub fn health(&self, key: &TargetKey) -> Option<Health> {
        self.status(key).map(|s| s.health)
    }

    /// The targets, with their status.
    pub fn statuses(&self) -> impl Iterator<Item = (&TargetKey, &Status)> {
        self.targets.iter().map(|(k, s)| (k, &s.status))
    }

    /// Times probes out and starts the probes that are due.
    pub fn poll(&mut self, now: Instant, wall: SystemTime) -> Vec<Out> {
        let mut out = Vec::new();
        let keys: Vec<TargetKey> = self.targets.keys().cloned().collect();
        for key in keys {
            let timed_out = self.targets[&key].probe.is_some_and(|p| now >= p.deadline);
            if timed_out {
                let mut state = self.targets.remove(&key).expect("listed");
                let stage = state.probe.map(|p| p.stage);
                self.cancel(&mut state);
                if let Some(Stage::Get { port, isn, sent }) = stage {
                    out.push(Out::Send {
                        key: key.clone(),
                        packet: rst(&state.target, port, isn.wrapping_add(1).wrapping_add(sent)),
                    });
                }
                self.targets.insert(key.clone(), state);
                self.record(&key, false, "no answer in time", wall, &mut out);
            }
            let due = {
                let s = &self.targets[&key];
                s.probe.is_none() && now >= s.next_at
            };
            if due {
                if let Some(packet) = self.start(&key, now) {
                    out.push(Out::Send {
                        key: key.clone(),
                        packet,
                    });
                }
            }
        }
        out
    }

    /// When the next probe or timeout is due (for the clock's benefit).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.targets
            .values()
            .map(|s| s.probe.map_or(s.next_at, |p| p.deadline))
            .min()
    }

    fn start(&mut self, key: &TargetKey, now: Instant) -> Option<ProbePacket> {
        let (check, source, member) = {
            let s = &self.targets[key];
            (s.target.check.clone(), s.target.source, s.target.key.member)
        };
        self.counter = self.counter.wrapping_add(1);
        let (stage, packet) = match &check.kind {
            CheckKind::Tcp { port } | CheckKind::Http { port, .. } => {
                let src_port = self.free_port()?;
                let isn = self.counter.wrapping_mul(0x9e37_79b9) ^ 0x5bd1_e995;
                self.by_port.insert(src_port, key.clone());
                (
                    Stage::Syn {
                        port: src_port,
                        isn,
                    },
                    ProbePacket::Tcp {
                        src: SocketAddr::new(source, src_port),
                        dst: SocketAddr::new(member.address, *port),
                        seq: isn,
                        ack: None,
                        syn: true,
                        rst: false,
                        payload: Vec::new(),
                    },
                )
            }
            CheckKind::Icmp => {
                let id = self.free_id();
                let seq = (self.counter & 0xffff) as u16;
                self.by_echo.insert(id, key.clone());
                (
                    Stage::Echo { id, seq },
                    ProbePacket::Echo {
                        src: source,
                        dst: member.address,
                        id,
                        seq,
                    },
                )
            }
        };
        let s = self.targets.get_mut(key).expect("listed");
        s.next_at = now + check.interval;
        s.probe = Some(InFlight {
            deadline: now + check.timeout,
            stage,
        });
        Some(packet)
    }

    fn free_port(&mut self) -> Option<u16> {
        let span = u32::from(PORTS.end() - PORTS.start()) + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port >= *PORTS.end() {
                *PORTS.start()
            } else {
                port + 1
            };
            if !self.by_port.contains_key(&port) {
                return Some(port);
            }
        }
        None
    }

    fn free_id(&mut self) -> u16 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.by_echo.contains_key(&id) {
                return id;
            }
        }
    }

    /// Handles a packet a member sent to a probe source.
    pub fn on_answer(&mut self, answer: &Answer, wall: SystemTime) -> Vec<Out> {
        let mut out = Vec::new();
        match answer {
            Answer::Tcp {
                src,
                dst,
                seq,
                ack,
                syn,
                rst: reset,
                payload,
            } => {
                let Some(key) = self.by_port.get(&dst.port()).cloned() else {
                    return out;
                };
                let Some(state) = self.targets.get(&key) else {
                    return out;
                };
                let target = state.target.clone();
                let port = match &target.check.kind {
                    CheckKind::Tcp { port } | CheckKind::Http { port, .. } => *port,
                    CheckKind::Icmp => return out,
                };
                if *src != SocketAddr::new(key.member.address, port) || dst.ip() != target.source {
                    return out;
                }
                let Some(stage) = state.probe.map(|p| p.stage) else {
                    return out;
                };
                match stage {
                    Stage::Syn { port: sport, isn } => {
                        if *reset {
                            self.finish(&key, false, "connection refused", wall, &mut out);
                        } else if *syn && *ack == Some(isn.wrapping_add(1)) {
                            match &target.check.kind {
                                CheckKind::Http { path, .. } => {
                                    let get = format!(
                                        "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: flowgate-lb\r\n\r\n",
                                        key.member.address
                                    )
                                    .into_bytes();
                                    let sent = get.len() as u32;
                                    out.push(Out::Send {
                                        key: key.clone(),
                                        packet: ProbePacket::Tcp {
                                            src: SocketAddr::new(target.source, sport),
                                            dst: *src,
                                            seq: isn.wrapping_add(1),
                                            ack: Some(seq.wrapping_add(1)),
                                            syn: false,
                                            rst: false,
                                            payload: get,
                                        },
                                    });
                                    if let Some(p) =
                                        self.targets.get_mut(&key).and_then(|s| s.probe.as_mut())
                                    {
                                        p.stage = Stage::Get {
                                            port: sport,
                                            isn,
                                            sent,
                                        };
                                    }
                                }
                                _ => {
                                    out.push(Out::Send {
                                        key: key.clone(),
                                        packet: rst(&target, sport, isn.wrapping_add(1)),
                                    });
                                    self.finish(&key, true, "handshake answered", wall, &mut out);
                                }
                            }
                        }
                    }
                    Stage::Get {
                        port: sport,
                        isn,
                        sent,
                    } => {
                        let expected = match &target.check.kind {
                            CheckKind::Http { expected, .. } => *expected,
                            _ => return out,
                        };
                        if *reset {
                            self.finish(&key, false, "connection reset", wall, &mut out);
                        } else if !payload.is_empty() {
                            out.push(Out::Send {
                                key: key.clone(),
                                packet: rst(&target, sport, isn.wrapping_add(1).wrapping_add(sent)),
                            });
                            match status_code(payload) {
                                Some(code) if code == expected => {
                                    self.finish(&key, true, &format!("HTTP {code}"), wall, &mut out)
                                }
                                Some(code) => self.finish(
                                    &key,
                                    false,
                                    &format!("HTTP {code}, expected {expected}"),
                                    wall,
                                    &mut out,
                                ),
                                None => {
                                    self.finish(&key, false, "not an HTTP answer", wall, &mut out)
                                }
                            }
                        }
                    }
                    Stage::Echo { .. } => {}
                }
            }
            Answer::EchoReply { src, id, seq } => {
                let Some(key) = self.by_echo.get(id).cloned() else {
                    return out;
                };
                let matches = self.targets.get(&key).is_some_and(|s| {
                    matches!(s.probe.map(|p| p.stage), Some(Stage::Echo { seq: want, .. }) if want == *seq)
                });
                if matches && *src == key.member.address {
                    self.finish(&key, true, "echo answered", wall, &mut out);
                }
            }
        }
        out
    }

    /// Ends the target's probe with a result.
    fn finish(
        &mut self,
        key: &TargetKey,
        ok: bool,
        reason: &str,
        wall: SystemTime,
        out: &mut Vec<Out>,
    ) {
        if let Some(mut state) = self.targets.remove(key) {
            self.cancel(&mut state);
            self.targets.insert(key.clone(), state);
        }
        self.record(key, ok, reason, wall, out);
    }

    /// Counts a result and reports a transition it causes.
    fn record(
        &mut self,
        key: &TargetKey,
        ok: bool,
        reason: &str,
        wall: SystemTime,
        out: &mut Vec<Out>,
    ) {
        let Some(state) = self.targets.get_mut(key) else {
            return;
        };
        let from = state.status.health;
        let (rise, fall) = (state.target.check.rise, state.target.check.fall);
        let to = if ok {
            state.successes = state.successes.saturating_add(1);
            state.failures = 0;
            match from {
                Health::Unknown => Some(Health::Up),
                Health::Down if state.successes >= rise => Some(Health::Up),
                _ => None,
            }
        } else {
            state.failures = state.failures.saturating_add(1);
            state.successes = 0;
            match from {
                Health::Up | Health::Unknown if state.failures >= fall => Some(Health::Down),
                _ => None,
            }
        };
        state.status.reason = reason.to_owned();
        let Some(to) = to else {
            return;
        };
        state.status.health = to;
        state.status.since = wall;
        state.status.reason = reason.to_owned();
        state.status.transitions.push_back(Transition {
            at: wall,
            from,
            to,
            reason: reason.to_owned(),
        });
        while state.status.transitions.len() > HISTORY {
            state.status.transitions.pop_front();
        }
        out.push(Out::Changed {
            key: key.clone(),
            from,
            to,
            reason: reason.to_owned(),
        });
    }
}

fn rst(target: &Target, port: u16, seq: u32) -> ProbePacket {
    let dst_port = match &target.check.kind {
        CheckKind::Tcp { port } | CheckKind::Http { port, .. } => *port,
        CheckKind::Icmp => 0,
    };
    ProbePacket::Tcp {
        src: SocketAddr::new(target.source, port),
        dst: SocketAddr::new(target.key.member.address, dst_port),
        seq,
        ack: None,
        syn: false,
        rst: true,
        payload: Vec::new(),
    }
}

/// The status code of an HTTP response's first line (`HTTP/1.x NNN ...`).
pub fn status_code(payload: &[u8]) -> Option<u16> {
    let line = payload.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests;
