//! The host-aware service: the one way to read and change settings,
//! monitored hosts and rules (REST, the pusher, other modules), and to read
//! what the runner knows (values, reactions) and the audit trail.

use flowgate_controller::cookie::Owner;
use flowgate_controller::events::ResourceAction;
use flowgate_controller::policy::FieldError;
use flowgate_controller::runtime::Runtime;
use flowgate_controller::service::{Origin, Service, WriteError, Written};

use crate::audit::{self, AuditEvent};
use crate::model::{Config, MonitoredHost, Rule, Settings};
use crate::module::{HostAware, HostAwareError, HostAwareOp};
use crate::status::Board;

pub type HaWrite<T> = Result<T, WriteError<HostAwareError>>;

/// A write's answer: the resource as stored (or as it would be, for a dry
/// run) and whether it is new.
#[derive(Debug, Clone)]
pub struct Wrote<T> {
    pub value: T,
    pub created: bool,
    pub written: Option<Written<()>>,
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub since: u64,
    pub limit: usize,
    pub host: Option<String>,
    pub rule: Option<u32>,
    pub kind: Option<audit::Kind>,
}

#[derive(Clone)]
pub struct HostAwareService {
    service: Service<HostAware>,
}

impl HostAwareService {
    pub fn new(runtime: Runtime) -> HostAwareService {
        HostAwareService {
            service: Service::new(runtime, Owner::HostAware),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        self.service.runtime()
    }

    pub async fn config(&self) -> HaWrite<Config> {
        Ok(self.service.read(|m| m.config().clone()).await?)
    }

    /// The runner's board (values, reactions); reading it never waits on
    /// sources or switches.
    pub async fn board(&self) -> HaWrite<Board> {
        Ok(self.service.read(|m| m.board()).await?)
    }

    /// Where a host is in the topology (dpid, port), if known.
    pub async fn location(&self, host: MonitoredHost) -> HaWrite<Option<(u64, u32)>> {
        Ok(self
            .service
            .read(move |m| crate::metrics::locate(&host, m.view()).map(|e| (e.dpid, e.port)))
            .await?)
    }

    pub async fn events(&self, filter: EventFilter) -> anyhow::Result<Vec<AuditEvent>> {
        let store = self.runtime().store().clone();
        tokio::task::spawn_blocking(move || {
            audit::list(store.as_ref(), filter.since, filter.limit, |e| {
                filter
                    .host
                    .as_ref()
                    .is_none_or(|h| e.host.as_ref() == Some(h))
                    && filter.rule.is_none_or(|r| e.rule == Some(r))
                    && filter.kind.is_none_or(|k| e.kind == k)
            })
        })
        .await?
    }

    pub async fn put_settings(&self, settings: Settings, by: Origin) -> HaWrite<Wrote<Settings>> {
        self.write(
            "settings",
            by,
            false,
            move |_| Ok((settings, false)),
            |_| "settings".into(),
            HostAwareOp::PutSettings,
        )
        .await
    }

    /// Creates (`create`: refusing an existing id) or replaces a host.
    pub async fn put_host(
        &self,
        host: MonitoredHost,
        create: bool,
        by: Origin,
        dry_run: bool,
    ) -> HaWrite<Wrote<MonitoredHost>> {
        let prepare = move |m: &HostAware| {
            let exists = m.config().hosts.contains_key(&host.id);
            if exists && create {
                return Err(HostAwareError::Conflict(FieldError::new(
                    "id",
                    format!(
                        "host {} exists; PUT /hostaware/hosts/{} replaces it",
                        host.id, host.id
                    ),
                )));
            }
            Ok((host, !exists))
        };
        self.write(
            "host",
            by,
            dry_run,
            prepare,
            |h| h.id.clone(),
            HostAwareOp::PutHost,
        )
        .await
    }

    /// Creates (`create`; a rule without an id gets the next free one) or
    /// replaces a rule.
    pub async fn put_rule(
        &self,
        mut rule: Rule,
        create: bool,
        by: Origin,
        dry_run: bool,
    ) -> HaWrite<Wrote<Rule>> {
        rule.origin = by.owner().map(|_| by.clone());
        let prepare = move |m: &HostAware| {
            let exists = m.config().rules.contains_key(&rule.id);
            if rule.id == 0 {
                rule.id = m.next_rule_id().ok_or_else(|| {
                    HostAwareError::Invalid(FieldError::new(
                        "id",
                        "no free id above the highest; give one",
                    ))
                })?;
            } else if exists && create {
                return Err(HostAwareError::Conflict(FieldError::new(
                    "id",
                    format!(
                        "rule {} exists; PUT /hostaware/rules/{} replaces it",
                        rule.id, rule.id
                    ),
                )));
            }
            Ok((rule, !exists))
        };
        self.write(
            "rule",
            by,
            dry_run,
            prepare,
            |r| r.id.to_string(),
            HostAwareOp::PutRule,
        )
        .await
    }

    pub async fn delete_host(&self, id: String, by: Origin) -> HaWrite<Written<()>> {
        self.delete("host", id.clone(), HostAwareOp::DeleteHost(id), by)
            .await
    }

    pub async fn delete_rule(&self, id: u32, by: Origin) -> HaWrite<Written<()>> {
        self.delete("rule", id.to_string(), HostAwareOp::DeleteRule(id), by)
            .await
    }

    /// Stages `op(value)` for the value `prepare` validates against the
    /// module's state; a dry run stops after the checks.
    async fn write<T: Clone + Send + 'static>(
        &self,
        kind: &'static str,
        by: Origin,
        dry_run: bool,
        prepare: impl FnOnce(&HostAware) -> Result<(T, bool), HostAwareError> + Send + 'static,
        id_of: impl Fn(&T) -> String,
        op: fn(T) -> HostAwareOp,
    ) -> HaWrite<Wrote<T>> {
        let stage_by = by.clone();
        if dry_run {
            let (value, created) = self
                .service
                .read(move |m| {
                    let (value, created) = prepare(m)?;
                    m.check(&op(value.clone()), &stage_by)?;
                    Ok((value, created))
                })
                .await?
                .map_err(WriteError::Invalid)?;
            return Ok(Wrote {
                value,
                created,
                written: None,
            });
        }
        let written = self
            .service
            .write(move |m, ctx| {
                let (value, created) = prepare(m)?;
                let staged = m.stage(op(value.clone()), &stage_by, ctx)?;
                Ok(staged.map(|()| (value, created)))
            })
            .await?;
        let (value, created) = written.value.clone();
        let action = if created {
            ResourceAction::Created
        } else {
            ResourceAction::Updated
        };
        self.service
            .announce(kind, id_of(&value), action, &by)
            .await;
        Ok(Wrote {
            value,
            created,
            written: Some(written.with_value(())),
        })
    }

    async fn delete(
        &self,
        kind: &'static str,
        id: String,
        op: HostAwareOp,
        by: Origin,
    ) -> HaWrite<Written<()>> {
        let stage_by = by.clone();
        let written = self
            .service
            .write(move |m, ctx| m.stage(op, &stage_by, ctx))
            .await?;
        self.service
            .announce(kind, id, ResourceAction::Deleted, &by)
            .await;
        Ok(written)
    }
}
