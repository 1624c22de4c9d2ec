//! A [`Store`] in etcd (v3 API), shared by every controller that points at
//! the same etcd cluster and key prefix.
//!
//! Keys live under a prefix (default `/flowgate/`): store key `fw/rules/1`
//! is etcd key `/flowgate/fw/rules/1`.
//!
//! # Writes
//! [`Store::apply`] is one etcd transaction. The batch's net events (the
//! shared [`run_ops`] semantics) depend on which keys exist, so it first reads
//! the touched keys and prefixes at one revision, computes the events, and
//! commits them with a compare on what it read: every touched key still has
//! the mod revision it had (0: still absent), and no key under a deleted
//! prefix changed or appeared since. A concurrent writer makes the compare
//! fail and the batch is recomputed, [`MAX_ATTEMPTS`] times at most. That
//! compare-and-swap is what serializes several controllers' writes.
//!
//! etcd refuses a transaction with more than `--max-txn-ops` compares or
//! writes (128 by default): a batch replacing more keys than that needs the
//! limit raised on the etcd servers.
//!
//! # Watching
//! One etcd watch on the whole prefix, from the revision the store was opened
//! at, feeds the broadcast channels of [`Store::watch`]: watchers see every
//! committed change, whoever wrote it (another controller, `etcdctl`). After
//! a commit, `apply` waits until the watch has delivered its revision, so as
//! with the other backends a watcher has the events of a write once the write
//! returns. A watch that breaks (etcd unreachable) is re-established from the
//! next revision it had not seen, so nothing is skipped unless etcd compacted
//! those revisions meanwhile (logged as an error).
//!
//! # Blocking
//! etcd-client is async and the trait is not: the store runs the client on a
//! runtime of its own (one worker thread) and a trait call waits on a
//! channel for its answer. That works from plain threads and from async code
//! alike (no `block_on` inside a runtime), with the blocking profile of the
//! redb store's fsync: a round trip to etcd. Every call is bounded by the
//! configured timeout; past it, or when etcd cannot be reached, the call
//! fails with [`StoreError::Unavailable`] naming the cause.

use super::etcd_endpoints::{Endpoints, EtcdFailure, Pinned, ResumingWatch};
use super::watch::Watchers;
use super::{run_ops, EventKind, Guard, Op, Result, Store, StoreError, StoreEvent, WriteTxn};
use etcd_client::{
    Certificate, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity, KvClient,
    TlsOptions, Txn, TxnOp, TxnOpResponse,
};
use std::collections::BTreeSet;
use std::future::Future;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tracing::{error, info, warn};

/// How often `apply` recomputes a batch whose keys another writer changed
/// between its read and its commit.
pub const MAX_ATTEMPTS: usize = 16;

/// Largest etcd answer accepted (a listing of a big prefix); tonic's default
/// of 4 MiB would fail a store that holds a few thousand objects.
const MAX_RESPONSE: usize = 256 << 20;

/// Longest pause between two attempts to re-establish a broken watch.
const MAX_WATCH_BACKOFF: Duration = Duration::from_secs(5);

/// Where the store lives and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `host:port` (or `http://` / `https://` URLs) of the etcd members.
    pub endpoints: Vec<String>,
    /// Prefix of every key (not empty; by convention ends with `/`).
    pub prefix: String,
    /// Bound on every store call, retries included.
    pub timeout: Duration,
    pub tls: Option<EtcdTls>,
}

/// TLS to etcd: the CA that signed the servers' certificates, and a client
/// certificate when the servers require one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca_file: PathBuf,
    /// Client certificate chain and its private key (PEM).
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// A [`Store`] in etcd. See the module docs.
pub struct EtcdStore {
    runtime: ClientRuntime,
    etcd: Arc<Endpoints>,
    prefix: String,
    timeout: Duration,
    /// The endpoints, for error messages.
    endpoints: String,
    watchers: Arc<Watchers>,
    /// The highest revision the watch task has delivered to the watchers.
    delivered: watch::Receiver<i64>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The runtime the etcd client runs on.
struct ClientRuntime(Option<tokio::runtime::Runtime>);

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which panics inside another
        // runtime (a store dropped by async code); the watch task needs no
        // orderly end.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::ops::Deref for ClientRuntime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("present until dropped")
    }
}

