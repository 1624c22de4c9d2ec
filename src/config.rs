//! Settings: embedded defaults, overridden by an optional TOML file, then by
//! command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;

/// Flowgate: an OpenFlow 1.3 SDN controller.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// TOML configuration file (flags given here override it).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Address to accept OpenFlow switch connections on [default: 0.0.0.0:6653].
    #[arg(long)]
    pub openflow_listen: Option<SocketAddr>,
    /// Address of the REST API [default: 127.0.0.1:8080].
    #[arg(long)]
    pub rest_listen: Option<SocketAddr>,
    /// Directory for persistent state [default: ./flowgate-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Seconds of switch silence before an echo request [default: 5].
    #[arg(long)]
    pub echo_interval: Option<u64>,
    /// Log filter, e.g. `info` or `flowgate_controller=debug` [default: info;
    /// the RUST_LOG variable wins when set].
    #[arg(long)]
    pub log: Option<String>,
    /// Bearer token required for REST writes (none: writes are open).
    /// Visible to every local user in `ps`: prefer --api-token-file or the
    /// FLOWGATE_API_TOKEN variable.
    #[arg(long, env = "FLOWGATE_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// File holding the REST bearer token (its first line).
    #[arg(long, value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,
    /// PEM certificate chain: serve REST over TLS (with --rest-tls-key).
    #[arg(long, value_name = "FILE")]
    pub rest_tls_cert: Option<PathBuf>,
    /// PEM private key of --rest-tls-cert.
    #[arg(long, value_name = "FILE")]
    pub rest_tls_key: Option<PathBuf>,
    /// PEM certificate chain: switches connect over TLS (OVS `ssl:`
    /// targets), with --openflow-tls-key and --openflow-tls-ca.
    #[arg(long, value_name = "FILE")]
    pub openflow_tls_cert: Option<PathBuf>,
    /// PEM private key of --openflow-tls-cert.
    #[arg(long, value_name = "FILE")]
    pub openflow_tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): a switch must present a certificate they signed.
    #[arg(long, value_name = "FILE")]
    pub openflow_tls_ca: Option<PathBuf>,
    /// PEM certificate chain: hosts dial in over TLS (`ovs-vsctl
    /// set-manager ssl:CTRL:6640`), with --ovsdb-tls-key and --ovsdb-tls-ca.
    #[arg(long, value_name = "FILE")]
    pub ovsdb_tls_cert: Option<PathBuf>,
    /// PEM private key of --ovsdb-tls-cert.
    #[arg(long, value_name = "FILE")]
    pub ovsdb_tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): a host must present a certificate they signed.
    #[arg(long, value_name = "FILE")]
    pub ovsdb_tls_ca: Option<PathBuf>,
    /// Address cloud hosts' ovsdb-server dials (`ovs-vsctl set-manager
    /// tcp:CTRL:6640`) [default: 0.0.0.0:6640].
    #[arg(long)]
    pub ovsdb_listen: Option<SocketAddr>,
    /// Overlay tunnel encapsulation: vxlan or geneve [default: vxlan].
    #[arg(long)]
    pub tunnel_type: Option<flowgate_overlay::provision::TunnelType>,
    /// Seconds a host that lost its OVSDB connection keeps its tunnels
    /// [default: 30].
    #[arg(long)]
    pub overlay_host_grace: Option<u64>,
    /// JSON list of firewall rules (the REST schema) loaded at start: they
    /// replace stored rules with the same id and are stored.
    #[arg(long, value_name = "FILE")]
    pub firewall_rules: Option<PathBuf>,
    /// Default address load-balancer health probes of IPv4 members come
    /// from (an unused address of the members' subnet) [default: none;
    /// monitors then name their `source_ip`].
    #[arg(long, value_name = "IP")]
    pub lb_monitor_source: Option<std::net::Ipv4Addr>,
    /// Where state is kept: redb (a file in --data-dir) or etcd
    /// [default: redb].
    #[arg(long, value_name = "BACKEND")]
    pub store: Option<StoreBackend>,
    /// etcd endpoints, comma-separated `host:port` [default: 127.0.0.1:2379].
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub etcd_endpoints: Option<Vec<String>>,
    /// Prefix of every key Flowgate keeps in etcd [default: /flowgate/].
    #[arg(long, value_name = "PREFIX")]
    pub etcd_prefix: Option<String>,
    /// Milliseconds an etcd request may take before it fails (a REST
    /// write then answers 503) [default: 5000].
    #[arg(long, value_name = "MS")]
    pub etcd_timeout_ms: Option<u64>,
    /// PEM CA certificate(s) of the etcd servers: talk to etcd over TLS.
    #[arg(long, value_name = "FILE")]
    pub etcd_ca_file: Option<PathBuf>,
    /// PEM client certificate for etcd (with --etcd-key-file).
    #[arg(long, value_name = "FILE")]
    pub etcd_cert_file: Option<PathBuf>,
    /// PEM private key of --etcd-cert-file.
    #[arg(long, value_name = "FILE")]
    pub etcd_key_file: Option<PathBuf>,
    /// Join a cluster of controllers sharing the switches through etcd
    /// (needs --store etcd) [default: off].
    #[arg(long)]
    pub cluster: bool,
    /// This node's id in the cluster [default: hostname-OPENFLOW_PORT].
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// Milliseconds of this node's etcd lease: a dead node's switches move
    /// after about this long (rounded up to whole seconds) [default: 3000].
    #[arg(long, value_name = "MS")]
    pub lease_ttl_ms: Option<u64>,
    /// Whether the token came on the command line (not from the
    /// environment), where `ps` shows it.
    #[arg(skip)]
    pub token_in_argv: bool,
}

