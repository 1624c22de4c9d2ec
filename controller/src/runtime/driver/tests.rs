//! The driver over real loopback sockets: last words reach the peer before
//! EOF, a peer that stops reading cannot hold a connection task open, and a
//! switch that floods packet-ins before it is ready loses none of them.

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flowgate_openflow::{self as of, Hello};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

use super::*;
use crate::runtime::session::SyncDump;

/// Starts one connection task for a peer connecting to it; the peer's end
/// has a small receive buffer, so output that it does not read piles up on
/// our side.
async fn connect(config: DriverConfig) -> (TcpStream, JoinHandle<()>, mpsc::Receiver<CoreEvent>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (core, core_rx) = mpsc::channel(16);
    let task = tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        run_connection(stream, peer, config, Arc::new(Registry::default()), core).await;
    });
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let peer = socket.connect(addr).await.unwrap();
    (peer, task, core_rx)
}

/// Waits (5 s at most) for the connection task to end while `write` feeds
/// it the peer's input; a write that blocks for good does not stop the wait.
async fn ends_while_writing(task: JoinHandle<()>, write: impl Future<Output = ()>, why: &str) {
    let write = async {
        write.await;
        std::future::pending::<()>().await
    };
    tokio::select! {
        done = tokio::time::timeout(Duration::from_secs(5), task) => done.expect(why).unwrap(),
        _ = write => {}
    }
}

fn wire(version: u8, xid: u32, message: &Message) -> BytesMut {
    let mut out = BytesMut::new();
    of::encode_with_version(version, xid, message, &mut out).expect("test messages fit");
    out
}

/// A HELLO in 1.3, then many large ECHO_REQUESTs whose replies pile up
/// while the peer does not read them.
fn hello_and_echoes(echoes: usize) -> BytesMut {
    let mut out = wire(4, 1, &Message::Hello(Hello::with_versions(&[4])));
    let payload = Bytes::from(vec![0x5a; 60_000]);
    for xid in 0..echoes {
        out.extend_from_slice(&wire(
            4,
            2 + xid as u32,
            &Message::EchoRequest(payload.clone()),
        ));
    }
    out
}

#[tokio::test]
async fn hello_failed_reaches_the_peer_before_eof() {
    let (mut peer, task, _core) = connect(DriverConfig::default()).await;
    peer.write_all(&wire(6, 9, &Message::Hello(Hello::with_versions(&[6]))))
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), peer.read_to_end(&mut got))
        .await
        .expect("the connection ends with EOF")
        .unwrap();
    let mut versions_types = Vec::new();
    let mut rest = &got[..];
    while let Ok(Some(len)) = of::frame_len(rest) {
        versions_types.push((rest[0], rest[1]));
        rest = &rest[len..];
    }
    // Our HELLO, then the error in the peer's version.
    assert_eq!(versions_types.last(), Some(&(6, 1)), "{versions_types:?}");
    assert!(rest.is_empty());
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_peer_that_stops_reading_does_not_keep_the_task_alive() {
    let (mut peer, task, _core) = connect(DriverConfig::default()).await;
    // ~12 MB of echo replies back up (the peer reads none of them), then
    // garbage closes the session with that output still unwritten.
    let mut input = hello_and_echoes(200);
    input.extend_from_slice(&[0x04, 0x00, 0x00, 0x03, 0, 0, 0, 1]);
    let (mut read_half, mut write_half) = peer.split();
    let write = async {
        let _ = write_half.write_all(&input).await;
    };
    ends_while_writing(task, write, "connection task outlived its close grace").await;
    // It did write what the peer had room for, then shut the socket down.
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), read_half.read_to_end(&mut got))
        .await
        .expect("EOF after the close grace")
        .unwrap();
    assert!(!got.is_empty());
}

#[tokio::test]
async fn a_full_backlog_disconnects_the_switch() {
    let config = DriverConfig {
        send_backlog: 256 * 1024,
        ..DriverConfig::default()
    };
    let (mut peer, task, _core) = connect(config).await;
    let input = hello_and_echoes(200);
    let write = async {
        let _ = peer.write_all(&input).await;
    };
    ends_while_writing(task, write, "a switch that reads nothing stays connected").await;
}

