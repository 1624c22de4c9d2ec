//! A switch connection's output, shared by every task that sends to it.
//!
//! Whoever has bytes for the switch (the core's flush, the session task)
//! writes them straight to the socket with a non-blocking `try_write`. Only
//! when the socket would block does the rest go to a backlog, which a small
//! per-connection [`Flusher`] task drains as the socket becomes writable.
//! Compared with handing every batch to a writer task over a channel, an
//! answer takes one task hop fewer (no writer wake-up between the core and
//! the socket), while the syscalls stay the same: one write per flush, many
//! flow-mods per write.
//!
//! Bytes never reorder or interleave: the backlog and every write are under
//! one lock, and a sender writes directly only while the backlog is empty.
//! The lock is a `std::sync::Mutex` held for one non-blocking syscall at
//! most, never across an `.await`.

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, BytesMut};
use thiserror::Error;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// A drained backlog larger than this is given back to the allocator, so one
/// burst does not pin its memory for the connection's life.
const KEEP_CAPACITY: usize = 256 * 1024;

/// Why [`SwitchWriter::send`] refused bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SendError {
    /// The backlog would exceed its bound: the switch does not read as fast
    /// as we write. The writer is closed; the caller should disconnect it.
    #[error("send queue full")]
    Full,
    /// The connection is closing or its socket failed.
    #[error("connection closed")]
    Closed,
}

/// One connection's output; cheap to clone, usable from any task.
#[derive(Clone)]
pub struct SwitchWriter {
    inner: Arc<Inner>,
}

struct Inner {
    /// The socket's write half (the session task keeps the read half).
    /// `None` only for a writer with no socket, whose bytes all stay in the
    /// backlog for a test to read ([`SwitchWriter::detached`]).
    stream: Option<OwnedWriteHalf>,
    state: Mutex<State>,
    /// Wakes the flusher: the backlog became non-empty, or the writer closed.
    wake: Notify,
    /// Most bytes the backlog may hold.
    limit: usize,
}

#[derive(Default)]
struct State {
    /// Bytes accepted but not yet written, in order.
    backlog: BytesMut,
    /// No more sends: closing, overflowed, or the socket failed.
    closed: bool,
}

/// Drains a [`SwitchWriter`]'s backlog whenever its socket would block; one
/// task per connection, ended by [`SwitchWriter::close`] once the backlog is
/// written, or by a socket error.
pub struct Flusher {
    inner: Arc<Inner>,
}

/// What one pass over the backlog found.
enum Drain {
    /// Nothing left to write; more may come.
    Idle,
    /// The socket would block with bytes still in the backlog.
    Blocked,
    /// Closed, and nothing left that will ever be written.
    Done,
}

impl SwitchWriter {
    /// A writer to `stream` whose backlog may hold up to `limit` bytes, and
    /// the flusher to spawn next to it.
    pub fn new(stream: OwnedWriteHalf, limit: usize) -> (SwitchWriter, Flusher) {
        let inner = Arc::new(Inner {
            stream: Some(stream),
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            limit,
        });
        let flusher = Flusher {
            inner: inner.clone(),
        };
        (SwitchWriter { inner }, flusher)
    }

    /// A writer with no socket: everything sent stays in the backlog until
    /// [`SwitchWriter::take_pending`] (tests of the core, which run without
    /// a switch).
    #[cfg(test)]
    pub(crate) fn detached(limit: usize) -> SwitchWriter {
        SwitchWriter {
            inner: Arc::new(Inner {
                stream: None,
                state: Mutex::new(State::default()),
                wake: Notify::new(),
                limit,
            }),
        }
    }

    /// Takes the bytes not yet written (all bytes sent, for a
    /// [`SwitchWriter::detached`] writer).
    #[cfg(test)]
    pub(crate) fn take_pending(&self) -> bytes::Bytes {
        self.inner.lock().backlog.split().freeze()
    }

    /// Writes `bytes` to the socket now, as far as it takes them without
    /// blocking; the rest is written by the flusher, after everything sent
    /// before. Sending nothing is a no-op.
    ///
    /// Errors: [`SendError::Full`] if the unwritten bytes would exceed the
    /// bound (the writer then closes: later bytes must not follow a gap),
    /// [`SendError::Closed`] once closed or after a socket error.
    pub fn send(&self, bytes: &[u8]) -> Result<(), SendError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut state = self.inner.lock();
        if state.closed {
            return Err(SendError::Closed);
        }
        let mut rest = bytes;
        if state.backlog.is_empty() {
            if let Some(stream) = &self.inner.stream {
                match write_some(stream, rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(_) => return self.fail(state, SendError::Closed),
                }
                if rest.is_empty() {
                    return Ok(());
                }
            }
        }
        if state.backlog.len() + rest.len() > self.inner.limit {
            return self.fail(state, SendError::Full);
        }
        let wake = state.backlog.is_empty();
        state.backlog.extend_from_slice(rest);
        drop(state);
        if wake {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// Closes the writer for good after `error` (nothing may follow a gap
    /// in the stream) and lets the flusher end.
    fn fail(&self, mut state: MutexGuard<'_, State>, error: SendError) -> Result<(), SendError> {
        state.fail();
        drop(state);
        self.inner.wake.notify_one();
        Err(error)
    }

    /// Refuses further sends; the flusher writes what is already accepted,
    /// then ends. Call [`SwitchWriter::shutdown`] after it.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.wake.notify_one();
    }

    /// Sends the peer our FIN (after whatever the kernel still holds) and
    /// refuses further sends. The socket itself closes with its last handle.
    pub fn shutdown(&self) {
        self.close();
        if let Some(stream) = &self.inner.stream {
            // An already reset or shut down socket has nothing to shut.
            let stream: &TcpStream = stream.as_ref();
            let _ = socket2::SockRef::from(stream).shutdown(Shutdown::Write);
        }
    }
}

impl fmt::Debug for SwitchWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("SwitchWriter")
            .field("backlog", &state.backlog.len())
            .field("closed", &state.closed)
            .finish()
    }
}

impl Flusher {
    /// Runs until the writer is closed and drained, or the socket fails.
    pub async fn run(self) {
        let Some(stream) = &self.inner.stream else {
            return;
        };
        loop {
            match self.inner.drain(stream) {
                Drain::Idle => self.inner.wake.notified().await,
                Drain::Blocked => {
                    if stream.writable().await.is_err() {
                        self.inner.lock().fail();
                        return;
                    }
                }
                Drain::Done => return,
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every
        // update is a single assignment or buffer operation.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the backlog, in order, until it is empty or the socket would
    /// block.
    fn drain(&self, stream: &OwnedWriteHalf) -> Drain {
        let mut state = self.lock();
        if !state.backlog.is_empty() {
            match write_some(stream, &state.backlog) {
                Ok(n) => state.backlog.advance(n),
                Err(_) => {
                    state.fail();
                    return Drain::Done;
                }
            }
            if !state.backlog.is_empty() {
                return Drain::Blocked;
            }
            if state.backlog.capacity() > KEEP_CAPACITY {
                state.backlog = BytesMut::new();
            }
        }
        if state.closed {
            Drain::Done
        } else {
            Drain::Idle
        }
    }
}

impl State {
    /// Closes for good, dropping what will never be written.
    fn fail(&mut self) {
        self.closed = true;
        self.backlog = BytesMut::new();
    }
}

/// Writes as much of `bytes` as the socket takes without blocking.
fn write_some(stream: &OwnedWriteHalf, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.try_write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