impl Cli {
    /// The process's command line.
    pub fn from_args() -> Cli {
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.token_in_argv = matches.value_source("api_token") == Some(ValueSource::CommandLine);
        cli
    }
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub openflow_listen: SocketAddr,
    pub rest_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub echo_interval: u64,
    pub log: String,
    pub api_token: Option<String>,
    /// File holding the token instead (its first line).
    pub api_token_file: Option<PathBuf>,
    pub rest: RestSection,
    pub openflow: OpenflowSection,
    pub forwarding: ForwardingConfig,
    pub ovsdb: OvsdbConfig,
    pub overlay: OverlayConfig,
    pub topology: TopologySection,
    /// See `--firewall-rules`.
    pub firewall_rules: Option<PathBuf>,
    pub loadbalancer: LoadBalancerConfig,
    pub store: StoreSection,
    pub cluster: ClusterSection,
}

/// Clustering (issue 22): several nodes share the switches through etcd,
/// one master per switch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// Off: nothing changes for a controller on its own.
    pub enabled: bool,
    /// Unique among the nodes; no `/` [default: hostname-OPENFLOW_PORT].
    pub node_id: Option<String>,
    /// The node's etcd lease; etcd counts whole seconds, so it is rounded up.
    pub lease_ttl_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            enabled: false,
            node_id: None,
            lease_ttl_ms: 3000,
        }
    }
}

impl Config {
    /// This node's cluster id: the configured one, or the host's name and
    /// the OpenFlow port (unique per process on a host, stable across
    /// restarts, so a restarted node takes its own place back).
    pub fn node_id(&self) -> anyhow::Result<flowgate_cluster::NodeId> {
        let id = match &self.cluster.node_id {
            Some(id) => id.clone(),
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "flowgate".into());
                format!("{host}-{}", self.openflow_listen.port())
            }
        };
        flowgate_cluster::NodeId::new(id.clone()).ok_or_else(|| {
            anyhow::anyhow!("cluster.node_id (--node-id) {id:?} must be non-empty without '/'")
        })
    }
}

/// Where state is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One embedded file in the data directory.
    Redb,
    /// An etcd cluster (v3 API), which several controllers can share.
    Etcd,
}

/// The store backend and, for etcd, how to reach it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    pub backend: StoreBackend,
    /// etcd members, `host:port` (or `http(s)://host:port`).
    pub endpoints: Vec<String>,
    /// Prefix of every key in etcd.
    pub prefix: String,
    /// Milliseconds an etcd call may take, retries included.
    pub timeout_ms: u64,
    /// TLS to etcd: the servers' CA, and a client certificate and key when
    /// etcd asks for one.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: StoreBackend::Redb,
            endpoints: vec!["127.0.0.1:2379".into()],
            prefix: "/flowgate/".into(),
            timeout_ms: 5000,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

