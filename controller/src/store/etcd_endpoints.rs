//! Failover between the members of an etcd cluster, for the store and the
//! cluster coordinator.
//!
//! etcd-client's own balanced channel keeps sending requests to a member
//! that died (etcdv3/etcd-client#39): with one of three members killed,
//! every node kept failing calls and breaking streams. So [`Endpoints`]
//! talks to one member at a time, in the configured order: the *pinned*
//! one. A call that fails for the member's sake (connection refused or
//! reset, an HTTP/2 error, the member has no leader) moves the pin to the
//! next member and is tried again there; a call etcd refused for a passing
//! reason (a leader election: "leader changed", "request timed out") is
//! tried again after a pause; everything within the caller's timeout.
//! Requests etcd refused for good (a failed compare is an answer, not an
//! error; a bad request, a compacted revision) are not retried.
//!
//! A write whose answer was lost may have committed. Callers retry only
//! writes that are safe to repeat: the store recomputes a batch against
//! what it reads (see `etcd_store`), the coordinator's puts and guarded
//! transactions are idempotent.
//!
//! Streams are resumed on the new member by their owners: the store's watch
//! from the revision after the last one it delivered ([`ResumingWatch`]);
//! the coordinator's session, keepalive and watch together, on the same
//! lease (`cluster/etcd.rs`): leases and revisions belong to the cluster,
//! not to a member.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, Error, WatchOptions, WatchResponse, WatchStream};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{info, warn};

/// First pause between two attempts once every member failed, or after a
/// passing refusal; doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// What a failed etcd call says about where to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The member could not be reached or cannot serve: try the next one.
    Member,
    /// etcd refused for a passing reason (a leader election): try again.
    Transient,
    /// etcd refused the request itself: trying again gives the same answer.
    Refused,
}

/// Sorts an etcd-client error into a [`Failure`]. etcd's own refusals come
/// as gRPC statuses whose message starts with `etcdserver: `; transport
/// failures are tonic's ("tcp connect error", "h2 protocol error").
pub(crate) fn classify(e: &Error) -> Failure {
    use tonic::Code;
    match e {
        Error::TransportError(_) | Error::IoError(_) => Failure::Member,
        // The request channel of a stream closed: its connection is gone.
        Error::WatchError(_) | Error::LeaseKeepAliveError(_) => Failure::Member,
        Error::GRpcStatus(status) => match status.message().strip_prefix("etcdserver: ") {
            Some("no leader" | "server stopped") => Failure::Member,
            Some(reason)
                if reason.starts_with("request timed out")
                    || matches!(
                        reason,
                        "leader changed" | "too many requests" | "unhealthy cluster"
                    ) =>
            {
                Failure::Transient
            }
            Some(_) => Failure::Refused,
            None => match status.code() {
                Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal => {
                    Failure::Member
                }
                _ => Failure::Refused,
            },
        },
        _ => Failure::Refused,
    }
}

/// An error of a call made through [`Endpoints::call`]: the etcd error when
/// there is one to classify.
pub(crate) trait EtcdFailure {
    fn etcd(&self) -> Option<&Error>;
}

impl EtcdFailure for Error {
    fn etcd(&self) -> Option<&Error> {
        Some(self)
    }
}

/// A client for the pinned member.
#[derive(Clone)]
pub(crate) struct Pinned {
    pub client: Client,
    /// Which pin this is: a failure reported on an older pin moves nothing.
    serial: u64,
}

