//! The runtime over real TCP on loopback, with fake switches that speak
//! OpenFlow through our codec: handshake, reconciliation, a reconnecting
//! dpid, and garbage on one connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use flowgate_controller::api::ControllerView;
use flowgate_controller::module::Module;
use flowgate_controller::runtime::{Runtime, RuntimeConfig};
use flowgate_controller::store::MemoryStore;
use flowgate_openflow::{
    self as of, Hello, Message, MultipartReply, MultipartReplyBody, MultipartRequestBody,
    SwitchFeatures,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

async fn start() -> (Runtime, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let modules: Vec<Box<dyn Module>> = Vec::new();
    (
        Runtime::start(
            listener,
            RuntimeConfig::default(),
            modules,
            Arc::new(MemoryStore::default()),
        ),
        addr,
    )
}

/// A switch that answers the controller the way Open vSwitch would.
struct FakeSwitch {
    stream: TcpStream,
    dpid: u64,
    buf: BytesMut,
    flow_mods: usize,
    barriers: usize,
}

impl FakeSwitch {
    async fn connect(addr: std::net::SocketAddr, dpid: u64) -> FakeSwitch {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut out = BytesMut::new();
        of::encode(1, &Message::Hello(Hello::with_versions(&[4])), &mut out).unwrap();
        stream.write_all(&out).await.unwrap();
        FakeSwitch {
            stream,
            dpid,
            buf: BytesMut::new(),
            flow_mods: 0,
            barriers: 0,
        }
    }

    /// Reads one message; None on EOF.
    async fn recv(&mut self) -> Option<(u32, Message)> {
        loop {
            if let Ok(Some(len)) = of::frame_len(&self.buf) {
                let frame = self.buf.split_to(len);
                let (h, m) = of::decode(&frame).expect("controller sent an undecodable message");
                return Some((h.xid, m));
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn send(&mut self, xid: u32, m: &Message) {
        let mut out = BytesMut::new();
        of::encode(xid, m, &mut out).expect("test messages fit");
        self.stream.write_all(&out).await.unwrap();
    }

    /// Answers requests until `barriers` barrier requests have been seen.
    async fn serve_until_barriers(&mut self, barriers: usize) {
        while self.barriers < barriers {
            let Some((xid, m)) = timeout(WAIT, self.recv())
                .await
                .expect("controller went quiet")
            else {
                panic!("controller closed the connection");
            };
            self.answer(xid, m).await;
        }
    }

    /// Answers requests until the switch is reconciled: a barrier closes
    /// the sync dumps, another the full reconciliation.
    async fn serve_until_reconciled(&mut self) {
        self.serve_until_barriers(2).await;
    }

    async fn answer(&mut self, xid: u32, m: Message) {
        let reply = match m {
            Message::FeaturesRequest => Message::FeaturesReply(SwitchFeatures {
                datapath_id: self.dpid,
                n_buffers: 0,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0,
                reserved: 0,
            }),
            Message::MultipartRequest(req) => {
                let body = match req.body {
                    MultipartRequestBody::PortDesc => MultipartReplyBody::PortDesc(vec![]),
                    MultipartRequestBody::Desc => MultipartReplyBody::Desc(of::DescStats {
                        mfr_desc: "fake".into(),
                        hw_desc: "fake".into(),
                        sw_desc: "fake".into(),
                        serial_num: "1".into(),
                        dp_desc: "fake".into(),
                    }),
                    MultipartRequestBody::Flow(_) => MultipartReplyBody::Flow(vec![]),
                    MultipartRequestBody::GroupDesc => MultipartReplyBody::GroupDesc(vec![]),
                    MultipartRequestBody::MeterConfig { .. } => {
                        MultipartReplyBody::MeterConfig(vec![])
                    }
                    other => panic!("unexpected request {other:?}"),
                };
                Message::MultipartReply(Box::new(MultipartReply { flags: 0, body }))
            }
            Message::BarrierRequest => {
                self.barriers += 1;
                Message::BarrierReply
            }
            Message::EchoRequest(data) => Message::EchoReply(data),
            Message::FlowMod(_) => {
                self.flow_mods += 1;
                return;
            }
            _ => return,
        };
        self.send(xid, &reply).await;
    }
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition not met in time");
}

#[tokio::test]
async fn a_switch_is_handshaken_listed_and_given_the_pipeline() {
    let (runtime, addr) = start().await;
    let mut sw = FakeSwitch::connect(addr, 0xa1).await;
    sw.serve_until_reconciled().await;
    assert_eq!(
        sw.flow_mods,
        flowgate_controller::pipeline::core_entries().len()
    );
    let listed = runtime.switches();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].dpid, 0xa1);
    assert_eq!(listed[0].desc.as_ref().unwrap().mfr_desc, "fake");
}

#[tokio::test]
async fn a_second_connection_for_a_dpid_takes_over_and_the_first_returns_when_it_goes() {
    let (runtime, addr) = start().await;
    let mut first = FakeSwitch::connect(addr, 7).await;
    first.serve_until_reconciled().await;
    let first_port = first.stream.local_addr().unwrap().port();
    let mut second = FakeSwitch::connect(addr, 7).await;
    second.serve_until_reconciled().await;
    let second_port = second.stream.local_addr().unwrap().port();
    wait_for(|| {
        runtime
            .switch(7)
            .is_some_and(|s| s.peer.port() == second_port)
    })
    .await;
    assert_eq!(runtime.switches().len(), 1);

    // The first connection was set aside, not closed: once the newcomer
    // goes it is synced and reconciled again, and is the switch's once more.
    drop(second);
    let barriers = first.barriers;
    first.serve_until_barriers(barriers + 2).await;
    wait_for(|| {
        runtime
            .switch(7)
            .is_some_and(|s| s.peer.port() == first_port)
    })
    .await;
    assert_eq!(runtime.switches().len(), 1);
}

#[tokio::test]
async fn garbage_closes_only_that_connection() {
    let (runtime, addr) = start().await;
    let mut good = FakeSwitch::connect(addr, 1).await;
    good.serve_until_reconciled().await;

    let mut bad = TcpStream::connect(addr).await.unwrap();
    bad.write_all(&[0xff, 0x00, 0x00, 0x03, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
        .await
        .unwrap();
    let mut sink = Vec::new();
    let eof = timeout(WAIT, bad.read_to_end(&mut sink)).await;
    assert!(eof.is_ok(), "garbage connection was not closed");

    // The good switch still answers queries through the runtime.
    assert_eq!(runtime.switches().len(), 1);
    let stats = runtime.port_stats(1);
    let serve = async {
        while let Some((xid, m)) = good.recv().await {
            if let Message::MultipartRequest(req) = &m {
                if matches!(req.body, MultipartRequestBody::PortStats { .. }) {
                    let body = MultipartReplyBody::PortStats(vec![]);
                    good.send(
                        xid,
                        &Message::MultipartReply(Box::new(MultipartReply { flags: 0, body })),
                    )
                    .await;
                    continue;
                }
            }
            good.answer(xid, m).await;
        }
    };
    tokio::select! {
        result = stats => assert!(result.unwrap().is_empty()),
        _ = serve => panic!("good switch was disconnected"),
    }
}
