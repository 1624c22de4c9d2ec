//! The QoS service: the one way to read and change profiles, port
//! bindings and policies, for the REST handlers and for other modules
//! (host-aware rate-limits a host through [`QosService::rate_limit`]).
//! Writes are staged on the core by [`Qos::stage`] and confirmed or rolled
//! back by [`flowgate_controller::service::Service`].

use std::net::IpAddr;

use flowgate_controller::cookie::Owner;
use flowgate_controller::events::ResourceAction;
use flowgate_controller::policy::{Cidr, FieldError, PacketMatch};
use flowgate_controller::runtime::Runtime;
use flowgate_controller::service::{Origin, Service, WriteError, Written};

use crate::config::{QosConfig, QosError};
use crate::model::{Actions, Band, Binding, MeterAction, Placement, Policy, Profile, RateUnit};
use crate::module::{Qos, QosOp};

pub type QosWrite<T> = Result<T, WriteError<QosError>>;

/// A write's answer: the resource as stored (or, for a dry run, as it
/// would be), whether it is new, and the confirmation (`None` for a dry
/// run).
#[derive(Debug, Clone)]
pub struct Wrote<T> {
    pub value: T,
    pub created: bool,
    pub written: Option<Written<()>>,
}

/// The QoS service; cheap to clone.
#[derive(Clone)]
pub struct QosService {
    service: Service<Qos>,
}

