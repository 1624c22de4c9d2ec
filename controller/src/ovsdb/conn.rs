//! The thin tokio driver around one [`Session`]: reads bytes into it,
//! writes what it queues, runs its timer, and turns commands into
//! transactions. The same code serves connections the host opened
//! (`set-manager`) and connections Flowgate opened (`ptcp` hosts).

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::columns::Columns;
use super::session::{Session, SessionConfig, SessionError, SessionEvent, TransactError};
use super::view::HostView;

/// What other tasks ask of a connection.
#[derive(Debug)]
pub enum Command {
    Transact {
        ops: Vec<Value>,
        reply: oneshot::Sender<Result<Vec<Value>, TransactError>>,
    },
}

type Waiter = oneshot::Sender<Result<Vec<Value>, TransactError>>;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("closed by the peer")]
    Eof,
    #[error("closed by Flowgate")]
    Stopped,
    #[error("no database contents within {0:?}")]
    Handshake(std::time::Duration),
}

/// Runs the connection until it fails or every command sender is gone.
/// `on_view` gets the host's typed view after the initial monitor reply and
/// after every batch of updates. The monitored columns follow `columns`.
pub async fn drive<S>(
    stream: S,
    config: SessionConfig,
    mut columns: watch::Receiver<Columns>,
    mut commands: mpsc::Receiver<Command>,
    mut on_view: impl FnMut(Arc<HostView>),
) -> ConnError
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let first = columns.borrow_and_update().clone();
    let mut session: Session<Waiter> = Session::new(Instant::now(), config, first);
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = vec![0u8; 64 * 1024];
    let result: Result<(), ConnError> = async {
        loop {
            if let Some(bytes) = session.poll_transmit() {
                wr.write_all(&bytes).await?;
                wr.flush().await?;
            }
            let deadline = tokio::time::Instant::from_std(session.poll_timeout());
            tokio::select! {
                n = rd.read(&mut buf) => {
                    let n = n?;
                    if n == 0 {
                        return Err(ConnError::Eof);
                    }
                    session.handle_bytes(Instant::now(), &buf[..n])?;
                }
                cmd = commands.recv() => match cmd {
                    Some(Command::Transact { ops, reply }) => session.transact(ops, reply),
                    None => return Err(ConnError::Stopped),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    session.handle_timeout(Instant::now())?;
                }
                // The registry lives as long as the hosts; an error means
                // Flowgate is stopping, and the commands end the loop.
                Ok(()) = columns.changed() => {
                    let wanted = columns.borrow_and_update().clone();
                    session.monitor(wanted);
                }
            }
            let mut changed = false;
            while let Some(event) = session.poll_event() {
                match event {
                    SessionEvent::Changed => changed = true,
                    SessionEvent::TransactDone(reply, outcome) => {
                        let _ = reply.send(outcome);
                    }
                }
            }
            if changed && session.is_ready() {
                on_view(Arc::new(HostView::from_replica(session.replica())));
            }
        }
    }
    .await;
    for waiter in session.take_waiters() {
        let _ = waiter.send(Err(TransactError::Closed));
    }
    match result {
        Ok(()) => ConnError::Stopped,
        Err(e) => e,
    }
}