impl EtcdStore {
    /// Connects to etcd and starts watching the prefix. Fails with
    /// [`StoreError::Unavailable`] if etcd does not answer a read within the
    /// timeout: a controller should not start on a store it cannot reach.
    pub fn connect(config: &EtcdConfig) -> Result<EtcdStore> {
        if config.endpoints.is_empty() || config.prefix.is_empty() {
            return Err(StoreError::Etcd(
                "the etcd store needs at least one endpoint and a non-empty key prefix".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("flowgate-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Etcd(format!("starting the etcd client runtime: {e}")))?;
        let runtime = ClientRuntime(Some(runtime));
        let endpoints = config.endpoints.join(",");
        let options = connect_options(config)?;
        let etcd = Arc::new(call(
            &runtime,
            &endpoints,
            bounded(
                config.timeout,
                Endpoints::connect(config.endpoints.clone(), options),
            ),
        )?);
        // The connection is lazy: this read proves etcd answers, and gives
        // the revision the watch starts after.
        let probe = etcd.clone();
        let prefix = config.prefix.clone();
        let timeout = config.timeout;
        let opened = call(&runtime, &endpoints, async move {
            let options = GetOptions::new().with_prefix().with_count_only();
            probe
                .call(timeout, timed_out(timeout), |pinned| {
                    let (prefix, options) = (prefix.clone(), options.clone());
                    async move { Ok(kv(&pinned).get(prefix, Some(options)).await?) }
                })
                .await
        })?;
        let revision = opened.header().map_or(0, |h| h.revision());
        let watchers = Arc::new(Watchers::default());
        let (delivered_tx, delivered) = watch::channel(revision);
        runtime.spawn(watch_prefix(
            etcd.clone(),
            config.prefix.clone(),
            revision + 1,
            config.timeout,
            watchers.clone(),
            delivered_tx,
        ));
        info!(
            endpoints,
            prefix = config.prefix,
            revision,
            "etcd store open"
        );
        Ok(EtcdStore {
            runtime,
            etcd,
            prefix: config.prefix.clone(),
            timeout: config.timeout,
            endpoints,
            watchers,
            delivered,
        })
    }

    /// Runs `fut` on the store's runtime; it must bound its own time.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, EtcdError>> + Send + 'static,
    ) -> Result<T> {
        call(&self.runtime, &self.endpoints, fut)
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// Why an etcd call failed, before it becomes a [`StoreError`].
#[derive(Debug)]
enum EtcdError {
    Client(etcd_client::Error),
    /// Every attempt of a batch met a concurrent change of its keys.
    Contention,
    /// No answer within the store's timeout.
    Timeout(Duration),
    /// Not etcd's doing (computing a batch).
    Store(StoreError),
}

impl From<etcd_client::Error> for EtcdError {
    fn from(e: etcd_client::Error) -> Self {
        EtcdError::Client(e)
    }
}

impl EtcdFailure for EtcdError {
    fn etcd(&self) -> Option<&etcd_client::Error> {
        match self {
            EtcdError::Client(e) => Some(e),
            _ => None,
        }
    }
}

/// For [`Endpoints::call`]: no answer within `timeout`.
fn timed_out(timeout: Duration) -> impl FnOnce() -> EtcdError {
    move || EtcdError::Timeout(timeout)
}

/// The pinned member's KV client, for answers as large as a big listing.
fn kv(pinned: &Pinned) -> KvClient {
    pinned
        .client
        .kv_client()
        .max_decoding_message_size(MAX_RESPONSE)
}

/// Runs `fut` on the store's runtime and waits for it from this thread,
/// which may be a worker of another runtime (it only blocks, it does not
/// drive a runtime). `fut` bounds its own time (see [`bounded`]).
fn call<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    endpoints: &str,
    fut: impl Future<Output = Result<T, EtcdError>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        // Err only if the caller stopped waiting, which it never does.
        let _ = tx.send(fut.await);
    });
    match rx.recv() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(store_error(e, endpoints)),
        Err(_) => Err(StoreError::Task("the etcd client runtime stopped".into())),
    }
}

/// `fut`, failing with [`EtcdError::Timeout`] past `timeout`.
async fn bounded<T, E: Into<EtcdError>>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, EtcdError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result.map_err(Into::into),
        Err(_elapsed) => Err(EtcdError::Timeout(timeout)),
    }
}

