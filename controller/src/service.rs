//! Module services: the one write path to a module's resources, shared by
//! its REST handlers and by other modules (host-aware quarantines a host
//! by calling the firewall's service, not by writing flows itself).
//!
//! A write is staged on the core, where the module owns its one state:
//! validate → change the state, declare the entries, ask for the store
//! writes ([`Ctx::persist`]) → the runtime persists and waits for every
//! touched switch (one deadline) → confirmed, or rolled back with the undo
//! the stage returned when a switch refused part of it or the store failed.
//!
//! In a cluster the store is shared: a write also waits (same deadline)
//! until the masters of the switches this node may not write have
//! followed it ([`Runtime::call`]), and it is serialized against the other
//! nodes' writes of the module by a guarded serial key: a node whose state
//! of the module is behind another node's write is refused with
//! [`StoreError::Conflict`] (REST 409) and rolled back, without writing
//! the undo to the store. A write first waits until this node followed
//! the writes committed before it started ([`Runtime::catch_up`]), so
//! only concurrent writes conflict.
//!
//! Writes of one module are serialized, so validation always sees the
//! state the change is applied to, and each runs to completion in its own
//! task: a caller that goes away (an HTTP client hanging up) cannot leave a
//! write half done. The REST layer does the same for a whole write request
//! (validation, the service calls, the announcement:
//! [`crate::api::write`]'s `run_to_completion`). Reads go through the core
//! and never wait for switches or for a write in progress.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;
use utoipa::ToSchema;

use crate::cookie::Owner;
use crate::events::{BusEvent, ResourceAction};
use crate::module::{Ctx, Module};
use crate::runtime::reconcile::ReconcileCounts;
use crate::runtime::rejection::SwitchRejection;
use crate::runtime::{CallError, Runtime};
use crate::store::StoreError;

/// Who created or changed a resource: `rest` (an operator, a script) or a
/// module, as `<module>/<object>` (e.g. `hostaware/rule-7`). A resource a
/// module created is that module's to change and remove.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct Origin(String);

impl Origin {
    pub fn rest() -> Origin {
        Origin("rest".into())
    }

    pub fn module(owner: Owner, object: impl fmt::Display) -> Origin {
        Origin(format!("{}/{object}", owner.name()))
    }

