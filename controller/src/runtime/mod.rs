//! The switch runtime: accepts OpenFlow connections, runs one [`session`] per
//! switch behind a thin tokio [`driver`], keeps the [`registry`] of connected
//! switches, and feeds the [`core`] that runs modules and the [`reconcile`]r.

pub mod core;
pub mod driver;
pub mod metrics;
pub mod reconcile;
pub mod registry;
pub mod session;
mod view;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tracing::{info, warn};

use self::core::Core;
use self::driver::DriverConfig;
use self::metrics::Metrics;
use self::registry::Registry;
use crate::module::Module;

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

/// A running runtime; cheap to clone, and the REST API's view of switches.
#[derive(Clone)]
pub struct Runtime {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    config: Arc<RuntimeConfig>,
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
        tokio::spawn(Core::new(modules, metrics.clone()).run(core_rx));
        let runtime = Runtime {
            registry,
            metrics,
            config: Arc::new(config),
        };
        tokio::spawn(runtime.clone().accept_loop(listener, core_tx));
        runtime
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    async fn accept_loop(self, listener: TcpListener, core: mpsc::Sender<self::core::CoreEvent>) {
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
