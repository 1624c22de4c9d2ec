//! REST: `GET /topology`, `GET /hosts`, `GET /paths`, read from the
//! topology module's current view (fetched on the core with
//! [`Runtime::call`], so it is never torn). The JSON shaping is pure
//! (functions of a [`TopologyView`]) and tested without a runtime.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use flowgate_openflow::MacAddr;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::graph::{tree_ports, Endpoint, Hop};
use super::hosts::Host;
use super::module::{SuspectLink, Topology};
use super::view::{PortRole, TopologyView};
use crate::api::dpid::{format_dpid, parse_dpid};
use crate::api::{ApiError, ApiState, ErrorBody};
use crate::runtime::Runtime;

/// The topology routes, to hand to `api::router_with_modules`.
pub fn routes(runtime: Runtime) -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(get_topology))
        .routes(routes!(get_hosts))
        .routes(routes!(get_paths))
        .with_state(runtime)
}

/// The view and the suspect links, read together on the core.
async fn current_view_and_suspects(
    runtime: &Runtime,
) -> Result<(Arc<TopologyView>, Vec<SuspectLink>), ApiError> {
    runtime
        .call::<Topology, _>(|m, _| (m.view(), m.suspect_links()))
        .await
        .map(|applied| applied.value)
        .map_err(ApiError::internal)
}

