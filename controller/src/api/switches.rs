//! `/switches` endpoints: snapshots from the runtime and live stats.

use super::dpid::parse_dpid;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiPath;
use super::model::{sorted_ports, FlowInfo, PortCounters, PortWithStats, SwitchInfo};
use super::view::SwitchSnapshot;
use super::ApiState;
use axum::extract::State;
use axum::Json;
use std::cmp::Reverse;
use std::collections::HashMap;

/// Parses the `{dpid}` path parameter (422 naming `dpid` on failure) and
/// looks the switch up (404 naming `dpid` if it is not connected).
fn connected(state: &ApiState, raw: &str) -> Result<SwitchSnapshot, ApiError> {
    let dpid = parse_dpid(raw).map_err(|e| ApiError::invalid("dpid", e.to_string()))?;
    state.view.switch(dpid).ok_or_else(|| {
        ApiError::not_found(
            "dpid",
            format!("switch {} is not connected", super::dpid::format_dpid(dpid)),
        )
    })
}

/// List connected switches, sorted by dpid.
#[utoipa::path(
    get,
    path = "/switches",
    tag = "switches",
    responses((status = 200, description = "Connected switches", body = [SwitchInfo]))
)]
pub(super) async fn list_switches(State(state): State<ApiState>) -> Json<Vec<SwitchInfo>> {
    let mut switches = state.view.switches();
    switches.sort_by_key(|s| s.dpid);
    Json(switches.iter().map(SwitchInfo::from).collect())
}

/// One connected switch.
#[utoipa::path(
    get,
    path = "/switches/{dpid}",
    tag = "switches",
    params(("dpid" = String, Path,
        description = "Datapath id: decimal `1`, hex `0x1` or `00:00:00:00:00:00:00:01`")),
    responses(
        (status = 200, description = "The switch", body = SwitchInfo),
        (status = 422, description = "Malformed dpid", body = ErrorBody),
        (status = 404, description = "Switch not connected", body = ErrorBody),
    )
)]
pub(super) async fn get_switch(
    State(state): State<ApiState>,
    ApiPath(dpid): ApiPath<String>,
) -> Result<Json<SwitchInfo>, ApiError> {
    let sw = connected(&state, &dpid)?;
    Ok(Json(SwitchInfo::from(&sw)))
}

/// A switch's ports with live counters (OFPMP_PORT_STATS).
#[utoipa::path(
    get,
    path = "/switches/{dpid}/ports",
    tag = "switches",
    params(("dpid" = String, Path,
        description = "Datapath id: decimal `1`, hex `0x1` or `00:00:00:00:00:00:00:01`")),
    responses(
        (status = 200, description = "Ports sorted by number; `stats` null when the switch \
            reported none for a port", body = [PortWithStats]),
        (status = 422, description = "Malformed dpid", body = ErrorBody),
        (status = 404, description = "Switch not connected", body = ErrorBody),
        (status = 502, description = "The switch answered with an error", body = ErrorBody),
        (status = 504, description = "The switch did not answer in time", body = ErrorBody),
    )
)]
pub(super) async fn switch_ports(
    State(state): State<ApiState>,
    ApiPath(dpid): ApiPath<String>,
) -> Result<Json<Vec<PortWithStats>>, ApiError> {
    let sw = connected(&state, &dpid)?;
    let stats = state.view.port_stats(sw.dpid).await?;
    let by_port: HashMap<u32, PortCounters> = stats
        .iter()
        .map(|s| (s.port_no, PortCounters::from(s)))
        .collect();
    let ports = sorted_ports(&sw.ports)
        .into_iter()
        .map(|port| PortWithStats {
            stats: by_port.get(&port.port_no).cloned(),
            port,
        })
        .collect();
    Ok(Json(ports))
}

/// A switch's installed flows, live (OFPMP_FLOW, all tables).
#[utoipa::path(
    get,
    path = "/switches/{dpid}/flows",
    tag = "switches",
    params(("dpid" = String, Path,
        description = "Datapath id: decimal `1`, hex `0x1` or `00:00:00:00:00:00:00:01`")),
    responses(
        (status = 200, description = "Flows sorted by table, then priority (highest first)",
            body = [FlowInfo]),
        (status = 422, description = "Malformed dpid", body = ErrorBody),
        (status = 404, description = "Switch not connected", body = ErrorBody),
        (status = 502, description = "The switch answered with an error", body = ErrorBody),
        (status = 504, description = "The switch did not answer in time", body = ErrorBody),
    )
)]
pub(super) async fn switch_flows(
    State(state): State<ApiState>,
    ApiPath(dpid): ApiPath<String>,
) -> Result<Json<Vec<FlowInfo>>, ApiError> {
    let sw = connected(&state, &dpid)?;
    let mut flows = state.view.flow_stats(sw.dpid).await?;
    flows.sort_by_key(|f| (f.table_id, Reverse(f.priority)));
    Ok(Json(flows.iter().map(FlowInfo::from).collect()))
}
