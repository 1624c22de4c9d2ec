use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use flowgate_openflow::{self as of, Hello, Message, SwitchFeatures};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::*;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::MemoryStore;

fn file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/runtime/tls")
        .join(name)
}

fn der(name: &str) -> Vec<u8> {
    CertificateDer::from_pem_file(file(name))
        .unwrap()
        .as_ref()
        .to_vec()
}

#[test]
fn the_subject_cn_is_read_from_the_certificate() {
    assert_eq!(
        subject_cn(&der("switch1.pem")).as_deref(),
        Some("s1 0000000000000001")
    );
    assert_eq!(
        subject_cn(&der("ca.pem")).as_deref(),
        Some("flowgate test CA")
    );
    assert_eq!(subject_cn(b"\x30\x03\x30\x01"), None);
    assert_eq!(subject_cn(&[]), None);
    // Truncated anywhere: no panic, no name.
    let cert = der("switch1.pem");
    for cut in 0..cert.len() {
        let _ = subject_cn(&cert[..cut]);
    }
}

#[test]
fn a_cn_names_a_dpid_by_its_16_hex_digits() {
    assert!(cn_names_dpid("0000000000000001", 1));
    assert!(cn_names_dpid("s1 0000000000000001", 1));
    assert!(cn_names_dpid("00:00:00:00:00:00:00:0A", 10));
    assert!(!cn_names_dpid("s1 0000000000000001", 2));
    assert!(!cn_names_dpid("1", 1));
}

fn connector(cert: &str, key: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(file("ca.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if cert.is_empty() {
        config.with_no_client_auth()
    } else {
        config
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(file(cert)).unwrap()],
                PrivateKeyDer::from_pem_file(file(key)).unwrap(),
            )
            .unwrap()
    };
    TlsConnector::from(Arc::new(config))
}

/// A switch that says HELLO, answers FEATURES with `dpid`, barriers and
/// echoes, until the connection ends.
async fn fake_switch<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, dpid: u64) {
    let mut out = BytesMut::new();
    of::encode(1, &Message::Hello(Hello::with_versions(&[4])), &mut out).unwrap();
    if s.write_all(&out).await.is_err() {
        return;
    }
    let mut buf = BytesMut::new();
    loop {
        while let Ok(Some(len)) = of::frame_len(&buf) {
            let frame = buf.split_to(len);
            let Ok((h, m)) = of::decode(&frame) else {
                continue;
            };
            let reply = match m {
                Message::FeaturesRequest => Message::FeaturesReply(SwitchFeatures {
                    datapath_id: dpid,
                    n_buffers: 0,
                    n_tables: 254,
                    auxiliary_id: 0,
                    capabilities: 0,
                    reserved: 0,
                }),
                Message::BarrierRequest => Message::BarrierReply,
                Message::EchoRequest(data) => Message::EchoReply(data),
                _ => continue,
            };
            let mut out = BytesMut::new();
            of::encode(h.xid, &reply, &mut out).unwrap();
            if s.write_all(&out).await.is_err() {
                return;
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn runtime(bind_dpid: bool) -> (Runtime, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = OpenflowTls::new(
        &file("controller.pem"),
        &file("controller.key"),
        &file("ca.pem"),
        bind_dpid,
    )
    .unwrap();
    let config = RuntimeConfig {
        tls: Some(tls),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::start(
        listener,
        config,
        Vec::new(),
        Arc::new(MemoryStore::default()),
    );
    (runtime, addr)
}

async fn connects(runtime: &Runtime, dpid: u64) -> bool {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !runtime
            .registry()
            .list()
            .iter()
            .any(|s| s.info.dpid == dpid)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_switch_with_a_certificate_of_the_ca_connects_over_tls() {
    let (runtime, addr) = runtime(true).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector("switch1.pem", "switch1.key")
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    tokio::spawn(fake_switch(tls, 1));
    assert!(connects(&runtime, 1).await, "the switch did not register");
}

#[tokio::test]
async fn strangers_and_impostors_do_not_connect() {
    let (runtime, addr) = runtime(true).await;
    let name = || ServerName::try_from("127.0.0.1").unwrap();
    // No certificate, or one of another CA: the handshake fails (TLS 1.3
    // reports the refusal on the first read).
    for (cert, key) in [("", ""), ("stranger.pem", "stranger.key")] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        if let Ok(tls) = connector(cert, key).connect(name(), tcp).await {
            tokio::spawn(fake_switch(tls, 1));
        }
    }
    // The right certificate claiming another dpid: closed before the
    // registry hears of it.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector("switch1.pem", "switch1.key")
        .connect(name(), tcp)
        .await
        .unwrap();
    tokio::spawn(fake_switch(tls, 2));
    // Plain OpenFlow on the TLS port.
    tokio::spawn(fake_switch(TcpStream::connect(addr).await.unwrap(), 3));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(runtime.registry().list().is_empty());
    // A legitimate switch still gets in.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector("switch1.pem", "switch1.key")
        .connect(name(), tcp)
        .await
        .unwrap();
    tokio::spawn(fake_switch(tls, 1));
    assert!(connects(&runtime, 1).await);
}
