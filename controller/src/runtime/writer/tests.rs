//! The writer against real loopback sockets whose buffers are made small,
//! so that writes go partial and the backlog and flusher do the work.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;

use super::*;

/// A connected pair: our end (small send buffer) and the peer's end (small
/// receive buffer).
async fn pair() -> (OwnedWriteHalf, TcpStream) {
    let listen = TcpSocket::new_v4().unwrap();
    listen.set_recv_buffer_size(4096).unwrap();
    listen.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = listen.listen(1).unwrap();
    let ours = TcpSocket::new_v4().unwrap();
    ours.set_send_buffer_size(4096).unwrap();
    let ours = ours.connect(listener.local_addr().unwrap()).await.unwrap();
    let (peer, _) = listener.accept().await.unwrap();
    (ours.into_split().1, peer)
}

fn start(stream: OwnedWriteHalf, limit: usize) -> (SwitchWriter, JoinHandle<()>) {
    let (writer, flusher) = SwitchWriter::new(stream, limit);
    (writer, tokio::spawn(flusher.run()))
}

/// Reads everything until the peer's EOF, pausing between small reads like
/// a slow switch.
async fn read_slowly(mut peer: TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut reads = 0u32;
    loop {
        let n = peer.read(&mut buf).await.unwrap();
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
        reads += 1;
        if reads.is_multiple_of(16) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Waits for the flusher of a closed writer to drain the backlog, shuts
/// the socket down and returns what the peer read until EOF.
async fn finish(
    writer: &SwitchWriter,
    flusher: JoinHandle<()>,
    reader: JoinHandle<Vec<u8>>,
) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(10), flusher)
        .await
        .expect("the flusher drains the backlog")
        .unwrap();
    writer.shutdown();
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("shutdown sends EOF")
        .unwrap()
}

/// Record `seq` of sender `id`: [id, seq (4 bytes), len (4 bytes), len x id].
fn record(id: u8, seq: u32) -> Vec<u8> {
    let len = 1 + (seq as usize * 7919) % 3000;
    let mut out = vec![id];
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.resize(out.len() + len, id);
    out
}

#[tokio::test]
async fn bytes_arrive_in_order_through_partial_writes() {
    let (ours, peer) = pair().await;
    let (writer, flusher) = start(ours, 64 << 20);
    let reader = tokio::spawn(read_slowly(peer));
    let mut expected = Vec::new();
    let mut went_to_backlog = false;
    for seq in 0..4000 {
        let bytes = record(1, seq);
        writer.send(&bytes).unwrap();
        went_to_backlog |= !writer.inner.lock().backlog.is_empty();
        expected.extend_from_slice(&bytes);
        if seq.is_multiple_of(500) {
            tokio::task::yield_now().await;
        }
    }
    assert!(went_to_backlog, "the socket never blocked: test too weak");
    writer.close();
    let got = finish(&writer, flusher, reader).await;
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "bytes reordered or corrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_never_interleave() {
    let (ours, peer) = pair().await;
    let (writer, flusher) = start(ours, 64 << 20);
    let reader = tokio::spawn(read_slowly(peer));
    let senders: Vec<_> = (1..=2u8)
        .map(|id| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for seq in 0..2000 {
                    writer.send(&record(id, seq)).unwrap();
                    if seq.is_multiple_of(100) {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    writer.close();
    let got = finish(&writer, flusher, reader).await;
    // Each record whole, and each sender's records in its own order.
    let mut next = [0u32; 3];
    let mut rest = &got[..];
    while !rest.is_empty() {
        let id = rest[0];
        let seq = u32::from_be_bytes(rest[1..5].try_into().unwrap());
        let len = u32::from_be_bytes(rest[5..9].try_into().unwrap()) as usize;
        assert!(id == 1 || id == 2, "record header torn: id {id}");
        assert_eq!(seq, next[usize::from(id)], "sender {id} out of order");
        next[usize::from(id)] += 1;
        assert!(rest[9..9 + len].iter().all(|b| *b == id), "record torn");
        rest = &rest[9 + len..];
    }
    assert_eq!(next, [0, 2000, 2000]);
}

#[tokio::test]
async fn a_backlog_over_its_bound_is_refused_and_closes_the_writer() {
    let (ours, _peer) = pair().await;
    let limit = 256 * 1024;
    let (writer, flusher) = start(ours, limit);
    // The peer never reads: the socket buffers fill, then the backlog.
    let chunk = vec![7u8; 16 * 1024];
    let mut accepted = 0usize;
    let error = loop {
        match writer.send(&chunk) {
            Ok(()) => accepted += chunk.len(),
            Err(e) => break e,
        }
        assert!(accepted <= 64 << 20, "the bound is never reached");
    };
    assert_eq!(error, SendError::Full);
    assert!(accepted >= limit, "refused before the backlog was full");
    // Nothing may follow the refused bytes: later sends fail too.
    assert_eq!(writer.send(b"x"), Err(SendError::Closed));
    // Overflow closes the writer, so the flusher ends by itself.
    tokio::time::timeout(Duration::from_secs(5), flusher)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn bytes_sent_before_close_reach_the_peer_then_eof() {
    let (ours, peer) = pair().await;
    let (writer, flusher) = start(ours, 64 << 20);
    // More than the socket buffers hold, while the peer is not reading yet.
    let bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    writer.send(&bytes).unwrap();
    writer.send(b"final words").unwrap();
    assert!(!writer.inner.lock().backlog.is_empty());
    writer.close();
    assert_eq!(writer.send(b"too late"), Err(SendError::Closed));
    let reader = tokio::spawn(read_slowly(peer));
    let got = finish(&writer, flusher, reader).await;
    let mut expected = bytes;
    expected.extend_from_slice(b"final words");
    assert!(got == expected, "delivered bytes differ");
}

#[tokio::test]
async fn empty_sends_are_no_ops() {
    let writer = SwitchWriter::detached(16);
    writer.send(&[]).unwrap();
    assert!(writer.take_pending().is_empty());
    writer.send(b"abc").unwrap();
    writer.send(&[]).unwrap();
    assert_eq!(&writer.take_pending()[..], b"abc");
}
