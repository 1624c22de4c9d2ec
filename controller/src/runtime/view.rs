//! The runtime as the REST API sees it.

use std::time::Duration;

use flowgate_openflow::{
    self as of, FlowStatsRequest, Message, MultipartReplyBody, MultipartRequest,
    MultipartRequestBody,
};
use tokio::sync::oneshot;

use crate::api::view::{ControllerView, QueryFuture, SwitchQueryError, SwitchSnapshot};
use crate::runtime::registry::{SwitchCmd, SwitchEntry};
use crate::runtime::session::RequestError;
use crate::runtime::{ModuleCatalog, Runtime};

fn snapshot(entry: SwitchEntry, catalog: &ModuleCatalog) -> SwitchSnapshot {
    let info = entry.info;
    SwitchSnapshot {
        unavailable_modules: catalog.unavailable_on(info.version),
        dpid: info.dpid,
        peer: info.peer,
        connected_since: info.connected_since,
        version: info.version,
        features: info.features,
        desc: info.desc,
        ports: info.ports.into_values().collect(),
    }
}

impl Runtime {
    /// Sends a multipart request to a switch and waits for the whole reply.
    fn multipart(&self, dpid: u64, body: MultipartRequestBody) -> QueryFuture<MultipartReplyBody> {
        let entry = self.registry.get(dpid);
        let timeout = self.config.driver.session.request_timeout;
        Box::pin(async move {
            let entry = entry.ok_or(SwitchQueryError::NotConnected(dpid))?;
            let (reply, rx) = oneshot::channel();
            let message = Message::MultipartRequest(MultipartRequest { flags: 0, body });
            entry
                .handle
                .cmd
                .send(SwitchCmd::Request { message, reply })
                .await
                .map_err(|_| SwitchQueryError::NotConnected(dpid))?;
            // The session enforces the timeout; this is a backstop.
            let answer = tokio::time::timeout(timeout + Duration::from_secs(1), rx)
                .await
                .map_err(|_| SwitchQueryError::Timeout(timeout))?
                .map_err(|_| SwitchQueryError::NotConnected(dpid))?;
            match answer {
                Ok(Message::MultipartReply(reply)) => Ok(reply.body),
                Ok(other) => Err(SwitchQueryError::SwitchError(format!(
                    "unexpected reply type {}",
                    other.msg_type()
                ))),
                Err(RequestError::Switch { err_type, code }) => {
                    Err(SwitchQueryError::SwitchError(of::describe(err_type, code)))
                }
                Err(RequestError::Timeout) => Err(SwitchQueryError::Timeout(timeout)),
                Err(RequestError::Closed) => Err(SwitchQueryError::NotConnected(dpid)),
            }
        })
    }
}

impl Runtime {
    /// OFPMP_FLOW for one table, restricted to the flows whose cookie equals
    /// `cookie` under `cookie_mask`, live from the switch: how a module
    /// reads the counters of the flows one of its objects compiled to.
    pub fn flow_stats_by_cookie(
        &self,
        dpid: u64,
        table_id: u8,
        cookie: u64,
        cookie_mask: u64,
    ) -> QueryFuture<Vec<of::FlowStats>> {
        let reply = self.multipart(
            dpid,
            MultipartRequestBody::Flow(FlowStatsRequest {
                table_id,
                out_port: of::port_no::ANY,
                out_group: of::OFPG_ANY,
                cookie,
                cookie_mask,
                match_: of::Match::default(),
            }),
        );
        Box::pin(async move {
            match reply.await? {
                MultipartReplyBody::Flow(stats) => Ok(stats),
                _ => Err(SwitchQueryError::SwitchError(
                    "unexpected multipart reply".into(),
                )),
            }
        })
    }
}

impl Runtime {
    /// OFPMP_GROUP for one group (`of::OFPG_ALL` for all), live from the
    /// switch: its packet and byte counters and one counter per bucket (for
    /// a select group, how many packets, hence new connections, each bucket
    /// took). Open vSwitch folds datapath counters in about once a second.
    pub fn group_stats(&self, dpid: u64, group_id: u32) -> QueryFuture<Vec<of::GroupStats>> {
        let reply = self.multipart(dpid, MultipartRequestBody::Group { group_id });
        Box::pin(async move {
            match reply.await? {
                MultipartReplyBody::Group(stats) => Ok(stats),
                _ => Err(unexpected()),
            }
        })
    }

    /// OFPMP_METER for one meter (or `OFPM_ALL`), live from the switch.
    pub fn meter_stats(&self, dpid: u64, meter_id: u32) -> QueryFuture<Vec<of::MeterStats>> {
        let reply = self.multipart(dpid, MultipartRequestBody::Meter { meter_id });
        Box::pin(async move {
            match reply.await? {
                MultipartReplyBody::Meter(stats) => Ok(stats),
                _ => Err(unexpected()),
            }
        })
    }

    /// OFPMP_QUEUE for one port's queue (`port_no::ANY` / `OFPQ_ALL` for
    /// all), live from the switch.
    pub fn queue_stats(
        &self,
        dpid: u64,
        port_no: u32,
        queue_id: u32,
    ) -> QueryFuture<Vec<of::QueueStats>> {
        let reply = self.multipart(dpid, MultipartRequestBody::Queue { port_no, queue_id });
        Box::pin(async move {
            match reply.await? {
                MultipartReplyBody::Queue(stats) => Ok(stats),
                _ => Err(unexpected()),
            }
        })
    }
}

fn unexpected() -> SwitchQueryError {
    SwitchQueryError::SwitchError("unexpected multipart reply".into())
}

impl ControllerView for Runtime {
    fn switches(&self) -> Vec<SwitchSnapshot> {
        let catalog = &self.catalog;
        self.registry
            .list()
            .into_iter()
            .map(|e| snapshot(e, catalog))
            .collect()
    }

    fn switch(&self, dpid: u64) -> Option<SwitchSnapshot> {
        self.registry.get(dpid).map(|e| snapshot(e, &self.catalog))
    }

    fn port_stats(&self, dpid: u64) -> QueryFuture<Vec<of::PortStats>> {
        let reply = self.multipart(
            dpid,
            MultipartRequestBody::PortStats {
                port_no: of::port_no::ANY,
            },
        );
        Box::pin(async move {
            match reply.await? {
                MultipartReplyBody::PortStats(stats) => Ok(stats),
                _ => Err(SwitchQueryError::SwitchError(
                    "unexpected multipart reply".into(),
                )),
            }
        })
    }

    fn flow_stats(&self, dpid: u64) -> QueryFuture<Vec<of::FlowStats>> {
        self.flow_stats_by_cookie(dpid, of::OFPTT_ALL, 0, 0)
    }
}