impl QosService {
    pub fn new(runtime: Runtime) -> QosService {
        QosService {
            service: Service::new(runtime, Owner::Qos),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        self.service.runtime()
    }

    pub async fn config(&self) -> QosWrite<QosConfig> {
        Ok(self.service.read(|q| q.config().clone()).await?)
    }

    /// Where policy `id` is placed now (dpids), or why it is nowhere.
    pub async fn placement(&self, id: u32) -> QosWrite<Option<Result<Vec<u64>, String>>> {
        Ok(self.service.read(move |q| q.placed(id).cloned()).await?)
    }

    /// Creates (`create`: refusing an existing id; a policy without an id
    /// gets the next free one) or replaces a policy.
    pub async fn put_policy(
        &self,
        mut policy: Policy,
        create: bool,
        by: Origin,
        dry_run: bool,
    ) -> QosWrite<Wrote<Policy>> {
        policy.origin = by.owner().map(|_| by.clone());
        let prepare = move |q: &Qos, mut policy: Policy| -> Result<(Policy, bool), QosError> {
            let exists = q.config().policies.contains_key(&policy.id);
            if policy.id == 0 {
                policy.id = q.config().next_policy_id().ok_or_else(|| {
                    QosError::Invalid(FieldError::new(
                        "id",
                        "no free id above the highest; give one",
                    ))
                })?;
            } else if exists && create {
                return Err(QosError::Conflict(FieldError::new(
                    "id",
                    format!(
                        "policy {} exists; PUT /qos/policies/{} replaces it",
                        policy.id, policy.id
                    ),
                )));
            }
            Ok((policy, !exists))
        };
        self.write(
            "policy",
            by,
            dry_run,
            move |q| prepare(q, policy),
            |p| p.id.to_string(),
            QosOp::PutPolicy,
        )
        .await
    }

    pub async fn put_profile(
        &self,
        mut profile: Profile,
        create: bool,
        by: Origin,
        dry_run: bool,
    ) -> QosWrite<Wrote<Profile>> {
        profile.origin = by.owner().map(|_| by.clone());
        self.write(
            "profile",
            by,
            dry_run,
            move |q| {
                new_or_replaced(
                    create,
                    q.config().profiles.contains_key(&profile.id),
                    "profile",
                    &profile.id,
                )
                .map(|created| (profile, created))
            },
            |p| p.id.clone(),
            QosOp::PutProfile,
        )
        .await
    }

    pub async fn put_binding(
        &self,
        mut binding: Binding,
        create: bool,
        by: Origin,
        dry_run: bool,
    ) -> QosWrite<Wrote<Binding>> {
        binding.origin = by.owner().map(|_| by.clone());
        self.write(
            "port",
            by,
            dry_run,
            move |q| {
                new_or_replaced(
                    create,
                    q.config().bindings.contains_key(&binding.id),
                    "binding",
                    &binding.id,
                )
                .map(|created| (binding, created))
            },
            |b| b.id.clone(),
            QosOp::PutBinding,
        )
        .await
    }

    /// Stages `op(value)` for the value `prepare` validates against the
    /// module's current state; a dry run stops after the checks.
    async fn write<T: Clone + Send + 'static>(
        &self,
        kind: &'static str,
        by: Origin,
        dry_run: bool,
        prepare: impl FnOnce(&Qos) -> Result<(T, bool), QosError> + Send + 'static,
        id_of: impl Fn(&T) -> String,
        op: fn(T) -> QosOp,
    ) -> QosWrite<Wrote<T>> {
        let stage_by = by.clone();
        if dry_run {
            let (value, created) = self
                .service
                .read(move |q| {
                    let (value, created) = prepare(q)?;
                    q.check(&op(value.clone()), &stage_by)?;
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
            .write(move |q, ctx| {
                let (value, created) = prepare(q)?;
                let staged = q.stage(op(value.clone()), &stage_by, ctx)?;
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

    pub async fn delete_policy(&self, id: u32, by: Origin) -> QosWrite<Written<()>> {
        self.delete("policy", id.to_string(), QosOp::DeletePolicy(id), by)
            .await
    }

    pub async fn delete_profile(&self, id: String, by: Origin) -> QosWrite<Written<()>> {
        self.delete("profile", id.clone(), QosOp::DeleteProfile(id), by)
            .await
    }

    pub async fn delete_binding(&self, id: String, by: Origin) -> QosWrite<Written<()>> {
        self.delete("port", id.clone(), QosOp::DeleteBinding(id), by)
            .await
    }

    async fn delete(
        &self,
        kind: &'static str,
        id: String,
        op: QosOp,
        by: Origin,
    ) -> QosWrite<Written<()>> {
        let stage_by = by.clone();
        let written = self
            .service
            .write(move |q, ctx| q.stage(op, &stage_by, ctx))
            .await?;
        self.service
            .announce(kind, id, ResourceAction::Deleted, &by)
            .await;
        Ok(written)
    }

    /// Caps what `host` sends to `kbps` with a meter on every switch (at
    /// `priority`), on behalf of another module (`by` names it and the
    /// object that asked); returns the policy's id. The policy shows in
    /// `GET /qos/policies` with its origin.
    pub async fn rate_limit(
        &self,
        host: IpAddr,
        kbps: u32,
        priority: u16,
        by: Origin,
    ) -> QosWrite<u32> {
        let policy = Policy {
            id: 0,
            name: None,
            priority,
            match_: PacketMatch {
                ip_src: Some(Cidr::host(host)),
                ..PacketMatch::default()
            },
            tenant: None,
            in_port: None,
            actions: Actions {
                meter: Some(MeterAction {
                    rate: kbps,
                    unit: RateUnit::Kbps,
                    burst: None,
                    band: Band::Drop,
                }),
                ..Actions::default()
            },
            placement: Placement::All,
            description: Some(format!("rate limit of {host} for {by}")),
            origin: None,
        };
        Ok(self.put_policy(policy, true, by, false).await?.value.id)
    }
}

/// `create` refuses an existing id; otherwise a write creates or replaces.
fn new_or_replaced(create: bool, exists: bool, kind: &str, id: &str) -> Result<bool, QosError> {
    if create && exists {
        return Err(QosError::Conflict(FieldError::new(
            "id",
            format!("{kind} {id} exists; PUT replaces it"),
        )));
    }
    Ok(!exists)
}