impl StoreSection {
    /// The etcd store's settings (checked).
    pub fn etcd(&self) -> anyhow::Result<flowgate_controller::store::EtcdConfig> {
        use flowgate_controller::store::{EtcdConfig, EtcdTls};
        anyhow::ensure!(
            !self.endpoints.is_empty() && self.endpoints.iter().all(|e| !e.trim().is_empty()),
            "store.endpoints (--etcd-endpoints) needs at least one etcd endpoint, host:port"
        );
        anyhow::ensure!(
            !self.prefix.is_empty(),
            "store.prefix (--etcd-prefix) must not be empty: Flowgate's keys would mix with \
             everything else in etcd"
        );
        anyhow::ensure!(
            self.timeout_ms > 0,
            "store.timeout_ms (--etcd-timeout-ms) must be at least 1"
        );
        let identity = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            _ => anyhow::bail!(
                "an etcd client certificate needs both store.cert_file and store.key_file \
                 (--etcd-cert-file, --etcd-key-file)"
            ),
        };
        let tls = match (&self.ca_file, identity) {
            (None, None) => None,
            (Some(ca), identity) => Some(EtcdTls {
                ca_file: ca.clone(),
                identity,
            }),
            (None, Some(_)) => anyhow::bail!(
                "a client certificate for etcd needs TLS: give the servers' CA too \
                 (store.ca_file, --etcd-ca-file)"
            ),
        };
        Ok(EtcdConfig {
            endpoints: self.endpoints.iter().map(|e| e.trim().to_owned()).collect(),
            prefix: self.prefix.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
            tls,
        })
    }
}

/// The load balancer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadBalancerConfig {
    /// The MAC VIPs and probe sources answer ARP and neighbour discovery
    /// with.
    pub virtual_mac: String,
    /// Default probe source for IPv4 members (see `--lb-monitor-source`).
    pub monitor_source: Option<std::net::Ipv4Addr>,
    /// Default probe source for IPv6 members.
    pub monitor_source_v6: Option<std::net::Ipv6Addr>,
    /// Seconds between leastconn weight updates.
    pub leastconn_interval: f64,
}

