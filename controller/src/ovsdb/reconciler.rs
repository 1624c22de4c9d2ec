//! The OVSDB reconciler: one task that keeps every connected host's
//! database as the modules declared it (DESIGN.md §8: "declare, don't
//! diff", OVSDB rows alike).
//!
//! An owner registers once ([`Reconciler::register`]) and declares, per
//! host (chassis id, [`HostView::host_id`]) and [`Scope`], the whole set of
//! objects that scope wants ([`OwnerRows::declare`]). For each connected
//! host the task plans all owners' declarations against the host's view
//! ([`plan()`]) and sends the difference as one transaction. It plans
//! again when the view changes: a reconnect, an operator's edit, or the
//! effect of its own transaction coming back through the monitor. It does
//! not plan on a view that lacks a row its last transaction inserted (the
//! monitor may report other changes first), so it never inserts a row
//! twice; everything else it sends is idempotent. A failed transaction is
//! retried with exponential backoff, at once when the declarations change.
//!
//! Adoption: after a controller restart an owner's rows are kept as they
//! are until it settles the host ([`OwnerRows::settle`]); only then are
//! its rows that no declaration names removed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::{info, warn};

use serde_json::Value;

use super::datum;
use super::hosts::{Hosts, OvsdbError};
use super::objects::{Object, ObjectId};
use super::ops;
use super::plan::{plan, Blocked, HostDesired, OwnerPolicy};
use super::view::HostView;
use crate::cookie::Owner;
use crate::module::Scope;
use crate::runtime::tasks::{Task, TaskCtx};

/// First retry delay after a failed transaction; doubled per failure.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long a host whose transaction succeeded may take to show the rows
/// it inserted before it is planned again anyway.
const CONFIRM: Duration = Duration::from_secs(3);
/// A burst of monitor updates settles into one round.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// How an owner's rows are recognised and what its objects need monitored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registration {
    /// See [`OwnerPolicy::legacy_mark`].
    pub legacy_mark: Option<&'static str>,
    /// Tables and columns its objects need, e.g.
    /// [`super::columns::QOS`] for QoS objects; registered with
    /// [`Hosts::watch`] so that its rows are seen even before it declares.
    pub watch: &'static [(&'static str, &'static [&'static str])],
}

/// What the reconciler last made of a host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostStatus {
    /// The last transaction's error, if it failed.
    pub last_error: Option<String>,
    /// Declared objects that cannot be realised now.
    pub blocked: Vec<Blocked>,
}

/// Handle to the reconciler; cheap to clone.
#[derive(Clone)]
pub struct Reconciler {
    hosts: Hosts,
    shared: Arc<Shared>,
}

/// One owner's way to declare rows; cheap to clone.
#[derive(Clone)]
pub struct OwnerRows {
    owner: Owner,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Declarations changed.
    wake: Notify,
}

#[derive(Default)]
struct State {
    owners: BTreeMap<Owner, Registration>,
    hosts: BTreeMap<String, Declarations>,
    status: BTreeMap<String, HostStatus>,
    /// Changes so far, across hosts: a host's declarations carry the
    /// number of their last change.
    changes: u64,
}

