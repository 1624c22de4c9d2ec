//! Running the router on a socket (STYLE.md #11) so that no client can lock
//! the others out:
//!
//! - connections are counted per client (IPv4 address or IPv6 /64) and in
//!   all ([`clients`]); one over either limit is answered 503 and closed
//!   instead of waiting in the kernel's backlog;
//! - a connection must deliver each request's headers within
//!   [`ServerConfig::header_timeout`], counted from when it opened or
//!   finished its previous request (hyper's header read timeout): idle
//!   kept-alive connections and slowloris headers end there;
//! - a whole request body must arrive within the router's body timeout
//!   ([`super::ApiState::with_body_timeout`]);
//! - a client that stops reading its answer is dropped after
//!   [`ServerConfig::write_timeout`];
//! - optionally TLS ([`tls::acceptor`]), the handshake bounded by the
//!   header timeout.
//!
//! HTTP/1.1 only. On shutdown it stops accepting, lets requests in flight
//! finish (for at most [`DRAIN`]) and closes idle connections.

pub mod clients;
pub mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use clients::{Clients, Refused, Slot};

/// How long shutdown waits for requests in flight.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Limits of the REST listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Time to deliver a request's headers, from the connection's opening
    /// or the end of its previous request; also the idle limit of a
    /// kept-alive connection, and of a TLS handshake.
    pub header_timeout: Duration,
    /// Time a response may wait for the client to read it.
    pub write_timeout: Duration,
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one client (IPv4 address, IPv6 /64).
    pub max_connections_per_client: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_client: 64,
        }
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until
/// `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        let scheme = if tls.is_some() { "https" } else { "http" };
        info!(%addr, scheme, "REST API listening");
    }
    let clients = Clients::new(config.max_connections, config.max_connections_per_client);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    let service = TowerToHyperService::new(router);
    let graceful = GracefulShutdown::new();
    let mut refusals = Refusals::default();
    let lingering = Arc::new(Semaphore::new(LINGERING));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, typically: back off, keep serving.
                    warn!(error = %e, "REST accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slot = match clients.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                refuse(stream, why, &lingering, tls.is_none());
                refusals.count(why, &config);
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(config.write_timeout));
        let connection = Connection {
            http: http.clone(),
            service: service.clone(),
            watcher: graceful.watcher(),
            peer,
            _slot: slot,
        };
        let tls = tls.clone();
        let handshake = config.header_timeout;
        tokio::spawn(async move {
            let stream = Box::pin(stream);
            match tls {
                None => connection.run(stream).await,
                Some(tls) => match tokio::time::timeout(handshake, tls.accept(stream)).await {
                    Ok(Ok(stream)) => connection.run(stream).await,
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            open = clients.total(),
            "REST requests still running at shutdown"
        );
    }
    Ok(())
}

/// One admitted connection, ready to speak HTTP once its stream is.
struct Connection {
    http: http1::Builder,
    service: TowerToHyperService<Router>,
    watcher: Watcher,
    peer: SocketAddr,
    /// Counts the connection against its client until it ends.
    _slot: Slot,
}

impl Connection {
    async fn run<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let conn = self
            .http
            .serve_connection(TokioIo::new(stream), self.service);
        if let Err(e) = self.watcher.watch(conn).await {
            // Timeouts and clients that hang up: theirs, not ours.
            debug!(peer = %self.peer, error = %e, "REST connection ended");
        }
    }
}

/// Refused connections that may linger to say why (see [`refuse`]).
const LINGERING: usize = 64;
/// How long a refused connection lingers.
const LINGER: Duration = Duration::from_secs(1);

/// Tells a client over its limit why and closes: a 503 with the reason,
/// then, for a few of them at a time, a short wait reading what the client
/// sent. Closing at once would reset a connection whose request arrived
/// meanwhile, and the reset discards the answer the client had not read.
fn refuse(stream: TcpStream, why: Refused, lingering: &Arc<Semaphore>, plain: bool) {
    if !plain {
        return;
    }
    let reason = match why {
        Refused::ClientFull => "too many connections from your address",
        Refused::ServerFull => "too many connections",
    };
    let body = format!(r#"{{"error":"unavailable","field":null,"reason":"{reason}"}}"#);
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // Only what fits in the socket buffer now: a refused client is not waited on.
    if stream.try_write(answer.as_bytes()).is_err() {
        return;
    }
    let Ok(permit) = lingering.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(LINGER, async {
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    });
}

/// Refused connections, logged at most once per [`REFUSALS_LOGGED_EVERY`]
/// with the counts since the previous line (a flood of them must not flood
/// the log too).
#[derive(Default)]
struct Refusals {
    client_full: u64,
    server_full: u64,
    logged: Option<Instant>,
}

const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(10);

impl Refusals {
    fn count(&mut self, why: Refused, config: &ServerConfig) {
        match why {
            Refused::ClientFull => self.client_full += 1,
            Refused::ServerFull => self.server_full += 1,
        }
        let now = Instant::now();
        if self
            .logged
            .is_some_and(|at| now - at < REFUSALS_LOGGED_EVERY)
        {
            return;
        }
        warn!(
            over_client_limit = self.client_full,
            over_server_limit = self.server_full,
            per_client = config.max_connections_per_client,
            total = config.max_connections,
            "REST connections refused"
        );
        *self = Refusals {
            logged: Some(now),
            ..Refusals::default()
        };
    }
}

#[cfg(test)]
mod tests;
