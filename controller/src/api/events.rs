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

/// One message of the stream as an SSE client reads it (its `event:`,
/// `id:` and `data:` fields): the document's schema of the stream, and what
/// each message is built from.
#[derive(Debug, utoipa::ToSchema)]
pub(super) struct EventStreamMessage {
    /// The topic (`resource`, `module`, `switch`, ...), or `lagged` when
    /// this client fell behind and missed events.
    event: String,
    /// The event's sequence number (none on `lagged`).
    id: Option<String>,
    /// The event as JSON (on `lagged`, how many were missed).
    data: String,
}

impl EventStreamMessage {
    fn of(stamped: &Stamped) -> Self {
        let name = crate::events::Topics::NAMES
            .iter()
            .find(|(_, t)| *t == stamped.event.topic())
            .map_or("event", |(n, _)| n);
        match serde_json::to_string(stamped) {
            Ok(data) => EventStreamMessage {
                event: name.to_owned(),
                id: Some(stamped.seq.to_string()),
                data,
            },
            Err(_) => EventStreamMessage {
                event: "error".to_owned(),
                id: None,
                data: "unencodable event".to_owned(),
            },
        }
    }

    fn lagged(missed: u64) -> Self {
        EventStreamMessage {
            event: "lagged".to_owned(),
            id: None,
            data: missed.to_string(),
        }
    }

    fn into_event(self) -> Event {
        let event = Event::default().event(self.event);
        match self.id {
            Some(id) => event.id(id),
            None => event,
        }
        .data(self.data)
    }
}

/// Live events as Server-Sent Events (`text/event-stream`).
#[utoipa::path(get, path = "/events", tag = "core", params(EventFilter),
    responses(
        (status = 200, description = "An endless stream of events", content_type = "text/event-stream", body = EventStreamMessage),
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
            Ok(stamped) => wanted
                .accepts(&stamped)
                .then(|| EventStreamMessage::of(&stamped).into_event()),
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                Some(EventStreamMessage::lagged(n).into_event())
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