/// Reads whole messages from `peer` until one of type `msg_type` arrives;
/// returns its xid.
async fn xid_of_next(peer: &mut TcpStream, msg_type: u8) -> u32 {
    let mut buf = BytesMut::new();
    loop {
        while let Ok(Some(len)) = of::frame_len(&buf) {
            let frame = buf.split_to(len);
            if frame[1] == msg_type {
                return u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(5), peer.read_buf(&mut buf));
        assert!(read.await.expect("the controller goes on").unwrap() > 0);
    }
}

#[tokio::test]
async fn packet_ins_of_a_switch_that_never_syncs_reach_the_core_once_it_is_ready() {
    let config = DriverConfig {
        session: SessionConfig {
            sync_timeout: Duration::from_millis(50),
            ..SessionConfig::default()
        },
        ..DriverConfig::default()
    };
    let (mut peer, _task, mut core) = connect(config).await;
    peer.write_all(&wire(4, 1, &Message::Hello(Hello::with_versions(&[4]))))
        .await
        .unwrap();
    let xid = xid_of_next(&mut peer, of::msg_type::FEATURES_REQUEST).await;
    let features = of::SwitchFeatures {
        datapath_id: 7,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        capabilities: 0,
        reserved: 0,
    };
    // Packet-ins right after the features; no dump and no barrier is ever
    // answered.
    let mut input = wire(4, xid, &Message::FeaturesReply(features));
    let sent = 100u32;
    for n in 0..sent {
        let packet_in = of::PacketIn {
            buffer_id: of::NO_BUFFER,
            total_len: 14,
            reason: of::PacketInReason::NoMatch,
            table_id: 0,
            cookie: 0,
            match_: of::Match::new().with(of::Oxm::InPort(1)),
            data: Bytes::from_static(&[0xff; 14]),
        };
        input.extend_from_slice(&wire(4, n, &Message::PacketIn(packet_in)));
    }
    peer.write_all(&input).await.unwrap();
    let mut xids = Vec::new();
    let mut up = false;
    while xids.len() < sent as usize {
        let event = tokio::time::timeout(Duration::from_secs(5), core.recv());
        match event.await.expect("every packet-in reaches the core") {
            Some(CoreEvent::SwitchUp { sync, .. }) => {
                assert!(sync.unknown.contains(&SyncDump::Flows));
                up = true;
            }
            Some(CoreEvent::Message { xid, .. }) => {
                assert!(up, "a packet-in before the switch was up");
                xids.push(xid);
            }
            Some(CoreEvent::Messages { messages, .. }) => {
                assert!(up, "packet-ins before the switch was up");
                xids.extend(messages.iter().map(|(x, _)| *x));
            }
            _ => panic!("unexpected core event"),
        }
    }
    assert_eq!(xids, (0..sent).collect::<Vec<_>>(), "none lost, in order");
}

fn port_status(reason: of::PortReason, port_no: u32) -> Message {
    Message::PortStatus(of::PortStatus {
        reason,
        desc: of::Port {
            port_no,
            ..of::Port::default()
        },
    })
}

#[tokio::test]
async fn ports_past_the_limit_are_not_tracked_and_never_reach_the_core() {
    let config = DriverConfig {
        session: SessionConfig {
            sync_timeout: Duration::from_millis(50),
            ..SessionConfig::default()
        },
        max_ports: 3,
        ..DriverConfig::default()
    };
    let (mut peer, _task, mut core) = connect(config).await;
    peer.write_all(&wire(4, 1, &Message::Hello(Hello::with_versions(&[4]))))
        .await
        .unwrap();
    let xid = xid_of_next(&mut peer, of::msg_type::FEATURES_REQUEST).await;
    let features = of::SwitchFeatures {
        datapath_id: 7,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        capabilities: 0,
        reserved: 0,
    };
    // No dumps answered (no ports known); then five ports come up, one of
    // the ignored ones goes away, and a tracked one goes away.
    let mut input = wire(4, xid, &Message::FeaturesReply(features));
    for port_no in 1..=5 {
        input.extend_from_slice(&wire(4, 0, &port_status(of::PortReason::Add, port_no)));
    }
    input.extend_from_slice(&wire(4, 0, &port_status(of::PortReason::Delete, 5)));
    input.extend_from_slice(&wire(4, 0, &port_status(of::PortReason::Delete, 2)));
    input.extend_from_slice(&wire(4, 0, &port_status(of::PortReason::Add, 4)));
    peer.write_all(&input).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let event = tokio::time::timeout(Duration::from_secs(5), core.recv());
        let messages = match event.await.expect("the core hears of the ports") {
            Some(CoreEvent::SwitchUp { .. }) => continue,
            Some(CoreEvent::Message { message, .. }) => vec![message],
            Some(CoreEvent::Messages { messages, .. }) => {
                messages.into_iter().map(|(_, m)| m).collect()
            }
            _ => panic!("unexpected core event"),
        };
        for message in messages {
            let Message::PortStatus(status) = message else {
                panic!("unexpected message {message:?}")
            };
            seen.push((status.reason, status.desc.port_no));
        }
    }
    use of::PortReason::{Add, Delete};
    assert_eq!(
        seen,
        [(Add, 1), (Add, 2), (Add, 3), (Delete, 2), (Add, 4)],
        "4 and 5 past the limit, 5's removal about a port never tracked; \
         4 fits once 2 is gone"
    );
}
