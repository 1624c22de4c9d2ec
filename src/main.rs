//! The `flowgate` binary: configuration, logging, and wiring of the runtime,
//! the modules, the store and the REST API.

mod config;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use flowgate_controller::api::{self, ApiState};
use flowgate_controller::cluster::{self, EtcdClusterConfig, EtcdCoordinator};
use flowgate_controller::cookie::Owner;
use flowgate_controller::module::Module;
use flowgate_controller::ovsdb::{Hosts, Reconciler};
use flowgate_controller::runtime::{Runtime, RuntimeConfig};
use flowgate_controller::store::{EtcdStore, RedbStore, Store};
use flowgate_controller::topology::auth::ProbeKey;
use flowgate_controller::topology::{self, Topology, TopologyConfig};
use flowgate_firewall::{Firewall, FirewallService};
use flowgate_forwarding::{
    L2Learning, L2LearningConfig, L2Single, L2SingleConfig, TopologyForwarding,
    TopologyForwardingConfig,
};
use flowgate_hostaware::module::HostAware;
use flowgate_hostaware::service::HostAwareService;
use flowgate_loadbalancer::{LoadBalancer, LoadBalancerService};
use flowgate_overlay::api::OverlayApi;
use flowgate_overlay::provision::{ProvisionConfig, Provisioning, StatusBoard};
use flowgate_overlay::Overlay;
use flowgate_qos::{Qos, QosService};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::{Cli, Config, ForwardingMode, StoreBackend};

fn main() -> anyhow::Result<()> {
    let cli = Cli::from_args();
    let config = Config::load(&cli)?;
    init_tracing(&config.log);
    if cli.token_in_argv {
        warn!("--api-token shows the token to every local user (ps); use --api-token-file or FLOWGATE_API_TOKEN");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(config))
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config)?;
    let topology_config = TopologyConfig {
        lldp_interval: Duration::from_secs(config.topology.lldp_interval),
        edge_delay: Duration::from_secs(config.topology.edge_delay),
        host_idle_timeout: config.topology.host_idle_timeout,
        controller_id: instance_id(),
        // The overlay's integration bridges hold VM ports and tunnels only.
        unprobed_bridges: vec![config.overlay.integration_bridge.clone()],
    };
    let topology = if config.cluster.enabled {
        // Every node hears every probe: one key and time line for all.
        let secret = cluster::shared_probe_secret(&config.store.etcd()?)
            .await
            .context("reading the cluster's probe secret")?;
        Topology::new(topology_config).shared_discovery(ProbeKey::shared(
            &secret,
            Instant::now(),
            SystemTime::now(),
        ))
    } else {
        Topology::new(topology_config)
    }
    .with_addresses(store.as_ref())
    .context("loading host addresses from the store")?;
    let forwarding: Box<dyn Module> = match config.forwarding.mode {
        ForwardingMode::Topology => Box::new(TopologyForwarding::new(TopologyForwardingConfig {
            proxy_arp: config.forwarding.proxy_arp,
        })),
        ForwardingMode::Learning => Box::new(L2Learning::new(L2LearningConfig {
            idle_timeout: config.forwarding.idle_timeout,
        })),
    };
    let modules: Vec<Box<dyn Module>> = vec![Box::new(topology), forwarding];
    let mut modules = modules;
    // OpenFlow 1.0 switches (one table) get single-table learning.
    modules.push(Box::new(L2Single::new(L2SingleConfig {
        idle_timeout: config.forwarding.idle_timeout,
    })));
    // OVSDB: the hosts, and the reconciler of every module's rows there.
    let hosts = Hosts::with_tls(
        config.ovsdb.session(),
        config.ovsdb.listener(),
        config.ovsdb.tls()?,
    );
    let reconciler = Reconciler::new(hosts.clone());
    let board = StatusBoard::default();
    let provisioning = Provisioning::new(
        hosts.clone(),
        &reconciler,
        ProvisionConfig {
            bridge: config.overlay.integration_bridge.clone(),
            tunnel_type: config.overlay.tunnel_type,
            openflow_port: config.openflow_listen.port(),
            controller: config.overlay.controller.clone(),
            grace: Duration::from_secs(config.overlay.host_grace),
        },
        board.clone(),
    );
    modules.push(Box::new(
        Overlay::load(
            flowgate_overlay::api::load_config(store.as_ref())?,
            store.as_ref(),
        )
        .context("loading overlay networks from the store")?
        .with_provisioning(provisioning),
    ));
    let firewall = flowgate_firewall::load(store.as_ref(), config.firewall_rules.as_deref())
        .context("loading the firewall configuration")?;
    modules.push(Box::new(Firewall::new(firewall)));
    let lb = flowgate_loadbalancer::persist::load(store.as_ref())
        .context("loading the load balancer configuration")?;
    modules.push(Box::new(LoadBalancer::new(lb_settings(&config)?, lb)));
    modules.push(Box::new(
        Qos::new(
            flowgate_qos::persist::load(store.as_ref()).context("loading the QoS configuration")?,
        )
        .with_ovsdb(&reconciler, hosts.clone()),
    ));
    modules.push(Box::new(HostAware::new(
        flowgate_hostaware::persist::load(store.as_ref())
            .context("loading the host-aware configuration")?,
    )));
    let mut runtime_config = RuntimeConfig::default();
    let echo = Duration::from_secs(config.echo_interval);
    runtime_config.driver.session.echo_interval = echo;
    runtime_config.driver.session.dead_after = echo * 3;
    runtime_config.tls = config.openflow.tls()?;
    // A joining node offers itself as master once it heard a probe round.
    runtime_config.probe_round =
        Duration::from_secs(config.topology.lldp_interval) + Duration::from_secs(1);
    let coordinator = if config.cluster.enabled {
        let etcd = config.store.etcd()?;
        let node = config.node_id()?;
        let coordinator = EtcdCoordinator::start(EtcdClusterConfig {
            etcd,
            node,
            rest: config.rest_listen.to_string(),
            lease_ttl: Duration::from_millis(config.cluster.lease_ttl_ms),
        })
        .await
        .context("joining the cluster")?;
        runtime_config.cluster = Some(coordinator.clone());
        Some(coordinator)
    } else {
        None
    };

    let openflow = TcpListener::bind(config.openflow_listen)
        .await
        .with_context(|| format!("listening for OpenFlow on {}", config.openflow_listen))?;
    let rest = TcpListener::bind(config.rest_listen)
        .await
        .with_context(|| format!("listening for REST on {}", config.rest_listen))?;
    let rest_tls = match (&config.rest.tls_cert, &config.rest.tls_key) {
        (Some(cert), Some(key)) => Some(api::server::tls::acceptor(cert, key)?),
        _ => None,
    };
    info!(openflow = %config.openflow_listen, openflow_tls = runtime_config.tls.is_some(),
          rest = %config.rest_listen, rest_tls = rest_tls.is_some(),
          store = ?config.store.backend, data_dir = %config.data_dir.display(), "flowgate started");

    let ovsdb = TcpListener::bind(config.ovsdb.listen)
        .await
        .with_context(|| format!("listening for OVSDB on {}", config.ovsdb.listen))?;
    info!(ovsdb = %config.ovsdb.listen, "accepting OVSDB hosts");

    let runtime = Runtime::start(openflow, runtime_config, modules, store.clone());
    runtime.spawn_task(Owner::Core, reconciler.task());
    tokio::spawn(hosts.clone().listen(ovsdb));
    for target in flowgate_overlay::api::load_targets(store.as_ref())? {
        hosts.connect(&target)?;
    }
    let overlay_routes = flowgate_overlay::api::routes(OverlayApi::new(
        runtime.clone(),
        store.clone(),
        hosts,
        board,
    ));
    let firewall_routes = flowgate_firewall::routes(FirewallService::new(runtime.clone()));
    let lb_routes = flowgate_loadbalancer::routes(LoadBalancerService::new(runtime.clone()));
    let qos = QosService::new(runtime.clone());
    let mut state = ApiState::new(Arc::new(runtime.clone()), store, config.api_token.clone())
        .with_metrics(runtime.metrics().clone())
        .with_bus(runtime.bus().clone())
        .with_body_timeout(Duration::from_secs(config.rest.body_timeout))
        .with_read_auth(config.rest.auth_reads)
        .with_dashboard(config.rest.dashboard);
    if let Some(coordinator) = &coordinator {
        state = state.with_cluster(coordinator.clone());
    }
    let module_routes = vec![
        topology::api::routes(runtime.clone()),
        overlay_routes,
        firewall_routes,
        lb_routes,
        flowgate_qos::api::routes(qos.clone()),
        flowgate_hostaware::api::routes(HostAwareService::new(runtime.clone())),
        cluster::api::routes(coordinator.clone(), runtime.clone()),
    ];
    let compat_routes = vec![flowgate_qos::floodlight::routes(qos)];
    let app = api::router_with(state, module_routes, compat_routes);
    // A clustered node leaves at the signal, before anything else stops:
    // the other nodes take its switches over at once, while its own
    // connections are still up.
    let shutdown = async move {
        shutdown_signal().await;
        if let Some(coordinator) = coordinator {
            coordinator.leave().await;
        }
    };
    api::serve(rest, app, config.rest_server(), rest_tls, shutdown).await?;
    runtime.shutdown(Duration::from_secs(2)).await;
    info!("flowgate stopped");
    Ok(())
}

