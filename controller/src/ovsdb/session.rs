//! The sans-IO core of one OVSDB connection (STYLE.md principle 6): bytes
//! in ([`Session::handle_bytes`]), bytes out ([`Session::poll_transmit`]),
//! events out ([`Session::poll_event`]), time in
//! ([`Session::handle_timeout`]). No sockets, no clock of its own.
//!
//! On creation it asks to `monitor` the given [`Columns`]; the reply fills
//! the [`Replica`] and later `update` notifications keep it current. When
//! modules register more columns ([`Session::monitor`]) it monitors again
//! under a new id: the new reply replaces the replica whole, and the old
//! monitor is cancelled. It answers the server's `echo` (ovsdb-server
//! probes managers every 5 s by default) and probes a silent server itself.
//! `transact` requests carry a caller token `W` that comes back with the
//! result.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use thiserror::Error;

use super::columns::Columns;
use super::framing::{FrameError, Framer, Limits};
use super::replica::Replica;
use super::rpc::{self, Incoming, RpcError};

/// Our id for the first monitor, echoed in every `update` notification;
/// later ones get a number appended.
const MONITOR_ID: &str = "flowgate";

#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Silence after which we send an echo request.
    pub echo_interval: Duration,
    /// Silence after which the peer is declared dead.
    pub dead_after: Duration,
    /// What one message from the peer may take.
    pub limits: Limits,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            echo_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
            limits: Limits::default(),
        }
    }
}

/// Why a session ended.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error("monitor request refused: {0}")]
    MonitorRefused(String),
    #[error("no message from the server for {0:?}")]
    Dead(Duration),
    #[error("the monitored tables have over {0} rows")]
    TooManyRows(usize),
}

/// Why a `transact` failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransactError {
    /// The request as a whole was refused (JSON-RPC `error`).
    #[error("transact refused: {0}")]
    Refused(String),
    /// An operation failed (`{"error": ..., "details": ...}` in the result);
    /// the server applied none of the transaction.
    #[error("operation {index} failed: {error}")]
    Operation { index: usize, error: String },
    /// The connection closed before the answer came.
    #[error("connection closed")]
    Closed,
}

/// Something the driver should act on.
#[derive(Debug)]
pub enum SessionEvent<W> {
    /// The replica changed: the initial monitor contents arrived, or an update.
    Changed,
    /// A `transact` finished; `Ok` holds the per-operation results.
    TransactDone(W, Result<Vec<Value>, TransactError>),
}

#[derive(Debug)]
enum Pending<W> {
    Monitor {
        id: String,
        columns: Columns,
    },
    /// Echo probes and monitor cancellations: any answer will do.
    Ignored,
    Transact(W),
}

#[derive(Debug)]
pub struct Session<W> {
    config: SessionConfig,
    framer: Framer,
    next_id: u64,
    pending: HashMap<u64, Pending<W>>,
    replica: Replica,
    /// The monitor whose updates the replica follows.
    monitor_id: String,
    /// The monitor requested last, and the columns it asked for.
    requested: (String, Columns),
    monitors: u64,
    ready: bool,
    out: Vec<u8>,
    events: VecDeque<SessionEvent<W>>,
    last_rx: Instant,
    probe_sent: bool,
}

impl<W> Session<W> {
    /// A session that has queued its request to monitor `columns`.
    pub fn new(now: Instant, config: SessionConfig, columns: Columns) -> Self {
        let mut s = Session {
            config,
            framer: Framer::new(config.limits),
            next_id: 0,
            pending: HashMap::new(),
            replica: Replica::default(),
            monitor_id: String::new(),
            requested: (String::new(), Columns::default()),
            monitors: 0,
            ready: false,
            out: Vec::new(),
            events: VecDeque::new(),
            last_rx: now,
            probe_sent: false,
        };
        s.send_monitor(columns);
        s
    }

    /// Monitors `columns` from now on, if they differ from the columns
    /// asked for last. The replica keeps following the current monitor
    /// until the new one's contents arrive.
    pub fn monitor(&mut self, columns: Columns) {
        if columns != self.requested.1 {
            self.send_monitor(columns);
        }
    }

    fn send_monitor(&mut self, columns: Columns) {
        self.monitors += 1;
        let id = match self.monitors {
            1 => MONITOR_ID.to_owned(),
            n => format!("{MONITOR_ID}-{n}"),
        };
        self.requested = (id.clone(), columns.clone());
        let params = json!([super::DATABASE, id, columns.monitor_requests()]);
        self.request("monitor", params, Pending::Monitor { id, columns });
    }

    /// The monitored tables as last reported.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// True once the initial monitor contents arrived.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Queues a transaction of `ops` (see [`super::ops`]).
    pub fn transact(&mut self, ops: Vec<Value>, waiter: W) {
        self.request(
            "transact",
            super::ops::transaction(ops),
            Pending::Transact(waiter),
        );
    }