/// Everything declared for one host.
#[derive(Default)]
struct Declarations {
    scopes: BTreeMap<(Owner, Scope), Vec<Object>>,
    settled: BTreeSet<Owner>,
    /// Which change made them what they are; a host in backoff is retried
    /// at once when it moves.
    generation: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change` to `host`'s declarations; wakes the task if it
    /// changed anything.
    fn update(&self, host: &str, change: impl FnOnce(&mut Declarations) -> bool) {
        let mut state = self.lock();
        let mut declarations = state.hosts.remove(host).unwrap_or_default();
        let changed = change(&mut declarations);
        if changed {
            state.changes += 1;
            declarations.generation = state.changes;
        }
        if !declarations.scopes.is_empty() || !declarations.settled.is_empty() {
            state.hosts.insert(host.to_owned(), declarations);
        }
        drop(state);
        if changed {
            self.wake.notify_one();
        }
    }
}

impl Reconciler {
    /// A reconciler of `hosts`' databases; it does nothing until its
    /// [`Reconciler::task`] runs.
    pub fn new(hosts: Hosts) -> Reconciler {
        Reconciler {
            hosts,
            shared: Arc::default(),
        }
    }

    /// Makes `owner`'s tagged rows the reconciler's to manage and returns
    /// its handle for declaring them.
    pub fn register(&self, owner: Owner, registration: Registration) -> OwnerRows {
        self.hosts.watch(registration.watch);
        self.shared.lock().owners.insert(owner, registration);
        self.shared.wake.notify_one();
        OwnerRows {
            owner,
            shared: self.shared.clone(),
        }
    }

    /// What the reconciler last made of `host`.
    pub fn status(&self, host: &str) -> HostStatus {
        self.shared
            .lock()
            .status
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    /// [`Reconciler::run`] as a runtime task (`Runtime::spawn_task`),
    /// stopped at shutdown.
    pub fn task(&self) -> Task {
        let me = self.clone();
        Task::new("ovsdb-reconciler", move |mut ctx: TaskCtx| async move {
            me.run(async move { ctx.stopped().await }).await;
        })
    }

    /// Reconciles every connected host until `stop` resolves.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut changes = self.hosts.subscribe();
        let mut pacing: BTreeMap<String, Pacing> = BTreeMap::new();
        let mut inflight: JoinSet<(String, u64, Result<Vec<Value>, OvsdbError>)> = JoinSet::new();
        loop {
            let now = Instant::now();
            let present = self.hosts.by_host();
            pacing.retain(|host, _| present.contains_key(host));
            self.shared
                .lock()
                .status
                .retain(|host, _| present.contains_key(host));
            for (host, snap) in &present {
                let pace = pacing
                    .entry(host.clone())
                    .or_insert_with(|| Pacing::new(snap.conn_id));
                if pace.conn != snap.conn_id {
                    *pace = Pacing::new(snap.conn_id);
                }
                let (desired, conflicts, generation) = self.desired(host);
                if !pace.may_plan(now, &snap.view, generation) {
                    continue;
                }
                let planned = plan(&snap.view, &desired);
                let mut blocked = conflicts;
                blocked.extend(planned.blocked);
                self.set_blocked(host, blocked);
                if planned.ops.is_empty() {
                    self.set_error(host, None);
                    continue;
                }
                let Some(handle) = self.hosts.handle(snap.conn_id) else {
                    continue;
                };
                info!(chassis = ?host, ops = planned.ops.len(), "OVSDB: applying declared rows");
                pace.sent(snap.view.clone(), generation);
                let mut txn = vec![ops::comment("flowgate: OVSDB reconciler")];
                txn.extend(planned.ops);
                let (host, conn) = (host.clone(), snap.conn_id);
                inflight.spawn(async move { (host, conn, handle.transact(txn).await) });
            }
            let wake = pacing
                .values()
                .filter_map(Pacing::wake_at)
                .min()
                .unwrap_or(now + Duration::from_secs(60));
            tokio::select! {
                _ = &mut stop => return,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    tokio::time::sleep(DEBOUNCE).await;
                }
                _ = self.shared.wake.notified() => {}
                Some(Ok((host, conn, result))) = inflight.join_next() => {
                    if let Err(e) = &result {
                        warn!(chassis = ?host, error = ?e.to_string(), "OVSDB transaction failed; will retry");
                    }
                    self.set_error(&host, result.as_ref().err().map(ToString::to_string));
                    if let Some(pace) = pacing.get_mut(&host).filter(|p| p.conn == conn) {
                        pace.done(Instant::now(), result.ok().map(|r| inserted(&r)));
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
            }
        }
    }

    /// `host`'s declarations merged for the planner; a second declaration
    /// of one object is refused (the first in (owner, scope) order holds).
    pub(crate) fn desired(&self, host: &str) -> (HostDesired, Vec<Blocked>, u64) {
        let state = self.shared.lock();
        let declared = state.hosts.get(host);
        let mut desired = HostDesired::default();
        for (owner, registration) in &state.owners {
            let policy = OwnerPolicy {
                settled: declared.is_some_and(|d| d.settled.contains(owner)),
                legacy_mark: registration.legacy_mark,
            };
            desired.owners.insert(*owner, policy);
        }
        let mut conflicts = Vec::new();
        for ((owner, _), objects) in declared.iter().flat_map(|d| &d.scopes) {
            for object in objects {
                let id = object.id();
                match desired.objects.get(&id) {
                    Some((holder, _)) => conflicts.push(conflict(*owner, id, *holder)),
                    None => {
                        desired.objects.insert(id, (*owner, object.clone()));
                    }
                }
            }
        }
        let generation = declared.map_or(state.changes, |d| d.generation);
        (desired, conflicts, generation)
    }

    fn set_blocked(&self, host: &str, blocked: Vec<Blocked>) {
        let mut state = self.shared.lock();
        let status = state.status.entry(host.to_owned()).or_default();
        if status.blocked != blocked {
            for b in blocked.iter().filter(|b| !status.blocked.contains(b)) {
                warn!(chassis = ?host, owner = b.owner.name(), object = ?b.id, reason = ?b.reason,
                    "OVSDB: declared object not applied");
            }
            status.blocked = blocked;
        }
    }

    fn set_error(&self, host: &str, error: Option<String>) {
        let mut state = self.shared.lock();
        state.status.entry(host.to_owned()).or_default().last_error = error;
    }
}

/// The uuids of the rows a transaction inserted, from its results.
fn inserted(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .filter_map(|r| datum::uuid(r.get("uuid")?))
        .map(str::to_owned)
        .collect()
}

fn conflict(owner: Owner, id: ObjectId, holder: Owner) -> Blocked {
    Blocked {
        owner,
        id,
        reason: format!("declared by {} too", holder.name()),
    }
}

impl OwnerRows {
    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// States everything `scope` wants on `host`, replacing its previous
    /// declaration (an empty list withdraws the scope).
    pub fn declare(&self, host: &str, scope: Scope, objects: Vec<Object>) {
        let key = (self.owner, scope);
        self.shared.update(host, |d| {
            if objects.is_empty() {
                return d.scopes.remove(&key).is_some();
            }
            if d.scopes.get(&key) == Some(&objects) {
                return false;
            }
            d.scopes.insert(key, objects);
            true
        });
    }

    /// What this owner declares on `host` now, scope by scope.
    pub fn declared(&self, host: &str) -> BTreeMap<Scope, Vec<Object>> {
        let state = self.shared.lock();
        state
            .hosts
            .get(host)
            .map(|d| {
                d.scopes
                    .iter()
                    .filter(|((owner, _), _)| *owner == self.owner)
                    .map(|((_, scope), objects)| (*scope, objects.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Everything this owner wants on `host` is declared: its rows there
    /// that no declaration names are removed from now on.
    pub fn settle(&self, host: &str) {
        self.shared.update(host, |d| d.settled.insert(self.owner));
    }

    /// Drops every declaration of this owner for `host` (a host gone for
    /// good) and unsettles it: should the host come back, its rows are
    /// kept as they are until the owner declares and settles it again.
    pub fn forget(&self, host: &str) {
        self.shared.update(host, |d| {
            let before = d.scopes.len();
            d.scopes.retain(|(owner, _), _| *owner != self.owner);
            d.settled.remove(&self.owner) | (d.scopes.len() != before)
        });
    }
}

/// When one host may be planned again.
#[derive(Debug)]
struct Pacing {
    /// The connection this is about; a reconnect starts afresh.
    conn: u64,
    phase: Phase,
    failures: u32,
}

#[derive(Debug)]
enum Phase {
    Idle,
    /// A transaction planned on `view` is out.
    Sent {
        view: Arc<HostView>,
        generation: u64,
    },
    /// It succeeded: wait for a view other than `view` that has the rows
    /// it inserted, or until `until`.
    Confirming {
        view: Arc<HostView>,
        inserted: Vec<String>,
        until: Instant,
    },
    /// It failed: retry at `until`, or at once if the declarations change.
    Backoff {
        until: Instant,
        generation: u64,
    },
}

impl Pacing {
    fn new(conn: u64) -> Pacing {
        Pacing {
            conn,
            phase: Phase::Idle,
            failures: 0,
        }
    }

    fn may_plan(&self, now: Instant, view: &Arc<HostView>, generation: u64) -> bool {
        match &self.phase {
            Phase::Idle => true,
            Phase::Sent { .. } => false,
            Phase::Confirming {
                view: sent,
                inserted,
                until,
            } => {
                let shown = !Arc::ptr_eq(sent, view) && inserted.iter().all(|u| view.has_row(u));
                shown || now >= *until
            }
            Phase::Backoff {
                until,
                generation: failed,
            } => now >= *until || generation != *failed,
        }
    }

    fn sent(&mut self, view: Arc<HostView>, generation: u64) {
        self.phase = Phase::Sent { view, generation };
    }

    /// The transaction finished: `Some(inserted row uuids)` if it succeeded.
    fn done(&mut self, now: Instant, inserted: Option<Vec<String>>) {
        let Phase::Sent { view, generation } = std::mem::replace(&mut self.phase, Phase::Idle)
        else {
            return;
        };
        self.phase = if let Some(inserted) = inserted {
            self.failures = 0;
            Phase::Confirming {
                view,
                inserted,
                until: now + CONFIRM,
            }
        } else {
            self.failures += 1;
            let delay = RETRY_FIRST
                .saturating_mul(1 << (self.failures - 1).min(16))
                .min(RETRY_MAX);
            Phase::Backoff {
                until: now + delay,
                generation,
            }
        };
    }

    fn wake_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::Confirming { until, .. } | Phase::Backoff { until, .. } => Some(until),
            Phase::Idle | Phase::Sent { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_planned_again_once_its_last_transaction_shows() {
        use crate::ovsdb::view::BridgeView;
        let now = Instant::now();
        let planned = Arc::new(HostView::default());
        let mut pace = Pacing::new(1);
        assert!(pace.may_plan(now, &planned, 0));
        pace.sent(planned.clone(), 0);
        assert!(
            !pace.may_plan(now, &planned, 0),
            "one transaction at a time"
        );
        assert!(!pace.may_plan(now, &Arc::new(HostView::default()), 1));
        pace.done(now, Some(vec!["br1".into()]));
        assert!(!pace.may_plan(now, &planned, 0), "nothing new reported yet");
        // Someone else's change came first: the bridge is not there yet.
        let other = Arc::new(HostView {
            root_uuid: Some("root".into()),
            ..HostView::default()
        });
        assert!(!pace.may_plan(now, &other, 0));
        let shown = Arc::new(HostView {
            bridges: vec![BridgeView {
                uuid: "br1".into(),
                ..BridgeView::default()
            }],
            ..HostView::default()
        });
        assert!(pace.may_plan(now, &shown, 0));
        assert!(pace.may_plan(now + CONFIRM, &planned, 0), "not forever");
        assert_eq!(pace.wake_at(), Some(now + CONFIRM));
    }

    #[test]
    fn failures_back_off_exponentially_unless_the_declarations_change() {
        let now = Instant::now();
        let view = Arc::new(HostView::default());
        let mut pace = Pacing::new(1);
        let mut delays = Vec::new();
        for _ in 0..7 {
            pace.sent(view.clone(), 4);
            pace.done(now, None);
            delays.push(pace.wake_at().unwrap() - now);
            assert!(!pace.may_plan(now, &view, 4));
            assert!(
                pace.may_plan(now, &view, 5),
                "a new declaration is tried at once"
            );
        }
        let secs: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30]);
        pace.sent(view.clone(), 4);
        pace.done(now, Some(Vec::new()));
        pace.sent(view.clone(), 4);
        pace.done(now, None);
        assert_eq!(pace.wake_at(), Some(now + RETRY_FIRST), "success resets");
    }

    #[test]
    fn declarations_merge_and_conflicts_are_refused() {
        use crate::ovsdb::objects::{BridgeSpec, Kind};
        let reconciler = Reconciler::new(Hosts::default());
        let overlay = reconciler.register(
            Owner::Overlay,
            Registration {
                legacy_mark: Some("flowgate-peer"),
                ..Registration::default()
            },
        );
        let qos = reconciler.register(Owner::Qos, Registration::default());
        let bridge = |name: &str| {
            Object::Bridge(BridgeSpec {
                name: name.into(),
                controller: None,
            })
        };
        overlay.declare("h1", Scope::new("bridge", 0), vec![bridge("br-int")]);
        qos.declare(
            "h1",
            Scope::new("x", 0),
            vec![bridge("br-int"), bridge("br-q")],
        );
        overlay.settle("h1");
        let (desired, conflicts, generation) = reconciler.desired("h1");
        assert_eq!(generation, 3);
        assert_eq!(desired.objects.len(), 2);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].owner, Owner::Qos);
        assert_eq!(conflicts[0].id.kind, Kind::Bridge);
        assert!(desired.owners[&Owner::Overlay].settled);
        assert_eq!(
            desired.owners[&Owner::Overlay].legacy_mark,
            Some("flowgate-peer")
        );
        assert!(!desired.owners[&Owner::Qos].settled);
        // Re-declaring the same is no change; forgetting drops and unsettles.
        overlay.declare("h1", Scope::new("bridge", 0), vec![bridge("br-int")]);
        assert_eq!(reconciler.desired("h1").2, 3);
        overlay.forget("h1");
        let (desired, conflicts, _) = reconciler.desired("h1");
        assert!(conflicts.is_empty());
        assert_eq!(
            desired
                .objects
                .values()
                .filter(|(o, _)| *o == Owner::Overlay)
                .count(),
            0
        );
        assert!(!desired.owners[&Owner::Overlay].settled);
    }
}