/// The members of one etcd cluster and the one currently used. See the
/// module docs.
pub(crate) struct Endpoints {
    urls: Vec<String>,
    options: ConnectOptions,
    pinned: Mutex<(usize, Pinned)>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl Endpoints {
    /// Pins the first member. Connections are made on first use, so this
    /// fails only on a malformed endpoint or TLS setting.
    pub async fn connect(urls: Vec<String>, options: ConnectOptions) -> Result<Endpoints, Error> {
        let first = urls
            .first()
            .ok_or_else(|| Error::InvalidArgs("no etcd endpoint".into()))?;
        let client = Client::connect([first], Some(options.clone())).await?;
        Ok(Endpoints {
            urls,
            options,
            pinned: Mutex::new((0, Pinned { client, serial: 0 })),
        })
    }

    pub async fn pinned(&self) -> Pinned {
        self.pinned.lock().await.1.clone()
    }

    /// Moves the pin past the member of `failed` (unless another caller
    /// already did) and returns the new pin.
    pub async fn skip(&self, failed: &Pinned) -> Pinned {
        let mut pinned = self.pinned.lock().await;
        if pinned.1.serial == failed.serial && self.urls.len() > 1 {
            let from = pinned.0;
            let mut next = from;
            for _ in 0..self.urls.len() {
                next = (next + 1) % self.urls.len();
                // Only a malformed URL fails here, and connect checked the
                // first one; such a member is skipped for good.
                match Client::connect([&self.urls[next]], Some(self.options.clone())).await {
                    Ok(client) => {
                        warn!(
                            from = self.urls[from],
                            to = self.urls[next],
                            "etcd member unreachable; using the next one"
                        );
                        *pinned = (
                            next,
                            Pinned {
                                client,
                                serial: failed.serial + 1,
                            },
                        );
                        break;
                    }
                    Err(e) => {
                        warn!(endpoint = self.urls[next], error = %e, "etcd endpoint unusable")
                    }
                }
            }
        }
        pinned.1.clone()
    }

    /// `op` with the pinned member's client, tried again as [`classify`] says until
    /// it succeeds, is refused, or `timeout` has passed. Past the timeout
    /// the last error is returned (it names the cause), or `timed_out()`
    /// if the last attempt had no answer at all.
    pub async fn call<T, E, F, Fut>(
        &self,
        timeout: Duration,
        timed_out: impl FnOnce() -> E,
        mut op: F,
    ) -> Result<T, E>
    where
        E: EtcdFailure,
        F: FnMut(Pinned) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let deadline = Instant::now() + timeout;
        let mut pause = FIRST_PAUSE;
        // Members that failed since the last pause: after all of them,
        // wait before going round again.
        let mut failed_members = 0;
        let mut retried = false;
        loop {
            let pinned = self.pinned().await;
            let error = match tokio::time::timeout_at(deadline, op(pinned.clone())).await {
                Ok(Ok(value)) => {
                    if retried {
                        info!("etcd call succeeded after a retry");
                    }
                    return Ok(value);
                }
                Ok(Err(e)) => e,
                Err(_elapsed) => return Err(timed_out()),
            };
            let wait = match error.etcd().map(classify) {
                Some(Failure::Member) => {
                    self.skip(&pinned).await;
                    failed_members += 1;
                    failed_members >= self.urls.len()
                }
                Some(Failure::Transient) => true,
                Some(Failure::Refused) | None => return Err(error),
            };
            if wait {
                failed_members = 0;
                if Instant::now() + pause >= deadline {
                    return Err(error);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            } else if Instant::now() >= deadline {
                return Err(error);
            }
            retried = true;
        }
    }
}

/// A watch on a prefix that survives the loss of its member: it resumes on
/// the next member from the revision after the last event it delivered, so
/// no event is lost or repeated.
pub(crate) struct ResumingWatch {
    etcd: Arc<Endpoints>,
    prefix: String,
    /// The first revision not delivered yet.
    next: i64,
    timeout: Duration,
    pinned: Pinned,
    stream: WatchStream,
}

impl ResumingWatch {
    /// Watches `prefix` from revision `start` on.
    pub async fn open(
        etcd: Arc<Endpoints>,
        prefix: String,
        start: i64,
        timeout: Duration,
    ) -> Result<ResumingWatch, Error> {
        let (pinned, stream) = Self::watch(&etcd, &prefix, start, timeout).await?;
        Ok(ResumingWatch {
            etcd,
            prefix,
            next: start,
            timeout,
            pinned,
            stream,
        })
    }

    async fn watch(
        etcd: &Endpoints,
        prefix: &str,
        start: i64,
        timeout: Duration,
    ) -> Result<(Pinned, WatchStream), Error> {
        let options = || WatchOptions::new().with_prefix().with_start_revision(start);
        let timed_out = || Error::WatchError(format!("no answer within {timeout:?}"));
        etcd.call(timeout, timed_out, |pinned| async move {
            let mut watch = pinned.client.watch_client();
            let stream = watch.watch(prefix, Some(options())).await?;
            // The pin the stream is on, for `skip` when it breaks.
            Ok((pinned, stream))
        })
        .await
    }

    /// The next response. A broken stream is re-established (on the next
    /// member if this one failed) within the timeout; a cancelled watch
    /// (compaction) is the caller's to handle.
    pub async fn message(&mut self) -> Result<WatchResponse, Error> {
        loop {
            let error = match self.stream.message().await {
                Ok(Some(response)) => {
                    if let Some(last) = response.events().last().and_then(|e| e.kv()) {
                        self.next = last.mod_revision() + 1;
                    }
                    return Ok(response);
                }
                Ok(None) => Error::WatchError("the watch stream ended".into()),
                Err(e) => e,
            };
            match classify(&error) {
                Failure::Member => {
                    self.etcd.skip(&self.pinned).await;
                }
                Failure::Transient => {}
                Failure::Refused => return Err(error),
            }
            warn!(error = %error, revision = self.next, "etcd watch broken; resuming it");
            let (pinned, stream) =
                Self::watch(&self.etcd, &self.prefix, self.next, self.timeout).await?;
            self.pinned = pinned;
            self.stream = stream;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: tonic::Code, message: &str) -> Error {
        Error::GRpcStatus(tonic::Status::new(code, message))
    }

    #[test]
    fn transport_failures_move_to_the_next_member() {
        use tonic::Code;
        for e in [
            status(Code::Unavailable, "tcp connect error"),
            status(Code::Unknown, "h2 protocol error: error reading a body"),
            status(Code::Cancelled, "operation was canceled"),
            status(Code::Unavailable, "etcdserver: no leader"),
            Error::IoError(std::io::ErrorKind::ConnectionRefused.into()),
            Error::WatchError("channel closed".into()),
        ] {
            assert_eq!(classify(&e), Failure::Member, "{e}");
        }
    }

    #[test]
    fn elections_are_waited_out() {
        use tonic::Code;
        for message in [
            "etcdserver: leader changed",
            "etcdserver: request timed out",
            "etcdserver: request timed out, possibly due to previous leader failure",
            "etcdserver: too many requests",
        ] {
            assert_eq!(
                classify(&status(Code::Unavailable, message)),
                Failure::Transient,
                "{message}"
            );
        }
    }

    #[test]
    fn etcds_own_refusals_are_final() {
        use tonic::Code;
        for e in [
            status(
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            status(
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            status(Code::PermissionDenied, "etcdserver: permission denied"),
            status(Code::NotFound, "etcdserver: requested lease not found"),
            status(Code::InvalidArgument, "bad request"),
            Error::InvalidArgs("x".into()),
        ] {
            assert_eq!(classify(&e), Failure::Refused, "{e}");
        }
    }
}