    fn request(&mut self, method: &str, params: Value, pending: Pending<W>) {
        self.next_id += 1;
        self.pending.insert(self.next_id, pending);
        self.send(&rpc::request(self.next_id, method, params));
    }

    fn send(&mut self, message: &Value) {
        // Serializing a Value cannot fail (string keys only).
        if let Ok(bytes) = serde_json::to_vec(message) {
            self.out.extend_from_slice(&bytes);
        }
    }

    /// Bytes to write to the peer, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent<W>> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Instant {
        if self.probe_sent {
            self.last_rx + self.config.dead_after
        } else {
            self.last_rx + self.config.echo_interval
        }
    }

    /// Probes a silent peer; an error means it is dead: close.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        let silent = now.saturating_duration_since(self.last_rx);
        if silent >= self.config.dead_after {
            return Err(SessionError::Dead(silent));
        }
        if silent >= self.config.echo_interval && !self.probe_sent {
            self.probe_sent = true;
            self.request("echo", json!([]), Pending::Ignored);
        }
        Ok(())
    }

    /// Feeds received bytes; an error means the stream is unusable: close.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) -> Result<(), SessionError> {
        self.framer.push(bytes);
        while let Some(message) = self.framer.next_message()? {
            self.last_rx = now;
            self.probe_sent = false;
            self.handle_message(Incoming::parse(message)?)?;
        }
        Ok(())
    }

    /// A replica over the row budget ends the connection.
    fn check_rows(&self, replica: &Replica) -> Result<(), SessionError> {
        let max = self.config.limits.max_rows;
        if replica.rows() > max {
            return Err(SessionError::TooManyRows(max));
        }
        Ok(())
    }

    fn handle_message(&mut self, message: Incoming) -> Result<(), SessionError> {
        match message {
            Incoming::Request { id, method, params } => {
                if method == "echo" {
                    self.send(&rpc::response(id, params));
                } else {
                    // We serve nothing else; say so instead of staying silent.
                    self.send(&json!({"id": id, "result": null,
                        "error": format!("unknown method {method}")}));
                }
            }
            Incoming::Notification { method, params } => {
                if method == "update" {
                    let Some(updates) = params.get(1) else {
                        return Err(RpcError("update without table-updates".into()).into());
                    };
                    // A replaced monitor's last updates, before its cancel
                    // took effect: the current one reports the same changes.
                    if params.get(0).and_then(Value::as_str) != Some(self.monitor_id.as_str()) {
                        return Ok(());
                    }
                    self.replica.apply(updates)?;
                    self.check_rows(&self.replica)?;
                    self.events.push_back(SessionEvent::Changed);
                }
            }
            Incoming::Response { id, result, error } => {
                let Some(pending) = id.as_u64().and_then(|id| self.pending.remove(&id)) else {
                    return Ok(());
                };
                match pending {
                    Pending::Ignored => {}
                    Pending::Monitor { id, columns } => {
                        if !error.is_null() {
                            return Err(SessionError::MonitorRefused(error.to_string()));
                        }
                        if id != self.requested.0 {
                            // Superseded before it answered.
                            self.request("monitor_cancel", json!([id]), Pending::Ignored);
                            return Ok(());
                        }
                        let mut replica = Replica::new(columns);
                        replica.apply(&result)?;
                        self.check_rows(&replica)?;
                        self.replica = replica;
                        let old = std::mem::replace(&mut self.monitor_id, id);
                        if self.ready {
                            self.request("monitor_cancel", json!([old]), Pending::Ignored);
                        }
                        self.ready = true;
                        self.events.push_back(SessionEvent::Changed);
                    }
                    Pending::Transact(waiter) => {
                        let outcome = transact_outcome(result, error);
                        self.events
                            .push_back(SessionEvent::TransactDone(waiter, outcome));
                    }
                }
            }
        }
        Ok(())
    }

    /// The tokens of transactions still waiting, for failing them on close.
    pub fn take_waiters(&mut self) -> Vec<W> {
        self.pending
            .drain()
            .filter_map(|(_, p)| match p {
                Pending::Transact(w) => Some(w),
                _ => None,
            })
            .collect()
    }
}

/// A transact response: any operation result with an `error` member (or
/// the extra trailing one a failed commit adds) fails the whole.
fn transact_outcome(result: Value, error: Value) -> Result<Vec<Value>, TransactError> {
    if !error.is_null() {
        return Err(TransactError::Refused(error.to_string()));
    }
    let Value::Array(results) = result else {
        return Err(TransactError::Refused(format!(
            "result is not an array: {result}"
        )));
    };
    for (index, r) in results.iter().enumerate() {
        if let Some(e) = r.get("error") {
            let details = r.get("details").and_then(Value::as_str).unwrap_or("");
            return Err(TransactError::Operation {
                index,
                error: format!("{} {}", e.as_str().unwrap_or("error"), details)
                    .trim()
                    .to_owned(),
            });
        }
    }
    Ok(results)
}
