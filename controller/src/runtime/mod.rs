//! The switch runtime: accepts OpenFlow connections, runs one [`session`] per
//! switch behind a thin tokio [`driver`], keeps the [`registry`] of connected
//! switches, and feeds the [`core`] that runs modules and the [`reconcile`]r.

pub mod core;
pub mod driver;
pub mod metrics;
pub mod reconcile;
pub mod registry;
pub mod session;
mod unknown_table;
mod view;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{info, warn};

use self::core::{Core, CoreEvent};
use self::driver::DriverConfig;
use self::metrics::Metrics;
use self::registry::Registry;
use crate::module::{Ctx, Module};

/// Queue from drivers to the core, in events.
const CORE_QUEUE: usize = 65536;

/// Settings of the OpenFlow side.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub driver: DriverConfig,
    /// Most simultaneous switch connections; more are refused.
    pub max_connections: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            driver: DriverConfig::default(),
            max_connections: 10_000,
        }
    }
}

/// How long [`Runtime::call`] waits for switches to confirm by barrier.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Which loaded module can program which OpenFlow version, by module name
/// (the owner's name: `forwarding`, `topology`, ...), for the REST API.
#[derive(Debug, Clone, Default)]
pub struct ModuleCatalog {
    modules: Vec<(String, Vec<u8>)>,
}

impl ModuleCatalog {
    pub fn new(modules: &[Box<dyn Module>]) -> Self {
        let mut catalog = ModuleCatalog::default();
        for module in modules {
            let name = format!("{:?}", module.owner()).to_lowercase();
            let versions = session::SUPPORTED_VERSIONS
                .iter()
                .copied()
                .filter(|v| module.supports(*v));
            // Several modules may share an owner (one per OpenFlow version).
            match catalog.modules.iter_mut().find(|(n, _)| *n == name) {
                Some((_, known)) => known.extend(versions),
                None => catalog.modules.push((name, versions.collect())),
            }
        }
        catalog
    }

    /// Modules that do not run on switches speaking `version`.
    pub fn unavailable_on(&self, version: u8) -> Vec<String> {
        self.modules
            .iter()
            .filter(|(_, versions)| !versions.contains(&version))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// A running runtime; cheap to clone, and the REST API's view of switches.
#[derive(Clone)]
pub struct Runtime {
    registry: Arc<Registry>,
    catalog: Arc<ModuleCatalog>,
    metrics: Arc<Metrics>,
    config: Arc<RuntimeConfig>,
    core: mpsc::Sender<CoreEvent>,
}

/// The outcome of [`Runtime::call`].
#[derive(Debug, Clone)]
pub struct Applied<R> {
    pub value: R,
    /// Switches that confirmed (barrier reply) every message the call caused.
    pub confirmed: Vec<u64>,
    /// Switches that did not confirm in time or disconnected first; they get
    /// the change on reconnect or with the next reconciliation.
    pub unconfirmed: Vec<u64>,
    /// Errors switches returned for those messages, as "dpid: error".
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CallError {
    #[error("module is not loaded")]
    NoSuchModule,
    #[error("controller is shutting down")]
    Stopped,
}

impl Runtime {
    /// Starts the core with `modules` and accepts switches on `listener`.
    pub fn start(
        listener: TcpListener,
        config: RuntimeConfig,
        modules: Vec<Box<dyn Module>>,
    ) -> Runtime {
        let registry = Arc::new(Registry::default());
        let metrics = Arc::new(Metrics::default());
        let (core_tx, core_rx) = mpsc::channel(CORE_QUEUE);
        let catalog = Arc::new(ModuleCatalog::new(&modules));
        tokio::spawn(Core::new(modules, metrics.clone()).run(core_rx));
        let runtime = Runtime {
            registry,
            catalog,
            metrics,
            config: Arc::new(config),
            core: core_tx.clone(),
        };
        tokio::spawn(runtime.clone().accept_loop(listener, core_tx));
        runtime
    }

    /// Runs `f` on the loaded module of type `M` on the core (so it sees a
    /// consistent state and may change desired state through the [`Ctx`]),
    /// then waits until every switch the change touched confirms it with a
    /// barrier reply. When this returns, the flows are on the switches: a
    /// REST write that awaits it holds from the moment it answers.
    pub async fn call<M, R>(
        &self,
        f: impl FnOnce(&mut M, &mut Ctx) -> R + Send + 'static,
    ) -> Result<Applied<R>, CallError>
    where
        M: Module,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let call: self::core::CoreCall = Box::new(move |core, now| {
            let _ = tx.send(core.call_module(now, f));
        });
        self.core
            .send(CoreEvent::Call(call))
            .await
            .map_err(|_| CallError::Stopped)?;
        let (value, acks) = rx
            .await
            .map_err(|_| CallError::Stopped)?
            .ok_or(CallError::NoSuchModule)?;
        let mut applied = Applied {
            value,
            confirmed: Vec::new(),
            unconfirmed: Vec::new(),
            errors: Vec::new(),
        };
        for (dpid, ack) in acks {
            match tokio::time::timeout(CONFIRM_TIMEOUT, ack).await {
                Ok(Ok(ack)) => {
                    applied.confirmed.push(dpid);
                    applied
                        .errors
                        .extend(ack.errors.into_iter().map(|e| format!("{dpid:016x}: {e}")));
                }
                _ => applied.unconfirmed.push(dpid),
            }
        }
        Ok(applied)
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    async fn accept_loop(self, listener: TcpListener, core: mpsc::Sender<CoreEvent>) {
        let limit = Arc::new(Semaphore::new(self.config.max_connections));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically out of file descriptors: back off, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                warn!(%peer, "connection limit reached; refusing switch");
                continue;
            };
            info!(%peer, "switch connection accepted");
            let registry = self.registry.clone();
            let core = core.clone();
            let config = self.config.driver.clone();
            tokio::spawn(async move {
                driver::run_connection(stream, peer, config, registry, core).await;
                drop(permit);
            });
        }
    }
}