impl Default for LoadBalancerConfig {
    fn default() -> Self {
        LoadBalancerConfig {
            virtual_mac: "02:f0:05:00:00:01".into(),
            monitor_source: None,
            monitor_source_v6: None,
            leastconn_interval: 2.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardingConfig {
    /// `topology` (shortest paths, spanning-tree flooding; any topology) or
    /// `learning` (per-switch L2 learning; loop-free topologies only).
    pub mode: ForwardingMode,
    /// Seconds a learned host's flows live without traffic (`learning`).
    pub idle_timeout: u16,
    /// Answer ARP requests for known hosts from the controller (`topology`).
    pub proxy_arp: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardingMode {
    Topology,
    Learning,
}

impl Default for ForwardingConfig {
    fn default() -> Self {
        ForwardingConfig {
            mode: ForwardingMode::Topology,
            idle_timeout: 300,
            proxy_arp: true,
        }
    }
}

/// Link discovery and host tracking.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologySection {
    /// Seconds between LLDP rounds on every port; a link is dropped after
    /// three rounds without a probe.
    pub lldp_interval: u64,
    /// Seconds a port that came up waits for a link before it counts as an
    /// edge port (and a new switch before forwarding programs it).
    pub edge_delay: u64,
    /// Seconds without traffic from a host before it is forgotten.
    pub host_idle_timeout: u16,
}

impl Default for TopologySection {
    fn default() -> Self {
        TopologySection {
            lldp_interval: 5,
            edge_delay: 3,
            host_idle_timeout: 300,
        }
    }
}

/// The REST listener: its limits, read authentication and TLS.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestSection {
    /// Seconds a client has to send a request's headers, from connecting
    /// or from its previous answer (so also how long an idle kept-alive
    /// connection stays open).
    pub header_timeout: u64,
    /// Seconds a request body has to arrive whole.
    pub body_timeout: u64,
    /// Seconds an answer may wait for the client to read it.
    pub write_timeout: u64,
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one address (IPv6: one /64).
    pub max_connections_per_client: usize,
    /// Reads need the bearer token too (all but `/api/v1/health` and
    /// `/api/v1/openapi.json`).
    pub auth_reads: bool,
    /// Serve the web dashboard at `/` (its static files are open; its
    /// data requests carry the token like any other).
    pub dashboard: bool,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for RestSection {
    fn default() -> Self {
        RestSection {
            header_timeout: 10,
            body_timeout: 30,
            write_timeout: 30,
            max_connections: 4096,
            max_connections_per_client: 64,
            auth_reads: false,
            dashboard: true,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// The OpenFlow listener's TLS.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenflowSection {
    /// PEM certificate chain, its key, and the CA certificates switches'
    /// certificates must be signed by: all three, or plain TCP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    /// A switch's certificate CN must name its dpid (16 hex digits, e.g.
    /// `s1 0000000000000001`); a switch claiming another dpid is closed.
    pub tls_bind_dpid: bool,
}

impl OpenflowSection {
    /// The runtime's TLS settings, if TLS is configured.
    pub fn tls(&self) -> anyhow::Result<Option<flowgate_controller::runtime::tls::OpenflowTls>> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (None, None, None) => {
                anyhow::ensure!(
                    !self.tls_bind_dpid,
                    "openflow.tls_bind_dpid needs OpenFlow over TLS"
                );
                Ok(None)
            }
            (Some(cert), Some(key), Some(ca)) => {
                Ok(Some(flowgate_controller::runtime::tls::OpenflowTls::new(
                    cert,
                    key,
                    ca,
                    self.tls_bind_dpid,
                )?))
            }
            _ => anyhow::bail!(
                "OpenFlow over TLS needs a certificate, its key and a CA (--openflow-tls-cert, \
                 --openflow-tls-key, --openflow-tls-ca)"
            ),
        }
    }
}

/// The OVSDB listener for cloud hosts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OvsdbConfig {
    /// Where hosts' ovsdb-server connects (`set-manager tcp:CTRL:6640`).
    pub listen: SocketAddr,
    /// Hosts connected to the listener at once, in all.
    pub max_connections: usize,
    /// Connections to the listener at once from one address.
    pub max_connections_per_address: usize,
    /// Seconds a host that connected has to send its database contents.
    pub handshake_timeout: u64,
    /// Bytes of one OVSDB message (a monitor reply of a host with a few
    /// thousand interfaces is about a megabyte); its JSON values are
    /// limited to one per 8 bytes of it.
    pub max_message: usize,
    /// Rows of the monitored tables kept per connection.
    pub max_rows: usize,
    /// PEM certificate chain, its key, and the CA certificates hosts'
    /// certificates must be signed by: all three (TLS only), or TCP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
}

impl Default for OvsdbConfig {
    fn default() -> Self {
        let session = flowgate_controller::ovsdb::Limits::default();
        let listener = flowgate_controller::ovsdb::ListenerLimits::default();
        OvsdbConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 6640)),
            max_connections: listener.max_connections,
            max_connections_per_address: listener.max_per_address,
            handshake_timeout: listener.handshake_timeout.as_secs(),
            max_message: session.max_message,
            max_rows: session.max_rows,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
        }
    }
}

impl OvsdbConfig {
    /// What one connection may hold.
    pub fn session(&self) -> flowgate_controller::ovsdb::session::SessionConfig {
        flowgate_controller::ovsdb::session::SessionConfig {
            limits: flowgate_controller::ovsdb::Limits {
                max_rows: self.max_rows,
                ..flowgate_controller::ovsdb::Limits::for_message(self.max_message)
            },
            ..Default::default()
        }
    }

    /// What the listener accepts.
    pub fn listener(&self) -> flowgate_controller::ovsdb::ListenerLimits {
        flowgate_controller::ovsdb::ListenerLimits {
            max_connections: self.max_connections,
            max_per_address: self.max_connections_per_address,
            handshake_timeout: Duration::from_secs(self.handshake_timeout),
        }
    }

    /// The listener's TLS acceptor, if TLS is configured.
    pub fn tls(&self) -> anyhow::Result<Option<flowgate_controller::runtime::tls::OvsdbTls>> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(
                flowgate_controller::runtime::tls::OvsdbTls::new(cert, key, ca)?,
            )),
            _ => anyhow::bail!(
                "OVSDB over TLS needs a certificate, its key and a CA (--ovsdb-tls-cert, \
                 --ovsdb-tls-key, --ovsdb-tls-ca)"
            ),
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_connections_per_address > 0
                && self.max_connections >= self.max_connections_per_address,
            "ovsdb.max_connections_per_address must be 1..=ovsdb.max_connections"
        );
        anyhow::ensure!(
            self.handshake_timeout > 0,
            "ovsdb.handshake_timeout must be at least 1 second"
        );
        anyhow::ensure!(
            self.max_message >= 4096 && self.max_rows > 0,
            "ovsdb.max_message must be at least 4096 bytes and ovsdb.max_rows at least 1"
        );
        Ok(())
    }
}