/// Unreachable or overloaded etcd (worth retrying later) is
/// [`StoreError::Unavailable`]; a request etcd refused is
/// [`StoreError::Etcd`].
fn store_error(e: EtcdError, endpoints: &str) -> StoreError {
    use etcd_client::Error as E;
    use tonic::Code;
    let e = match e {
        EtcdError::Contention => {
            return StoreError::Unavailable {
                cause: format!(
                    "etcd ({endpoints}): other writers changed the same keys during \
                     {MAX_ATTEMPTS} attempts"
                ),
            }
        }
        EtcdError::Timeout(timeout) => {
            return StoreError::Unavailable {
                cause: format!(
                    "etcd ({endpoints}) did not answer within {} ms",
                    timeout.as_millis()
                ),
            }
        }
        EtcdError::Store(e) => return e,
        EtcdError::Client(e) => e,
    };
    let unavailable = match &e {
        E::TransportError(_) | E::IoError(_) => true,
        E::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Aborted
                | Code::ResourceExhausted
                | Code::Unknown
        ),
        _ => false,
    };
    // The top of tonic's errors says little ("transport error") or shows
    // Rust debug output; what happened (connection refused, bad
    // certificate) is the message and the chain of sources.
    let (mut text, mut source) = match &e {
        E::TransportError(t) => ("transport error".to_owned(), std::error::Error::source(t)),
        E::GRpcStatus(s) => (
            format!("{:?}: {}", s.code(), s.message()),
            std::error::Error::source(s),
        ),
        e => (e.to_string(), None),
    };
    while let Some(s) = source {
        let part = s.to_string();
        // Nested errors often repeat their parent's words.
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    if unavailable {
        StoreError::Unavailable {
            cause: format!("etcd ({endpoints}): {text}"),
        }
    } else {
        StoreError::Etcd(format!("etcd ({endpoints}) refused the request: {text}"))
    }
}

/// How to reach etcd (timeouts, HTTP/2 keepalive, TLS), shared with the
/// cluster coordinator so both talk to etcd the same way.
pub(crate) fn connect_options(config: &EtcdConfig) -> Result<ConnectOptions> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(config.timeout)
        .with_timeout(config.timeout)
        // A dead connection is noticed by the watch within seconds, not
        // when the kernel gives up on it.
        .with_keep_alive(Duration::from_secs(5), config.timeout)
        .with_keep_alive_while_idle(true);
    if let Some(tls) = &config.tls {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| StoreError::Dir {
                path: path.clone(),
                source,
            })
        };
        let mut tls_options =
            TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca_file)?));
        if let Some((cert, key)) = &tls.identity {
            tls_options = tls_options.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(tls_options);
    }
    Ok(options)
}

/// A store key from an etcd key under `prefix`; `None` (logged) for a key
/// that is not UTF-8, which only something other than Flowgate writes.
fn store_key(prefix: &str, etcd_key: &[u8]) -> Option<String> {
    let key = etcd_key.strip_prefix(prefix.as_bytes())?;
    match std::str::from_utf8(key) {
        Ok(key) => Some(key.to_owned()),
        Err(_) => {
            warn!(key = %String::from_utf8_lossy(etcd_key), "etcd key under the store prefix is not UTF-8; ignored");
            None
        }
    }
}

/// Which keys exist, as far as one batch is concerned: those read before it
/// ran, then changed by its own ops. Lets [`run_ops`] compute the net events.
struct KeySet(BTreeSet<String>);

impl WriteTxn for KeySet {
    fn insert(&mut self, key: &str, _value: &[u8]) -> Result<bool> {
        Ok(!self.0.insert(key.to_owned()))
    }

    fn remove(&mut self, key: &str) -> Result<bool> {
        Ok(self.0.remove(key))
    }

    fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .0
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

/// One attempt of a batch: its events, or `None` if another writer changed
/// its keys between the read and the commit.
async fn try_apply(
    kv: &mut KvClient,
    prefix: &str,
    ops: &[Op],
    guard: Option<&Guard>,
) -> Result<Option<(Vec<StoreEvent>, i64)>, EtcdError> {
    let full = |key: &str| format!("{prefix}{key}");
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    let mut prefixes: BTreeSet<&str> = BTreeSet::new();
    for op in ops {
        match op {
            Op::Put { key, .. } | Op::Delete { key } => keys.insert(key),
            Op::DeletePrefix { prefix } => prefixes.insert(prefix),
        };
    }
    let keys: Vec<&str> = keys.into_iter().collect();
    let prefixes: Vec<&str> = prefixes.into_iter().collect();
    // One read-only transaction: every read at the same revision.
    let reads: Vec<TxnOp> = keys
        .iter()
        .map(|k| TxnOp::get(full(k), Some(GetOptions::new().with_keys_only())))
        .chain(prefixes.iter().map(|p| {
            TxnOp::get(
                full(p),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
        }))
        .collect();
    let reads = reads
        .into_iter()
        .chain(guard.map(|g| TxnOp::get(full(&g.key), Some(GetOptions::new().with_keys_only()))))
        .collect::<Vec<_>>();
    let read = kv.txn(Txn::new().and_then(reads)).await?;
    let read_revision = read.header().map_or(0, |h| h.revision());
    let mut existing = BTreeSet::new();
    let mut compares = Vec::new();
    let mut answers = read.op_responses();
    if let Some(guard) = guard {
        let changed = match answers.pop() {
            Some(TxnOpResponse::Get(got)) => got.kvs().first().map_or(0, |kv| kv.mod_revision()),
            _ => 0,
        };
        if changed > guard.since {
            return Err(EtcdError::Store(StoreError::Conflict {
                key: guard.key.clone(),
                revision: changed,
                since: guard.since,
            }));
        }
        compares.push(Compare::mod_revision(
            full(&guard.key),
            CompareOp::Less,
            guard.since + 1,
        ));
    }
    for (i, answer) in answers.into_iter().enumerate() {
        let TxnOpResponse::Get(got) = answer else {
            continue;
        };
        if let Some(key) = keys.get(i) {
            // An absent key compares as mod revision 0.
            let revision = got.kvs().first().map_or(0, |kv| kv.mod_revision());
            compares.push(Compare::mod_revision(full(key), CompareOp::Equal, revision));
        } else {
            // Nothing under the prefix changed or appeared since the read...
            let p = prefixes[i - keys.len()];
            compares.push(
                Compare::mod_revision(full(p), CompareOp::Less, read_revision + 1).with_prefix(),
            );
            // ...and nothing that was there went away (deleted by another
            // writer, which would make our Delete event untrue).
            for kv in got.kvs() {
                compares.push(Compare::mod_revision(
                    kv.key().to_vec(),
                    CompareOp::Equal,
                    kv.mod_revision(),
                ));
            }
        }
        existing.extend(
            got.kvs()
                .iter()
                .filter_map(|kv| store_key(prefix, kv.key())),
        );
    }
    let mut events = run_ops(&mut KeySet(existing), ops.to_vec()).map_err(EtcdError::Store)?;
    if events.is_empty() {
        // Nothing changes (deletes of absent keys): nothing to commit.
        return Ok(Some((events, read_revision)));
    }
    // The net writes, in first-touched order: each key once, as etcd wants.
    let writes: Vec<TxnOp> = events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Put(value) => TxnOp::put(full(&e.key), value.clone(), None),
            EventKind::Delete => TxnOp::delete(full(&e.key), None),
        })
        .collect();
    let committed = kv.txn(Txn::new().when(compares).and_then(writes)).await?;
    if !committed.succeeded() {
        return Ok(None);
    }
    let revision = committed.header().map_or(0, |h| h.revision());
    for event in &mut events {
        event.revision = revision;
    }
    Ok(Some((events, revision)))
}

/// The watch task: etcd's events under `prefix`, from `start` on, to the
/// watchers. The watch moves to another member by itself when its member
/// fails; it is re-established here when that did not work within
/// `timeout` (etcd unreachable) or when etcd cancelled it.
async fn watch_prefix(
    etcd: Arc<Endpoints>,
    prefix: String,
    mut start: i64,
    timeout: Duration,
    watchers: Arc<Watchers>,
    delivered: watch::Sender<i64>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut broken = false;
    loop {
        let error = match ResumingWatch::open(etcd.clone(), prefix.clone(), start, timeout).await {
            Err(e) => e.to_string(),
            Ok(mut stream) => loop {
                match stream.message().await {
                    Err(e) => break e.to_string(),
                    Ok(response) => {
                        if broken {
                            info!(revision = start, "etcd store watch re-established");
                            broken = false;
                            backoff = Duration::from_millis(100);
                        }
                        if response.canceled() {
                            let compacted = response.compact_revision();
                            if compacted > start {
                                error!(
                                    from = start,
                                    to = compacted,
                                    "etcd compacted revisions the store watch had not seen: \
                                     watchers missed those changes"
                                );
                                start = compacted;
                            }
                            break format!("watch cancelled: {}", response.cancel_reason());
                        }
                        let mut last = None;
                        let events: Vec<StoreEvent> = response
                            .events()
                            .iter()
                            .filter_map(|event| {
                                let kv = event.kv()?;
                                let revision = kv.mod_revision();
                                last = Some(revision);
                                let key = store_key(&prefix, kv.key())?;
                                let kind = match event.event_type() {
                                    EventType::Put => EventKind::Put(kv.value().to_vec()),
                                    EventType::Delete => EventKind::Delete,
                                };
                                Some(StoreEvent {
                                    key,
                                    kind,
                                    revision,
                                })
                            })
                            .collect();
                        watchers.notify(&events);
                        if let Some(revision) = last {
                            start = revision + 1;
                            delivered.send_replace(revision);
                        }
                    }
                }
            },
        };
        if !broken {
            warn!(error, "etcd store watch broken; re-establishing it");
            broken = true;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_WATCH_BACKOFF);
    }
}