async fn current_view(runtime: &Runtime) -> Result<Arc<TopologyView>, ApiError> {
    runtime
        .call::<Topology, _>(|m, _| m.view())
        .await
        .map(|applied| applied.value)
        .map_err(ApiError::internal)
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct TopologyDoc {
    pub switches: Vec<SwitchDoc>,
    /// Links as discovered, one entry per direction seen.
    pub links: Vec<LinkDoc>,
    /// Links that valid probes claimed between ports where hosts live:
    /// not taken (hosts relaying probes would otherwise become a link).
    /// They are taken once no host lives at either end any more.
    pub suspect_links: Vec<SuspectLinkDoc>,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct SuspectLinkDoc {
    /// The port the probe left from.
    pub src: EndpointDoc,
    /// The port it arrived on.
    pub dst: EndpointDoc,
    /// Hosts behind either end when it was last claimed.
    pub hosts: usize,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct SwitchDoc {
    #[schema(example = "00:00:00:00:00:00:00:01")]
    pub dpid: String,
    pub dpid_int: u64,
    /// The first discovery period is over.
    pub ready: bool,
    /// Up ports, LOCAL excluded.
    pub ports: Vec<PortDoc>,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct PortDoc {
    pub port_no: u32,
    pub name: String,
    pub hw_addr: String,
    /// `link`, `edge` or `pending`.
    pub role: PortRole,
    /// Broadcast is flooded out of this port (spanning-tree link or edge).
    pub floods: bool,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct EndpointDoc {
    pub dpid: String,
    pub port: u32,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct LinkDoc {
    /// The port the LLDP probe left from.
    pub src: EndpointDoc,
    /// The port it arrived on.
    pub dst: EndpointDoc,
    /// The link is on the broadcast spanning tree.
    pub tree: bool,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct HostDoc {
    pub mac: String,
    pub vlan: Option<u16>,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
    /// Attachment point.
    pub dpid: String,
    pub port: u32,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct HopDoc {
    pub dpid: String,
    pub in_port: u32,
    pub out_port: u32,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct PathDoc {
    pub src: HostDoc,
    pub dst: HostDoc,
    /// Every switch from the source's edge port to the destination's.
    pub hops: Vec<HopDoc>,
}

fn endpoint(e: Endpoint) -> EndpointDoc {
    EndpointDoc {
        dpid: format_dpid(e.dpid),
        port: e.port,
    }
}

fn host_doc(h: &Host) -> HostDoc {
    HostDoc {
        mac: h.mac.to_string(),
        vlan: h.vlan,
        ipv4: h.ipv4.iter().map(ToString::to_string).collect(),
        ipv6: h.ipv6.iter().map(ToString::to_string).collect(),
        dpid: format_dpid(h.at.dpid),
        port: h.at.port,
    }
}

fn hop_doc(h: &Hop) -> HopDoc {
    HopDoc {
        dpid: format_dpid(h.dpid),
        in_port: h.in_port,
        out_port: h.out_port,
    }
}

/// Switches with port roles, links marked with the spanning tree, and the
/// suspect links.
pub fn topology_doc(view: &TopologyView, suspects: &[SuspectLink]) -> TopologyDoc {
    let tree = view.graph().spanning_tree();
    let floods: BTreeSet<Endpoint> = tree_ports(&tree);
    let switches = view
        .switches
        .iter()
        .map(|(&dpid, s)| SwitchDoc {
            dpid: format_dpid(dpid),
            dpid_int: dpid,
            ready: s.ready,
            ports: s
                .ports
                .iter()
                .map(|(&no, p)| PortDoc {
                    port_no: no,
                    name: p.name.clone(),
                    hw_addr: p.hw_addr.to_string(),
                    role: p.role,
                    floods: p.role == PortRole::Edge
                        || (p.role == PortRole::Link && floods.contains(&Endpoint::new(dpid, no))),
                })
                .collect(),
        })
        .collect();
    let links = view
        .links
        .iter()
        .map(|(s, d)| LinkDoc {
            src: endpoint(*s),
            dst: endpoint(*d),
            tree: tree.contains(&super::graph::Link::new(*s, *d)),
        })
        .collect();
    let suspect_links = suspects
        .iter()
        .map(|s| SuspectLinkDoc {
            src: endpoint(s.from),
            dst: endpoint(s.to),
            hosts: s.hosts,
        })
        .collect();
    TopologyDoc {
        switches,
        links,
        suspect_links,
    }
}

/// Hosts matching every given filter (`mac`, `ip`, `dpid`); unknown
/// parameters are 400s and malformed values 422s naming the parameter.
pub fn find_hosts(
    view: &TopologyView,
    query: &[(String, String)],
) -> Result<Vec<HostDoc>, ApiError> {
    let mut mac = None;
    let mut ip = None;
    let mut dpid = None;
    for (key, value) in query {
        match key.as_str() {
            "mac" => mac = Some(parse_mac("mac", value)?),
            "ip" => ip = Some(parse_ip("ip", value)?),
            "dpid" => {
                dpid =
                    Some(parse_dpid(value).map_err(|e| ApiError::invalid("dpid", e.to_string()))?)
            }
            other => {
                return Err(ApiError::bad_field(
                    other,
                    "unknown parameter (known: mac, ip, dpid)",
                ))
            }
        }
    }
    Ok(view
        .hosts
        .iter()
        .filter(|h| mac.is_none_or(|m| h.mac == m))
        .filter(|h| ip.is_none_or(|a| h.has_ip(a)))
        .filter(|h| dpid.is_none_or(|d| h.at.dpid == d))
        .map(host_doc)
        .collect())
}

/// The path between two known hosts, each named by MAC or IP address.
pub fn find_path(view: &TopologyView, query: &[(String, String)]) -> Result<PathDoc, ApiError> {
    let mut src = None;
    let mut dst = None;
    for (key, value) in query {
        match key.as_str() {
            "src" => src = Some(value.as_str()),
            "dst" => dst = Some(value.as_str()),
            other => {
                return Err(ApiError::bad_field(
                    other,
                    "unknown parameter (known: src, dst)",
                ))
            }
        }
    }
    let src = resolve(view, "src", src)?;
    let dst = resolve(view, "dst", dst)?;
    // The same function and hash forwarding uses: this is the path taken.
    let hops = view
        .graph()
        .path(src.at, dst.at, dst.mac.to_u64())
        .ok_or_else(|| {
            ApiError::not_found("dst", format!("no path from {} to {}", src.mac, dst.mac))
        })?;
    Ok(PathDoc {
        src: host_doc(src),
        dst: host_doc(dst),
        hops: hops.iter().map(hop_doc).collect(),
    })
}

fn resolve<'a>(
    view: &'a TopologyView,
    field: &str,
    value: Option<&str>,
) -> Result<&'a Host, ApiError> {
    let value =
        value.ok_or_else(|| ApiError::bad_field(field, "required: a host MAC or IP address"))?;
    let host = if let Ok(mac) = value.parse::<MacAddr>() {
        view.host(mac)
    } else if let Ok(ip) = value.parse::<IpAddr>() {
        view.host_by_ip(ip)
    } else {
        return Err(ApiError::invalid(
            field,
            format!("{value:?} is neither a MAC nor an IP address"),
        ));
    };
    host.ok_or_else(|| ApiError::not_found(field, format!("no known host {value}")))
}

fn parse_mac(field: &str, value: &str) -> Result<MacAddr, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::invalid(field, format!("{value:?} is not a MAC address")))
}

fn parse_ip(field: &str, value: &str) -> Result<IpAddr, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::invalid(field, format!("{value:?} is not an IP address")))
}

/// Switches, their ports' roles, and discovered links.
#[utoipa::path(
    get,
    path = "/topology",
    tag = "topology",
    responses((status = 200, description = "The discovered network", body = TopologyDoc))
)]
async fn get_topology(State(runtime): State<Runtime>) -> Result<Json<TopologyDoc>, ApiError> {
    let (view, suspects) = current_view_and_suspects(&runtime).await?;
    Ok(Json(topology_doc(&view, &suspects)))
}

/// Known hosts, sorted by MAC, optionally filtered.
#[utoipa::path(
    get,
    path = "/hosts",
    tag = "topology",
    params(
        ("mac" = Option<String>, Query, description = "Only this MAC"),
        ("ip" = Option<String>, Query, description = "Only the host using this IPv4/IPv6 address"),
        ("dpid" = Option<String>, Query, description = "Only hosts attached to this switch"),
    ),
    responses(
        (status = 200, description = "Hosts", body = [HostDoc]),
        (status = 400, description = "Unknown parameter", body = ErrorBody),
        (status = 422, description = "Malformed value (parameter named)", body = ErrorBody),
    )
)]
async fn get_hosts(
    State(runtime): State<Runtime>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<HostDoc>>, ApiError> {
    let view = current_view(&runtime).await?;
    Ok(Json(find_hosts(&view, &query)?))
}

/// The path forwarding uses between two hosts.
#[utoipa::path(
    get,
    path = "/paths",
    tag = "topology",
    params(
        ("src" = String, Query, description = "Source host: MAC or IP address"),
        ("dst" = String, Query, description = "Destination host: MAC or IP address"),
    ),
    responses(
        (status = 200, description = "Hops from the source's edge port to the destination's", body = PathDoc),
        (status = 400, description = "Missing or unknown parameter", body = ErrorBody),
        (status = 422, description = "Malformed value (parameter named)", body = ErrorBody),
        (status = 404, description = "Unknown host, or no path", body = ErrorBody),
    )
)]
async fn get_paths(
    State(runtime): State<Runtime>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<PathDoc>, ApiError> {
    let view = current_view(&runtime).await?;
    Ok(Json(find_path(&view, &query)?))
}

#[cfg(test)]
mod tests;