    /// The module that created the resource, if one did.
    pub fn owner(&self) -> Option<Owner> {
        let name = self.0.split('/').next()?;
        Owner::ALL.into_iter().find(|o| o.name() == name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Refuses a change by `by` to a resource a module created (`origin`).
pub fn check_owner(origin: Option<&Origin>, by: &Origin) -> Result<(), String> {
    match origin {
        Some(origin) if origin != by && origin.owner().is_some() => Err(format!(
            "owned by {origin}: change or remove it through that module"
        )),
        _ => Ok(()),
    }
}

/// Reverts a staged write on the module (state, declarations, store).
pub type Undo<M> = Box<dyn FnOnce(&mut M, &mut Ctx) + Send>;

/// A write applied to a module's state, with the way back.
pub struct Staged<M, R> {
    pub value: R,
    undo: Undo<M>,
}

impl<M, R> Staged<M, R> {
    pub fn new(value: R, undo: impl FnOnce(&mut M, &mut Ctx) + Send + 'static) -> Self {
        Staged {
            value,
            undo: Box::new(undo),
        }
    }

    /// Reverts the write (the service does this when a switch refused it
    /// or the store failed).
    pub fn undo(self, module: &mut M, ctx: &mut Ctx) {
        (self.undo)(module, ctx);
    }

    /// The same write answering `f(value)`.
    pub fn map<T>(self, f: impl FnOnce(R) -> T) -> Staged<M, T> {
        Staged {
            value: f(self.value),
            undo: self.undo,
        }
    }
}

/// A write that was persisted and confirmed by every switch that answered.
#[derive(Debug, Clone)]
pub struct Written<R> {
    pub value: R,
    pub confirmed: Vec<u64>,
    /// Switches that did not answer in time: they converge when they do or
    /// reconnect.
    pub unconfirmed: Vec<u64>,
    /// Mods sent, by kind (unchanged entries are not sent).
    pub sent: ReconcileCounts,
    /// Core time of the write: validation, compiling, declaring, diffing.
    pub core_time: Duration,
}

impl<R> Written<R> {
    /// The same confirmation answering `value`.
    pub fn with_value<T>(self, value: T) -> Written<T> {
        Written {
            value,
            confirmed: self.confirmed,
            unconfirmed: self.unconfirmed,
            sent: self.sent,
            core_time: self.core_time,
        }
    }
}

/// Why a write did not happen (nothing of it remains).
#[derive(Debug, Clone)]
pub enum WriteError<E> {
    /// The module refused it (validation); nothing was changed.
    Invalid(E),
    /// Switches refused part of it; it was rolled back.
    Rejected(Vec<SwitchRejection>),
    /// The store could not persist it; it was rolled back.
    Store(Arc<StoreError>),
    /// The controller is shutting down.
    Stopped,
}

impl<E> From<CallError> for WriteError<E> {
    fn from(_: CallError) -> Self {
        WriteError::Stopped
    }
}

/// The write path of module `M`; cheap to clone.
pub struct Service<M> {
    runtime: Runtime,
    owner: Owner,
    module: PhantomData<fn() -> M>,
}

impl<M> Clone for Service<M> {
    fn clone(&self) -> Self {
        Service {
            runtime: self.runtime.clone(),
            owner: self.owner,
            module: PhantomData,
        }
    }
}

impl<M: Module> Service<M> {
    /// The service of the module `owner` (of type `M`) loaded in `runtime`.
    pub fn new(runtime: Runtime, owner: Owner) -> Self {
        Service {
            runtime,
            owner,
            module: PhantomData,
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Reads the module's state on the core.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&M) -> R + Send + 'static,
    ) -> Result<R, CallError> {
        Ok(self.runtime.call::<M, R>(move |m, _| f(m)).await?.value)
    }

    /// Stages, persists and confirms a write (see the module docs). `stage`
    /// must change nothing when it returns `Err`.
    pub async fn write<R, E>(
        &self,
        stage: impl FnOnce(&mut M, &mut Ctx) -> Result<Staged<M, R>, E> + Send + 'static,
    ) -> Result<Written<R>, WriteError<E>>
    where
        R: Send + 'static,
        E: Send + 'static,
    {
        self.runtime.catch_up(self.owner).await;
        let guard = self.runtime.write_lock(self.owner).lock_owned().await;
        let runtime = self.runtime.clone();
        let write = tokio::spawn(async move {
            let _serialized = guard;
            let applied = runtime.write_call::<M, _>(stage).await?;
            let staged = applied.value.map_err(WriteError::Invalid)?;
            let failure = if !applied.rejections.is_empty() {
                Some(WriteError::Rejected(applied.rejections))
            } else {
                applied.persisted.err().map(WriteError::Store)
            };
            if let Some(failure) = failure {
                let undo = move |m: &mut M, ctx: &mut Ctx| staged.undo(m, ctx);
                // A conflict wrote nothing, and the store holds another
                // node's newer write: only the state and the switches
                // are rolled back (the follower brings that write in).
                let undone = match &failure {
                    WriteError::Store(e) if matches!(**e, StoreError::Conflict { .. }) => {
                        runtime.call_unpersisted::<M, _>(undo).await
                    }
                    _ => runtime.call::<M, _>(undo).await,
                };
                match undone {
                    Ok(undone) if undone.is_clean() => {}
                    Ok(undone) => warn!(
                        rejections = undone.rejections.len(),
                        persisted = undone.persisted.is_ok(),
                        "rolling back a refused write did not go cleanly either"
                    ),
                    Err(e) => warn!(error = %e, "could not roll back a refused write"),
                }
                return Err(failure);
            }
            Ok(Written {
                value: staged.value,
                confirmed: applied.confirmed,
                unconfirmed: applied.unconfirmed,
                sent: applied.sent,
                core_time: applied.core_time,
            })
        });
        write.await.unwrap_or(Err(WriteError::Stopped))
    }

    /// Tells the bus a resource of this module changed.
    pub async fn announce(
        &self,
        kind: &str,
        id: impl fmt::Display,
        action: ResourceAction,
        origin: &Origin,
    ) {
        self.runtime
            .emit(BusEvent::Resource {
                module: self.owner.name().into(),
                kind: kind.into(),
                id: id.to_string(),
                action,
                origin: origin.to_string(),
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_name_their_module() {
        let origin = Origin::module(Owner::HostAware, "rule-7");
        assert_eq!(origin.as_str(), "hostaware/rule-7");
        assert_eq!(origin.owner(), Some(Owner::HostAware));
        assert_eq!(Origin::rest().owner(), None);
        assert_eq!(serde_json::to_value(&origin).unwrap(), "hostaware/rule-7");
    }

    #[test]
    fn only_the_creating_module_changes_its_resources() {
        let hostaware = Origin::module(Owner::HostAware, "rule-7");
        assert!(check_owner(Some(&hostaware), &hostaware).is_ok());
        let refused = check_owner(Some(&hostaware), &Origin::rest()).unwrap_err();
        assert!(refused.contains("owned by hostaware/rule-7"), "{refused}");
        assert!(check_owner(None, &Origin::rest()).is_ok());
        assert!(check_owner(Some(&Origin::rest()), &hostaware).is_ok());
    }
}