/// Private overlays (tenant networks across hosts).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverlayConfig {
    /// The integration bridge on every host (created when missing).
    pub integration_bridge: String,
    pub tunnel_type: flowgate_overlay::provision::TunnelType,
    /// Controller target set on integration bridges; by default
    /// `tcp:<address the host reached Flowgate at>:<OpenFlow port>`.
    pub controller: Option<String>,
    /// Seconds a host that lost its OVSDB connection keeps its tunnels.
    pub host_grace: u64,
}

impl Default for OverlayConfig {
    fn default() -> Self {
        OverlayConfig {
            integration_bridge: "br-int".into(),
            tunnel_type: flowgate_overlay::provision::TunnelType::Vxlan,
            controller: None,
            host_grace: 30,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            openflow_listen: SocketAddr::from(([0, 0, 0, 0], 6653)),
            rest_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./flowgate-data"),
            echo_interval: 5,
            log: "info".into(),
            api_token: None,
            api_token_file: None,
            rest: RestSection::default(),
            openflow: OpenflowSection::default(),
            forwarding: ForwardingConfig::default(),
            ovsdb: OvsdbConfig::default(),
            overlay: OverlayConfig::default(),
            topology: TopologySection::default(),
            firewall_rules: None,
            loadbalancer: LoadBalancerConfig::default(),
            store: StoreSection::default(),
            cluster: ClusterSection::default(),
        }
    }
}

impl Config {
    /// Defaults ← file ← flags.
    pub fn load(cli: &Cli) -> anyhow::Result<Config> {
        let mut config = match &cli.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = cli.openflow_listen {
            config.openflow_listen = v;
        }
        if let Some(v) = cli.rest_listen {
            config.rest_listen = v;
        }
        if let Some(v) = &cli.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = cli.echo_interval {
            config.echo_interval = v;
        }
        if let Some(v) = &cli.log {
            config.log = v.clone();
        }
        if let Some(v) = &cli.api_token {
            config.api_token = Some(v.clone());
        }
        if let Some(v) = &cli.api_token_file {
            config.api_token_file = Some(v.clone());
        }
        if let Some(v) = &cli.rest_tls_cert {
            config.rest.tls_cert = Some(v.clone());
        }
        if let Some(v) = &cli.rest_tls_key {
            config.rest.tls_key = Some(v.clone());
        }
        if let Some(v) = &cli.openflow_tls_cert {
            config.openflow.tls_cert = Some(v.clone());
        }
        if let Some(v) = &cli.openflow_tls_key {
            config.openflow.tls_key = Some(v.clone());
        }
        if let Some(v) = &cli.openflow_tls_ca {
            config.openflow.tls_ca = Some(v.clone());
        }
        if let Some(v) = &cli.ovsdb_tls_cert {
            config.ovsdb.tls_cert = Some(v.clone());
        }
        if let Some(v) = &cli.ovsdb_tls_key {
            config.ovsdb.tls_key = Some(v.clone());
        }
        if let Some(v) = &cli.ovsdb_tls_ca {
            config.ovsdb.tls_ca = Some(v.clone());
        }
        if let Some(v) = cli.ovsdb_listen {
            config.ovsdb.listen = v;
        }
        if let Some(v) = cli.tunnel_type {
            config.overlay.tunnel_type = v;
        }
        if let Some(v) = cli.overlay_host_grace {
            config.overlay.host_grace = v;
        }
        if let Some(v) = &cli.firewall_rules {
            config.firewall_rules = Some(v.clone());
        }
        if cli.cluster {
            config.cluster.enabled = true;
        }
        if let Some(v) = &cli.node_id {
            config.cluster.node_id = Some(v.clone());
        }
        if let Some(v) = cli.lease_ttl_ms {
            config.cluster.lease_ttl_ms = v;
        }
        if let Some(v) = cli.lb_monitor_source {
            config.loadbalancer.monitor_source = Some(v);
        }
        if let Some(v) = cli.store {
            config.store.backend = v;
        }
        if let Some(v) = &cli.etcd_endpoints {
            config.store.endpoints = v.clone();
        }
        if let Some(v) = &cli.etcd_prefix {
            config.store.prefix = v.clone();
        }
        if let Some(v) = cli.etcd_timeout_ms {
            config.store.timeout_ms = v;
        }
        if let Some(v) = &cli.etcd_ca_file {
            config.store.ca_file = Some(v.clone());
        }
        if let Some(v) = &cli.etcd_cert_file {
            config.store.cert_file = Some(v.clone());
        }
        if let Some(v) = &cli.etcd_key_file {
            config.store.key_file = Some(v.clone());
        }
        anyhow::ensure!(
            config.echo_interval > 0,
            "echo_interval must be at least 1 second"
        );
        anyhow::ensure!(
            config.topology.lldp_interval > 0,
            "topology.lldp_interval must be at least 1 second"
        );
        anyhow::ensure!(
            config.loadbalancer.leastconn_interval.is_finite()
                && config.loadbalancer.leastconn_interval >= 0.1,
            "loadbalancer.leastconn_interval must be at least 0.1 seconds"
        );
        config
            .loadbalancer
            .virtual_mac
            .parse::<flowgate_openflow::MacAddr>()
            .map_err(|e| anyhow::anyhow!("loadbalancer.virtual_mac: {e}"))?;
        config.check_rest()?;
        config.ovsdb.check()?;
        if config.store.backend == StoreBackend::Etcd {
            config.store.etcd()?;
        }
        if config.cluster.enabled {
            anyhow::ensure!(
                config.store.backend == StoreBackend::Etcd,
                "clustering (cluster.enabled, --cluster) needs the etcd store (--store etcd): \
                 the nodes share their state and elect masters there"
            );
            anyhow::ensure!(
                config.cluster.lease_ttl_ms > 0,
                "cluster.lease_ttl_ms (--lease-ttl-ms) must be at least 1"
            );
            config.node_id()?;
        }
        if let Some(path) = &config.api_token_file {
            anyhow::ensure!(
                config.api_token.is_none(),
                "give the REST token or a token file, not both"
            );
            config.api_token = Some(read_token(path)?);
        }
        Ok(config)
    }

