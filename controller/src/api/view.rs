//! How the runtime exposes itself to the REST API.
//!
//! The API never touches sessions or sockets: it reads snapshots and asks
//! for live stats through [`ControllerView`], which the runtime implements.
//! Tests implement it with canned data.

/// What the API may show about one connected switch, copied out of the
/// runtime so handlers hold no locks.
#[derive(Debug, Clone)]
pub struct SwitchSnapshot {
    pub dpid: u64,
    pub peer: std::net::SocketAddr,
    pub connected_since: std::time::SystemTime,
    /// Negotiated OpenFlow wire version (4 = 1.3).
    pub version: u8,
    pub features: flowgate_openflow::SwitchFeatures,
    /// OFPMP_DESC reply, once the switch has answered it.
    pub desc: Option<flowgate_openflow::DescStats>,
    pub ports: Vec<flowgate_openflow::Port>,
    /// Modules that could not program this switch (e.g. missing table
    /// features); they are skipped for it and listed here for the operator.
    pub unavailable_modules: Vec<String>,
}

/// Why a live query to a switch failed.
#[derive(Debug, thiserror::Error)]
pub enum SwitchQueryError {
    #[error("switch {0:#018x} is not connected")]
    NotConnected(u64),
    #[error("switch did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("switch returned an error: {0}")]
    SwitchError(String),
}

/// A live query in flight; boxed so the trait stays object safe.
pub type QueryFuture<T> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<T, SwitchQueryError>> + Send + 'static>,
>;

/// The runtime as the API sees it.
pub trait ControllerView: Send + Sync + 'static {
    /// Every connected switch (any order; the API sorts).
    fn switches(&self) -> Vec<SwitchSnapshot>;
    /// One connected switch.
    fn switch(&self, dpid: u64) -> Option<SwitchSnapshot>;
    /// OFPMP_PORT_STATS for all ports, live from the switch.
    fn port_stats(&self, dpid: u64) -> QueryFuture<Vec<flowgate_openflow::PortStats>>;
    /// OFPMP_FLOW for all tables, live from the switch.
    fn flow_stats(&self, dpid: u64) -> QueryFuture<Vec<flowgate_openflow::FlowStats>>;
}