impl Store for EtcdStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let etcd = self.etcd.clone();
        let key = self.full_key(key);
        let timeout = self.timeout;
        self.run(async move {
            let mut got = etcd
                .call(timeout, timed_out(timeout), |pinned| {
                    let key = key.clone();
                    async move { Ok(kv(&pinned).get(key, None).await?) }
                })
                .await?;
            Ok(got.take_kvs().pop().map(|kv| kv.into_key_value().1))
        })
    }

    fn list_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let etcd = self.etcd.clone();
        let full = self.full_key(prefix);
        let store_prefix = self.prefix.clone();
        let timeout = self.timeout;
        // etcd answers in key (byte) order, the order of `String`.
        self.run(async move {
            let options = GetOptions::new().with_prefix();
            let mut got = etcd
                .call(timeout, timed_out(timeout), |pinned| {
                    let (full, options) = (full.clone(), options.clone());
                    async move { Ok(kv(&pinned).get(full, Some(options)).await?) }
                })
                .await?;
            Ok(got
                .take_kvs()
                .into_iter()
                .filter_map(|kv| {
                    let (key, value) = kv.into_key_value();
                    Some((store_key(&store_prefix, &key)?, value))
                })
                .collect())
        })
    }

    fn changed_at(&self, key: &str) -> Result<i64> {
        let etcd = self.etcd.clone();
        let key = self.full_key(key);
        let timeout = self.timeout;
        self.run(async move {
            let got = etcd
                .call(timeout, timed_out(timeout), |pinned| {
                    let key = key.clone();
                    let options = GetOptions::new().with_keys_only();
                    async move { Ok(kv(&pinned).get(key, Some(options)).await?) }
                })
                .await?;
            Ok(got.kvs().first().map_or(0, |kv| kv.mod_revision()))
        })
    }

    fn revision(&self) -> Result<i64> {
        let etcd = self.etcd.clone();
        let key = self.prefix.clone();
        let timeout = self.timeout;
        self.run(async move {
            let got = etcd
                .call(timeout, timed_out(timeout), |pinned| {
                    let key = key.clone();
                    let options = GetOptions::new().with_prefix().with_count_only();
                    async move { Ok(kv(&pinned).get(key, Some(options)).await?) }
                })
                .await?;
            Ok(got.header().map_or(0, |h| h.revision()))
        })
    }

    fn apply_guarded(&self, ops: Vec<Op>, guard: Option<&Guard>) -> Result<Vec<StoreEvent>> {
        let guard = guard.cloned();
        let etcd = self.etcd.clone();
        let prefix = self.prefix.clone();
        let mut delivered = self.delivered.clone();
        let endpoints = self.endpoints.clone();
        let timeout = self.timeout;
        self.run(async move {
            // Tried again on another member, or after an election, when
            // etcd fails mid-batch. A commit whose answer was lost is then
            // recomputed against what it wrote: puts write their value
            // again (watchers see the same value twice) and deletes of keys
            // it already removed are no events (watchers had them once).
            let (ops, prefix, guard) = (&ops, &prefix, guard.as_ref());
            let attempts = |pinned| async move {
                let mut kv = kv(&pinned);
                for _ in 0..MAX_ATTEMPTS {
                    if let Some(done) = try_apply(&mut kv, prefix, ops, guard).await? {
                        return Ok(done);
                    }
                }
                Err(EtcdError::Contention)
            };
            let (events, revision) = etcd.call(timeout, timed_out(timeout), attempts).await?;
            // Committed: from here on the write succeeded, whatever happens
            // to the watch. Waiting for it keeps the other backends' order
            // (watchers have a write's events when it returns).
            if !events.is_empty() {
                let seen = tokio::time::timeout(timeout, delivered.wait_for(|r| *r >= revision));
                if !matches!(seen.await, Ok(Ok(_))) {
                    warn!(
                        endpoints,
                        revision, "etcd store watch is behind a committed write"
                    );
                }
            }
            Ok(events)
        })
    }

    fn watch(&self, prefix: &str) -> broadcast::Receiver<StoreEvent> {
        self.watchers.subscribe(prefix)
    }
}
