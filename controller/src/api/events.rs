//! `GET /api/v1/events`: the event bus as Server-Sent Events — switches,
//! ports, links, hosts, resource changes, switch rejections and module
//! events (health transitions, host-aware reactions) — filtered by topic
//! and module. Each SSE event is named by its topic, carries the stamped
//! event as JSON and its sequence number as the id. A client that falls
//! behind gets a `lagged` event saying how many it missed.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use utoipa::IntoParams;

use super::extract::ApiQuery;
use super::{ApiError, ApiState};
use crate::events::{BusEvent, Stamped, Topics};

/// Which events to stream.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// Comma-separated topics: switch, port, link, host, resource,
    /// rejected, module (default: all).
    pub topics: Option<String>,
    /// Only events of this module (resource, rejected and module events;
    /// e.g. `hostaware`, `firewall`).
    pub module: Option<String>,
}

/// The filter, parsed.
struct Wanted {
    topics: Topics,
    module: Option<String>,
}

impl Wanted {
    fn accepts(&self, stamped: &Stamped) -> bool {
        let event = &stamped.event;
        if !self.topics.contains(event.topic()) {
            return false;
        }
        let Some(want) = &self.module else {
            return true;
        };
        match event {
            BusEvent::Resource { module, .. } | BusEvent::Module { module, .. } => module == want,
            BusEvent::Rejected { owner, .. } => owner == want,
            _ => false,
        }
    }
}

fn sse(stamped: &Stamped) -> Event {
    let name = crate::events::Topics::NAMES
        .iter()
        .find(|(_, t)| *t == stamped.event.topic())
        .map_or("event", |(n, _)| n);
    Event::default()
        .event(name)
        .id(stamped.seq.to_string())
        .json_data(stamped)
        .unwrap_or_else(|_| Event::default().event("error").data("unencodable event"))
}

/// Live events as Server-Sent Events (`text/event-stream`).
#[utoipa::path(get, path = "/events", tag = "core", params(EventFilter),
    responses(
        (status = 200, description = "An endless stream of events", content_type = "text/event-stream", body = String),
        (status = 400, description = "Unknown topic or parameter", body = super::ErrorBody),
        (status = 503, description = "This controller has no event bus", body = super::ErrorBody),
    ))]
pub(super) async fn stream(
    State(state): State<ApiState>,
    ApiQuery(filter): ApiQuery<EventFilter>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let topics = match &filter.topics {
        Some(list) => Topics::parse(list).map_err(|e| ApiError::bad_field("topics", e))?,
        None => Topics::ALL,
    };
    let bus = state
        .bus
        .as_ref()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no event bus wired")))?;
    let wanted = Wanted {
        topics,
        module: filter.module,
    };
    let events = BroadcastStream::new(bus.subscribe()).filter_map(move |item| {
        let out = match item {
            Ok(stamped) => wanted.accepts(&stamped).then(|| sse(&stamped)),
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                Some(Event::default().event("lagged").data(n.to_string()))
            }
        };
        out.map(Ok)
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ResourceAction;
    use std::time::SystemTime;

    fn stamped(event: BusEvent) -> Stamped {
        Stamped {
            seq: 1,
            time: SystemTime::now(),
            event,
        }
    }

    #[test]
    fn the_filter_takes_topics_and_a_module() {
        let link = stamped(BusEvent::SwitchDown { dpid: 1 });
        let resource = stamped(BusEvent::Resource {
            module: "firewall".into(),
            kind: "rule".into(),
            id: "3".into(),
            action: ResourceAction::Created,
            origin: "rest".into(),
        });
        let all = Wanted {
            topics: Topics::ALL,
            module: None,
        };
        assert!(all.accepts(&link) && all.accepts(&resource));
        let firewall = Wanted {
            topics: Topics::ALL,
            module: Some("firewall".into()),
        };
        assert!(!firewall.accepts(&link) && firewall.accepts(&resource));
        let switches = Wanted {
            topics: Topics::SWITCH,
            module: None,
        };
        assert!(switches.accepts(&link) && !switches.accepts(&resource));
    }
}