/// The configured store. etcd must answer now: a controller that cannot
/// read its state does not start.
fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match config.store.backend {
        StoreBackend::Redb => Arc::new(
            RedbStore::open(&config.data_dir)
                .with_context(|| format!("opening the store in {}", config.data_dir.display()))?,
        ),
        StoreBackend::Etcd => {
            let etcd = config.store.etcd()?;
            Arc::new(EtcdStore::connect(&etcd).with_context(|| {
                format!(
                    "opening the etcd store (endpoints {}, prefix {})",
                    etcd.endpoints.join(","),
                    etcd.prefix
                )
            })?)
        }
    })
}

/// The load balancer's settings from `[loadbalancer]` and the flags.
fn lb_settings(config: &Config) -> anyhow::Result<flowgate_loadbalancer::Settings> {
    let lb = &config.loadbalancer;
    Ok(flowgate_loadbalancer::Settings {
        virtual_mac: lb
            .virtual_mac
            .parse()
            .map_err(|e| anyhow::anyhow!("loadbalancer.virtual_mac: {e}"))?,
        monitor_source_v4: lb.monitor_source.map(std::net::IpAddr::V4),
        monitor_source_v6: lb.monitor_source_v6.map(std::net::IpAddr::V6),
        leastconn_interval: Duration::from_secs_f64(lb.leastconn_interval),
        ..flowgate_loadbalancer::Settings::default()
    })
}

/// A random id for this controller process, carried in its LLDP probes so
/// that probes from another controller (or an earlier run) are ignored.
fn instance_id() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new()
        .hash_one((std::process::id(), std::time::SystemTime::now()))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
