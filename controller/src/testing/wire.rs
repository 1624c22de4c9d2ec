//! A [`FakeSwitch`] behind a real OpenFlow 1.3 connection: for tests that
//! run a module inside the real runtime (and its REST API) and want to see
//! exactly what the controller sends — flow, group and meter mods applied
//! to the fake switch's tables, packet-outs recorded — and what a switch
//! reports back (its tables in the sync dumps, flow and group counters from
//! the packets the test ran through it).
//!
//! ```text
//! let switch = WireSwitch::shared(1);
//! let task = wire::spawn(controller_addr, switch.clone());
//! // ... drive the controller; inspect switch.lock().unwrap().received ...
//! task.abort();   // the switch disconnects; spawn again to reconnect with its tables
//! ```
//!
//! Several controllers may connect to one switch (spawn once per
//! controller): the switch then keeps the OpenFlow 1.3 role rules (spec
//! 6.3.6) per connection — the generation id it caches, a stale MASTER or
//! SLAVE request refused with OFPRRFC_STALE, the old master made a slave
//! when a new one is accepted, and a slave's writes refused with
//! OFPBRC_IS_SLAVE (and not applied). Packet-ins the test has the switch
//! send ([`WireSwitch::packet_in`]) reach each connection its role and
//! SET_ASYNC masks let them reach (spec 6.3.6/7.3.10: by default a slave
//! gets none).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use flowgate_cluster::{Generation, SwitchRole};
use flowgate_openflow::{
    self as of, controller_role, error_code, error_type, AsyncConfig, DescStats, ErrorMsg,
    GroupDesc, Hello, Message, MeterConfig, MultipartReply, MultipartReplyBody,
    MultipartRequestBody, Port, RoleMsg, SwitchFeatures,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::FakeSwitch;

/// A fake switch with a connection's worth of state, shared with the test.
#[derive(Debug, Default)]
pub struct WireSwitch {
    pub switch: FakeSwitch,
    /// Ports reported in the PORT_DESC dump.
    pub ports: Vec<Port>,
    /// Every message the controller sent (echoes excluded), in order.
    pub received: Vec<Message>,
    /// Barrier requests seen.
    pub barriers: usize,
    /// Which connection sent each message of `received` (connections are
    /// numbered from 0 in the order they connect).
    pub senders: Vec<usize>,
    /// Writes refused with OFPBRC_IS_SLAVE, by connection.
    pub refused_is_slave: BTreeMap<usize, usize>,
    /// Each connection's role, while it is connected.
    pub roles: BTreeMap<usize, SwitchRole>,
    /// The largest generation id of an accepted MASTER or SLAVE request.
    pub generation: Option<Generation>,
    /// Each connection's SET_ASYNC masks, once it sent them.
    pub async_configs: BTreeMap<usize, AsyncConfig>,
    /// Messages the switch has yet to send, by connection.
    outbox: Vec<(usize, Message)>,
    next_conn: usize,
}

/// How tests share a [`WireSwitch`] with its connection task.
pub type SharedSwitch = Arc<Mutex<WireSwitch>>;

impl WireSwitch {
    /// A switch `dpid` with the pipeline's core entries and no ports.
    pub fn shared(dpid: u64) -> SharedSwitch {
        Arc::new(Mutex::new(WireSwitch {
            switch: FakeSwitch::new(dpid),
            ..WireSwitch::default()
        }))
    }

    /// The group mods received so far.
    pub fn group_mods(&self) -> Vec<&of::GroupMod> {
        self.received
            .iter()
            .filter_map(|m| match m {
                Message::GroupMod(gm) => Some(gm),
                _ => None,
            })
            .collect()
    }

    /// The flow mods received so far.
    pub fn flow_mods(&self) -> Vec<&of::FlowMod> {
        self.received
            .iter()
            .filter_map(|m| match m {
                Message::FlowMod(fm) => Some(fm),
                _ => None,
            })
            .collect()
    }

    /// The packet-outs received so far.
    pub fn packet_outs(&self) -> Vec<&of::PacketOut> {
        self.received
            .iter()
            .filter_map(|m| match m {
                Message::PacketOut(po) => Some(po),
                _ => None,
            })
            .collect()
    }

    /// The flow mods connection `conn` sent (refused ones included).
    pub fn flow_mods_from(&self, conn: usize) -> usize {
        self.from(conn)
            .filter(|m| matches!(m, Message::FlowMod(_)))
            .count()
    }

    /// The role requests connection `conn` sent, in order.
    pub fn role_requests_from(&self, conn: usize) -> Vec<RoleMsg> {
        self.from(conn)
            .filter_map(|m| match m {
                Message::RoleRequest(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn from(&self, conn: usize) -> impl Iterator<Item = &Message> {
        self.received
            .iter()
            .zip(&self.senders)
            .filter(move |(_, c)| **c == conn)
            .map(|(m, _)| m)
    }

    /// Sends `packet_in` to every connection whose role's packet-in mask
    /// has its reason (the spec's defaults until SET_ASYNC: a master or
    /// equal gets no-match and action packet-ins, a slave none).
    pub fn packet_in(&mut self, packet_in: &of::PacketIn) {
        let bit = 1u32 << u8::from(packet_in.reason);
        for (&conn, role) in &self.roles {
            let slot = usize::from(*role == SwitchRole::Slave);
            let mask = self
                .async_configs
                .get(&conn)
                .map_or([0b11, 0][slot], |c| c.packet_in_mask[slot]);
            if mask & bit != 0 {
                self.outbox
                    .push((conn, Message::PacketIn(packet_in.clone())));
            }
        }
    }

    /// Takes what the switch has to send on connection `conn`.
    fn outgoing(&mut self, conn: usize) -> Vec<Message> {
        let (mine, rest) = std::mem::take(&mut self.outbox)
            .into_iter()
            .partition(|(c, _)| *c == conn);
        self.outbox = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    }

    /// Forgets what was received (the tables stay).
    pub fn clear_received(&mut self) {
        self.received.clear();
        self.senders.clear();
    }

    /// A new connection, in the default role EQUAL; its number.
    fn connect(&mut self) -> usize {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.roles.insert(conn, SwitchRole::Equal);
        conn
    }

    /// A ROLE_REQUEST from `conn`, as spec 6.3.6 has a switch answer it.
    fn role_request(&mut self, conn: usize, request: &RoleMsg) -> Message {
        let current = self.roles.get(&conn).copied().unwrap_or(SwitchRole::Equal);
        let role = match request.role {
            controller_role::MASTER | controller_role::SLAVE => {
                let generation = Generation(request.generation_id);
                if self
                    .generation
                    .is_some_and(|cached| generation.is_stale_against(cached))
                {
                    return role_error(error_code::role_request_failed::STALE);
                }
                self.generation = Some(generation);
                if request.role == controller_role::MASTER {
                    for (other, role) in self.roles.iter_mut() {
                        if *other != conn && *role == SwitchRole::Master {
                            *role = SwitchRole::Slave;
                        }
                    }
                    SwitchRole::Master
                } else {
                    SwitchRole::Slave
                }
            }
            controller_role::EQUAL => SwitchRole::Equal,
            controller_role::NOCHANGE => current,
            _ => return role_error(error_code::role_request_failed::BAD_ROLE),
        };
        self.roles.insert(conn, role);
        Message::RoleReply(RoleMsg {
            role: match role {
                SwitchRole::Equal => controller_role::EQUAL,
                SwitchRole::Master => controller_role::MASTER,
                SwitchRole::Slave => controller_role::SLAVE,
            },
            generation_id: self.generation.map_or(0, |g| g.0),
        })
    }

    /// The answer to one message from connection `conn`, if it gets one.
    fn answer(&mut self, conn: usize, message: Message) -> Option<Message> {
        let writes = matches!(
            message,
            Message::FlowMod(_)
                | Message::GroupMod(_)
                | Message::MeterMod(_)
                | Message::PacketOut(_)
                | Message::PortMod(_)
                | Message::TableMod(_)
        );
        if writes && self.roles.get(&conn) == Some(&SwitchRole::Slave) {
            *self.refused_is_slave.entry(conn).or_default() += 1;
            self.received.push(message);
            self.senders.push(conn);
            return Some(Message::Error(ErrorMsg::Standard {
                err_type: error_type::BAD_REQUEST,
                code: error_code::bad_request::IS_SLAVE,
                data: Bytes::new(),
            }));
        }
        let reply = match &message {
            Message::RoleRequest(request) => Some(self.role_request(conn, request)),
            Message::FeaturesRequest => Some(Message::FeaturesReply(SwitchFeatures {
                datapath_id: self.switch.dpid,
                n_buffers: 0,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0,
                reserved: 0,
            })),
            Message::EchoRequest(data) => return Some(Message::EchoReply(data.clone())),
            Message::SetAsync(config) => {
                self.async_configs.insert(conn, config.clone());
                None
            }
            Message::BarrierRequest => {
                self.barriers += 1;
                Some(Message::BarrierReply)
            }
            Message::MultipartRequest(req) => self
                .multipart(&req.body)
                .map(|body| Message::MultipartReply(Box::new(MultipartReply { flags: 0, body }))),
            Message::FlowMod(_) | Message::GroupMod(_) | Message::MeterMod(_) => self
                .switch
                .handle_message(&message)
                .err()
                .map(|(err_type, code)| {
                    Message::Error(ErrorMsg::Standard {
                        err_type,
                        code,
                        data: Bytes::new(),
                    })
                }),
            _ => None,
        };
        self.received.push(message);
        self.senders.push(conn);
        reply
    }

    fn multipart(&self, body: &MultipartRequestBody) -> Option<MultipartReplyBody> {
        Some(match body {
            MultipartRequestBody::PortDesc => MultipartReplyBody::PortDesc(self.ports.clone()),
            MultipartRequestBody::Desc => MultipartReplyBody::Desc(DescStats {
                mfr_desc: "flowgate".into(),
                hw_desc: "wire fake switch".into(),
                sw_desc: "testing::wire".into(),
                serial_num: "1".into(),
                dp_desc: "fake".into(),
            }),
            MultipartRequestBody::Flow(q) => MultipartReplyBody::Flow(
                self.switch
                    .flow_stats()
                    .into_iter()
                    .filter(|f| {
                        f.cookie & q.cookie_mask == q.cookie & q.cookie_mask
                            && (q.table_id == of::OFPTT_ALL || q.table_id == f.table_id)
                    })
                    .collect(),
            ),
            MultipartRequestBody::GroupDesc => {
                let mut groups: Vec<GroupDesc> = self
                    .switch
                    .groups
                    .iter()
                    .map(|(id, spec)| GroupDesc {
                        group_type: spec.group_type,
                        group_id: *id,
                        buckets: spec.buckets.clone(),
                    })
                    .collect();
                groups.sort_by_key(|g| g.group_id);
                MultipartReplyBody::GroupDesc(groups)
            }
            MultipartRequestBody::Group { group_id } => MultipartReplyBody::Group(
                self.switch
                    .group_stats()
                    .into_iter()
                    .filter(|g| *group_id == of::OFPG_ALL || g.group_id == *group_id)
                    .collect(),
            ),
            MultipartRequestBody::MeterConfig { .. } => MultipartReplyBody::MeterConfig(
                self.switch
                    .meters
                    .iter()
                    .map(|(id, spec)| MeterConfig {
                        flags: spec.flags,
                        meter_id: *id,
                        bands: spec.bands.clone(),
                    })
                    .collect(),
            ),
            _ => return None,
        })
    }
}

fn role_error(code: u16) -> Message {
    Message::Error(ErrorMsg::Standard {
        err_type: error_type::ROLE_REQUEST_FAILED,
        code,
        data: Bytes::new(),
    })
}

/// How often a connection looks for messages the test queued.
const OUTBOX_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// Connects `switch` to the controller at `addr` and serves the
/// connection until it closes.
pub async fn run(addr: SocketAddr, switch: SharedSwitch) {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return;
    };
    let conn = lock(&switch).connect();
    serve(stream, &switch, conn).await;
    lock(&switch).roles.remove(&conn);
}

fn lock(switch: &SharedSwitch) -> std::sync::MutexGuard<'_, WireSwitch> {
    switch.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(mut stream: TcpStream, switch: &SharedSwitch, conn: usize) {
    if !send(&mut stream, 1, &Message::Hello(Hello::with_versions(&[4]))).await {
        return;
    }
    let mut buf = BytesMut::new();
    loop {
        while let Ok(Some(len)) = of::frame_len(&buf) {
            let frame = buf.split_to(len);
            let Ok((header, message)) = of::decode(&frame) else {
                continue;
            };
            let reply = lock(switch).answer(conn, message);
            if let Some(reply) = reply {
                if !send(&mut stream, header.xid, &reply).await {
                    return;
                }
            }
        }
        let outgoing = lock(switch).outgoing(conn);
        for message in &outgoing {
            if !send(&mut stream, 0, message).await {
                return;
            }
        }
        // Short reads, so what the test queues goes out promptly.
        let mut chunk = [0u8; 65536];
        match tokio::time::timeout(OUTBOX_POLL, stream.read(&mut chunk)).await {
            Err(_) => {}
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// [`run`] as a task; aborting it disconnects the switch.
pub fn spawn(addr: SocketAddr, switch: SharedSwitch) -> JoinHandle<()> {
    tokio::spawn(run(addr, switch))
}

async fn send(stream: &mut TcpStream, xid: u32, message: &Message) -> bool {
    let mut out = BytesMut::new();
    if of::encode(xid, message, &mut out).is_err() {
        return false;
    }
    stream.write_all(&out).await.is_ok()
}