    fn check_rest(&self) -> anyhow::Result<()> {
        let r = &self.rest;
        for (name, secs) in [
            ("header_timeout", r.header_timeout),
            ("body_timeout", r.body_timeout),
            ("write_timeout", r.write_timeout),
        ] {
            anyhow::ensure!(secs > 0, "rest.{name} must be at least 1 second");
        }
        anyhow::ensure!(
            r.max_connections_per_client > 0 && r.max_connections >= r.max_connections_per_client,
            "rest.max_connections_per_client must be 1..=rest.max_connections"
        );
        anyhow::ensure!(
            r.tls_cert.is_some() == r.tls_key.is_some(),
            "REST over TLS needs both a certificate and its key"
        );
        anyhow::ensure!(
            !r.auth_reads || self.api_token.is_some() || self.api_token_file.is_some(),
            "rest.auth_reads needs a token (api_token or api_token_file)"
        );
        Ok(())
    }

    /// The REST server's connection limits.
    pub fn rest_server(&self) -> flowgate_controller::api::ServerConfig {
        flowgate_controller::api::ServerConfig {
            header_timeout: Duration::from_secs(self.rest.header_timeout),
            write_timeout: Duration::from_secs(self.rest.write_timeout),
            max_connections: self.rest.max_connections,
            max_connections_per_client: self.rest.max_connections_per_client,
        }
    }

    fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("in config file {}", path.display()))
    }
}

/// The token in the first line of `path`.
fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the REST token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    anyhow::ensure!(
        !token.is_empty(),
        "the REST token file {} is empty",
        path.display()
    );
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("flowgate").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(&cli(&[])).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.openflow_listen.port(), 6653);
        assert_eq!(c.rest_listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn the_dashboard_is_on_unless_switched_off() {
        assert!(Config::default().rest.dashboard);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "[rest]\ndashboard = false\n").unwrap();
        let c = Config::load(&cli(&["--config", path.to_str().unwrap()])).unwrap();
        assert!(!c.rest.dashboard);
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(
            &path,
            "rest_listen = \"127.0.0.1:9000\"\necho_interval = 2\n[forwarding]\nidle_timeout = 60\n",
        )
        .unwrap();
        let c = Config::load(&cli(&[
            "--config",
            path.to_str().unwrap(),
            "--echo-interval",
            "3",
        ]))
        .unwrap();
        assert_eq!(c.rest_listen.port(), 9000);
        assert_eq!(c.echo_interval, 3);
        assert_eq!(c.forwarding.idle_timeout, 60);
    }

    #[test]
    fn forwarding_mode_and_topology_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(
            &path,
            "[forwarding]\nmode = \"learning\"\nproxy_arp = false\n[topology]\nlldp_interval = 1\nedge_delay = 2\n",
        )
        .unwrap();
        let c = Config::load(&cli(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.forwarding.mode, ForwardingMode::Learning);
        assert!(!c.forwarding.proxy_arp);
        assert_eq!((c.topology.lldp_interval, c.topology.edge_delay), (1, 2));
        assert_eq!(Config::default().forwarding.mode, ForwardingMode::Topology);
        std::fs::write(&path, "[forwarding]\nmode = \"flood\"\n").unwrap();
        let err = Config::load(&cli(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("flood"), "{err:#}");
        std::fs::write(&path, "[topology]\nlldp_interval = 0\n").unwrap();
        assert!(Config::load(&cli(&["--config", path.to_str().unwrap()])).is_err());
    }

    #[test]
    fn clustering_is_off_by_default_and_needs_etcd() {
        let c = Config::default();
        assert!(!c.cluster.enabled);
        assert_eq!(c.cluster.lease_ttl_ms, 3000);
        let err = Config::load(&cli(&["--cluster"])).unwrap_err();
        assert!(format!("{err:#}").contains("--store etcd"), "{err:#}");
        let c = Config::load(&cli(&[
            "--store",
            "etcd",
            "--cluster",
            "--node-id",
            "a",
            "--lease-ttl-ms",
            "2000",
        ]))
        .unwrap();
        assert!(c.cluster.enabled);
        assert_eq!(c.node_id().unwrap().as_str(), "a");
        assert_eq!(c.cluster.lease_ttl_ms, 2000);
        let err =
            Config::load(&cli(&["--store", "etcd", "--cluster", "--node-id", "a/b"])).unwrap_err();
        assert!(format!("{err:#}").contains("node_id"), "{err:#}");
        // The default id tells processes of one host apart by their port.
        let c = Config::load(&cli(&["--openflow-listen", "127.0.0.1:6654"])).unwrap();
        assert!(c.node_id().unwrap().as_str().ends_with("-6654"));
    }

    #[test]
    fn overlay_settings_from_file_and_flags() {
        use flowgate_overlay::provision::TunnelType;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(
            &path,
            "[ovsdb]\nlisten = \"127.0.0.1:16640\"\n[overlay]\ntunnel_type = \"geneve\"\nhost_grace = 5\n",
        )
        .unwrap();
        let c = Config::load(&cli(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.ovsdb.listen.port(), 16640);
        assert_eq!(c.overlay.tunnel_type, TunnelType::Geneve);
        assert_eq!(c.overlay.host_grace, 5);
        let c = Config::load(&cli(&[
            "--tunnel-type",
            "vxlan",
            "--overlay-host-grace",
            "2",
        ]))
        .unwrap();
        assert_eq!(c.overlay.tunnel_type, TunnelType::Vxlan);
        assert_eq!(c.overlay.host_grace, 2);
        assert_eq!(c.ovsdb.listen.port(), 6640);
        assert!(Cli::try_parse_from(["flowgate", "--tunnel-type", "gre"]).is_err());
    }

    #[test]
    fn firewall_rules_file_from_the_flag() {
        assert_eq!(Config::load(&cli(&[])).unwrap().firewall_rules, None);
        let c = Config::load(&cli(&["--firewall-rules", "/etc/fw.json"])).unwrap();
        assert_eq!(c.firewall_rules, Some(PathBuf::from("/etc/fw.json")));
    }

    #[test]
    fn load_balancer_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(
            &path,
            "[loadbalancer]\nvirtual_mac = \"02:00:00:00:00:64\"\nleastconn_interval = 0.5\n",
        )
        .unwrap();
        let c = Config::load(&cli(&[
            "--config",
            path.to_str().unwrap(),
            "--lb-monitor-source",
            "10.0.0.250",
        ]))
        .unwrap();
        assert_eq!(c.loadbalancer.virtual_mac, "02:00:00:00:00:64");
        assert_eq!(c.loadbalancer.leastconn_interval, 0.5);
        assert_eq!(c.loadbalancer.monitor_source, Some([10, 0, 0, 250].into()));
        std::fs::write(&path, "[loadbalancer]\nvirtual_mac = \"nope\"\n").unwrap();
        let err = Config::load(&cli(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("virtual_mac"), "{err:#}");
    }

    #[test]
    fn store_backend_from_file_and_flags() {
        assert_eq!(Config::default().store.backend, StoreBackend::Redb);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(
            &path,
            "[store]\nbackend = \"etcd\"\nendpoints = [\"10.0.0.1:2379\", \"10.0.0.2:2379\"]\n\
             prefix = \"/lab/\"\ntimeout_ms = 800\nca_file = \"/ca.pem\"\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let c = Config::load(&cli(&["--config", file])).unwrap();
        assert_eq!(c.store.backend, StoreBackend::Etcd);
        let etcd = c.store.etcd().unwrap();
        assert_eq!(etcd.endpoints, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(etcd.prefix, "/lab/");
        assert_eq!(etcd.timeout, Duration::from_millis(800));
        assert_eq!(etcd.tls.unwrap().ca_file, PathBuf::from("/ca.pem"));

        let c = Config::load(&cli(&[
            "--store",
            "etcd",
            "--etcd-endpoints",
            "127.0.0.1:23790,127.0.0.1:23791",
            "--etcd-prefix",
            "/x/",
            "--etcd-timeout-ms",
            "100",
        ]))
        .unwrap();
        let etcd = c.store.etcd().unwrap();
        assert_eq!(etcd.endpoints, ["127.0.0.1:23790", "127.0.0.1:23791"]);
        assert_eq!(
            (etcd.prefix.as_str(), etcd.timeout.as_millis()),
            ("/x/", 100)
        );
        assert_eq!(etcd.tls, None);
        assert_eq!(
            Config::load(&cli(&["--store", "etcd"]))
                .unwrap()
                .store
                .etcd()
                .unwrap()
                .endpoints,
            ["127.0.0.1:2379"]
        );

        // Refused at start, naming the setting.
        for (args, named) in [
            (vec!["--store", "etcd", "--etcd-prefix", ""], "store.prefix"),
            (
                vec!["--store", "etcd", "--etcd-timeout-ms", "0"],
                "timeout_ms",
            ),
            (
                vec!["--store", "etcd", "--etcd-cert-file", "/c.pem"],
                "key_file",
            ),
            (
                vec![
                    "--store",
                    "etcd",
                    "--etcd-cert-file",
                    "/c",
                    "--etcd-key-file",
                    "/k",
                ],
                "ca_file",
            ),
        ] {
            let err = Config::load(&cli(&args)).unwrap_err();
            assert!(format!("{err:#}").contains(named), "{args:?}: {err:#}");
        }
        assert!(Cli::try_parse_from(["flowgate", "--store", "zookeeper"]).is_err());
        std::fs::write(&path, "[store]\nbackend = \"etcd\"\nendpoints = []\n").unwrap();
        let err = Config::load(&cli(&["--config", file])).unwrap_err();
        assert!(format!("{err:#}").contains("store.endpoints"), "{err:#}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "rest_listn = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::load(&cli(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("rest_listn"), "{err:#}");
    }

    #[test]
    fn rest_limits_tls_and_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        std::fs::write(
            &path,
            format!(
                "api_token_file = {token:?}\n[rest]\nheader_timeout = 2\nmax_connections_per_client = 8\nauth_reads = true\n"
            ),
        )
        .unwrap();
        let c = Config::load(&cli(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.api_token.as_deref(), Some("s3cret"));
        assert!(c.rest.auth_reads);
        let server = c.rest_server();
        assert_eq!(server.header_timeout, Duration::from_secs(2));
        assert_eq!(server.max_connections_per_client, 8);
        assert_eq!(server.max_connections, 4096);

        // A token twice, half a TLS pair, an empty token file, reads
        // protected without a token: refused at start.
        let tokenfile = token.to_str().unwrap();
        for args in [
            vec!["--api-token", "x", "--api-token-file", tokenfile],
            vec!["--rest-tls-cert", "/c.pem"],
        ] {
            assert!(Config::load(&cli(&args)).is_err(), "{args:?}");
        }
        std::fs::write(&token, "\n").unwrap();
        assert!(Config::load(&cli(&["--api-token-file", tokenfile])).is_err());
        std::fs::write(&path, "[rest]\nauth_reads = true\n").unwrap();
        assert!(Config::load(&cli(&["--config", path.to_str().unwrap()])).is_err());
        std::fs::write(&path, "[rest]\nbody_timeout = 0\n").unwrap();
        assert!(Config::load(&cli(&["--config", path.to_str().unwrap()])).is_err());
    }
}
