//! The load balancer's service: the one way to read and change VIPs, pools,
//! members and monitors, for its REST handlers and for other modules
//! (host-aware drains a member or lowers its weight here, with its own
//! origin). Writes are staged on the core by [`LoadBalancer::stage`] and
//! confirmed or rolled back by [`flowgate_controller::service::Service`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use flowgate_controller::cookie::Owner;
use flowgate_controller::events::ResourceAction;
use flowgate_controller::pipeline::LB;
use flowgate_controller::runtime::Runtime;
use flowgate_controller::service::{check_owner, Origin, Service, WriteError, Written};
use flowgate_openflow::{FlowStats, GroupStats, MacAddr, Oxm};

use crate::compile::{self, compile_vip, Kind, PlannedVip};
use crate::health::Status;
use crate::model::{
    AdminState, Before, Invalid, Member, MemberKey, Monitor, Pool, Vip, MAX_WEIGHT,
};
use crate::module::{LbOp, LoadBalancer};

pub type LbResult<T> = Result<T, WriteError<Invalid>>;

/// A write's result: the object as stored, whether it was created, and
/// the confirmation (`None` for a dry run).
#[derive(Debug, Clone)]
pub struct Wrote<T> {
    pub value: T,
    pub created: bool,
    pub written: Option<Written<usize>>,
}

/// A member with its state, as REST shows it.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub member: Member,
    pub health: Option<Status>,
    pub mac: Option<MacAddr>,
    /// Whether it has a bucket in its VIPs' groups now.
    pub in_rotation: bool,
    /// Its bucket weight now, by VIP id.
    pub bucket_weights: BTreeMap<String, u16>,
}

/// A VIP's live statistics.
#[derive(Debug, Clone)]
pub struct VipStats {
    pub vip: Vip,
    pub members: Vec<MemberStats>,
    /// Switches that could not be read, as "dpid: reason".
    pub errors: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MemberStats {
    pub view: MemberView,
    /// New connections the member's bucket took (all switches).
    pub connections: u64,
    /// Packets and bytes of its established and reply entries.
    pub packets: u64,
    pub bytes: u64,
}

/// The load balancer's service; cheap to clone.
#[derive(Clone)]
pub struct LoadBalancerService {
    service: Service<LoadBalancer>,
}

impl LoadBalancerService {
    pub fn new(runtime: Runtime) -> LoadBalancerService {
        LoadBalancerService {
            service: Service::new(runtime, Owner::LoadBalancer),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        self.service.runtime()
    }

    // --- reads --------------------------------------------------------------

    pub async fn vips(&self) -> LbResult<Vec<Vip>> {
        Ok(self
            .service
            .read(|m| m.config().vips.values().cloned().collect())
            .await?)
    }

    pub async fn vip(&self, id: String) -> LbResult<Vip> {
        self.service
            .read(move |m| m.config().vips.get(&id).cloned().ok_or(id))
            .await?
            .map_err(|id| WriteError::Invalid(Invalid::missing("id", format!("no VIP {id:?}"))))
    }

    pub async fn pools(&self) -> LbResult<Vec<Pool>> {
        Ok(self
            .service
            .read(|m| m.config().pools.values().cloned().collect())
            .await?)
    }

    pub async fn pool(&self, id: String) -> LbResult<Pool> {
        self.service
            .read(move |m| m.config().pools.get(&id).cloned().ok_or(id))
            .await?
            .map_err(|id| WriteError::Invalid(Invalid::missing("id", format!("no pool {id:?}"))))
    }

    /// A pool's members with their health, MAC and buckets.
    pub async fn members(&self, pool: String) -> LbResult<Vec<MemberView>> {
        self.service
            .read(move |m| {
                let p = m.config().pools.get(&pool)?;
                Some(
                    p.members
                        .iter()
                        .map(|member| member_view(m, &pool, member))
                        .collect(),
                )
            })
            .await?
            .ok_or_else(|| WriteError::Invalid(Invalid::missing("id", "no such pool")))
    }

    pub async fn monitors(&self) -> LbResult<Vec<Monitor>> {
        Ok(self
            .service
            .read(|m| m.config().monitors.values().cloned().collect())
            .await?)
    }

    pub async fn monitor(&self, id: String) -> LbResult<Monitor> {
        self.service
            .read(move |m| m.config().monitors.get(&id).cloned().ok_or(id))
            .await?
            .map_err(|id| WriteError::Invalid(Invalid::missing("id", format!("no monitor {id:?}"))))
    }

    // --- writes ---------------------------------------------------------------

    /// Checks (dry run) or stages `op`; `exists` says whether the object
    /// was there before.
    async fn write(&self, op: LbOp, dry_run: bool) -> LbResult<(LbOp, Option<Written<usize>>)> {
        if dry_run {
            let checked = self
                .service
                .read(move |m| m.check(keep_holds(m, op)?))
                .await?
                .map_err(WriteError::Invalid)?;
            return Ok((checked, None));
        }
        let written = self
            .service
            .write(move |m, ctx| {
                let op = keep_holds(m, op)?;
                let staged = m.stage(op, ctx)?;
                Ok(staged.map(|op| {
                    let flows = flows_of(m, &op);
                    (op, flows)
                }))
            })
            .await?;
        let (op, flows) = written.value.clone();
        Ok((op, Some(written.with_value(flows))))
    }

    /// Whether `kind` `id` exists; creating one that does is a 409 on `id`.
    async fn existing(&self, kind: &'static str, id: &str, create: bool) -> LbResult<bool> {
        let wanted = id.to_owned();
        let existing = self
            .service
            .read(move |m| {
                let c = m.config();
                match kind {
                    "vip" => c.vips.contains_key(&wanted),
                    "pool" => c.pools.contains_key(&wanted),
                    _ => c.monitors.contains_key(&wanted),
                }
            })
            .await?;
        if existing && create {
            let (name, path) = match kind {
                "vip" => ("VIP", "vips"),
                "pool" => ("pool", "pools"),
                _ => ("monitor", "monitors"),
            };
            return Err(WriteError::Invalid(Invalid::conflict(
                "id",
                format!("{name} {id:?} exists; PUT /lb/{path}/{id} replaces it"),
            )));
        }
        Ok(existing)
    }

    async fn announce(&self, kind: &str, id: &str, created: bool, by: &Origin) {
        let action = if created {
            ResourceAction::Created
        } else {
            ResourceAction::Updated
        };
        self.service.announce(kind, id, action, by).await;
    }

    /// Creates (`create`: refusing an existing id) or replaces VIP `vip.id`.
    pub async fn put_vip(
        &self,
        mut vip: Vip,
        create: bool,
        by: Origin,
        dry_run: bool,
    ) -> LbResult<Wrote<Vip>> {
        vip.origin = by.owner().map(|_| by.clone());
        let existing = self.existing("vip", &vip.id, create).await?;
        if existing {
            let old = self.vip(vip.id.clone()).await?;
            check_owner(old.origin.as_ref(), &by)
                .map_err(|r| WriteError::Invalid(Invalid::conflict("origin", r)))?;
        }
        let (op, written) = self.write(LbOp::PutVip(vip), dry_run).await?;
        let LbOp::PutVip(vip) = op else {
            unreachable!("a VIP write answers with its VIP")
        };
        if !dry_run {
            self.announce("vip", &vip.id, !existing, &by).await;
        }
        Ok(Wrote {
            value: vip,
            created: !existing,
            written,
        })
    }

    pub async fn delete_vip(&self, id: String, by: Origin) -> LbResult<(Vip, Written<usize>)> {
        let old = self.vip(id.clone()).await?;
        check_owner(old.origin.as_ref(), &by)
            .map_err(|r| WriteError::Invalid(Invalid::conflict("origin", r)))?;
        let (_, written) = self.write(LbOp::DeleteVip(id.clone()), false).await?;
        self.service
            .announce("vip", &id, ResourceAction::Deleted, &by)
            .await;
        Ok((old, written.expect("not a dry run")))
    }

    /// Creates or replaces pool `pool.id` (with its members).
    pub async fn put_pool(
        &self,
        pool: Pool,
        create: bool,
        by: Origin,
        dry_run: bool,
    ) -> LbResult<Wrote<Pool>> {
        let existing = self.existing("pool", &pool.id, create).await?;
        let (op, written) = self.write(LbOp::PutPool(pool), dry_run).await?;
        let LbOp::PutPool(pool) = op else {
            unreachable!("a pool write answers with its pool")
        };
        if !dry_run {
            self.announce("pool", &pool.id, !existing, &by).await;
        }
        Ok(Wrote {
            value: pool,
            created: !existing,
            written,
        })
    }

    pub async fn delete_pool(&self, id: String, by: Origin) -> LbResult<(Pool, Written<usize>)> {
        let old = self.pool(id.clone()).await?;
        let (_, written) = self.write(LbOp::DeletePool(id.clone()), false).await?;
        self.service
            .announce("pool", &id, ResourceAction::Deleted, &by)
            .await;
        Ok((old, written.expect("not a dry run")))
    }

    /// Adds member `member` to `pool`, or replaces the member with its
    /// address and port (`create` refuses that).
    pub async fn put_member(
        &self,
        pool: String,
        mut member: Member,
        create: bool,
        by: Origin,
        dry_run: bool,
    ) -> LbResult<Wrote<Member>> {
        member.origin = by.owner().map(|_| by.clone());
        let key = member.key();
        let changed = member.clone();
        let result = self
            .change_member(pool.clone(), key, dry_run, move |members, exists| {
                if exists && create {
                    return Err(Invalid::conflict(
                        "address",
                        format!("{key} is a member already; PUT .../members/{key} replaces it"),
                    ));
                }
                match members.iter_mut().find(|m| m.key() == key) {
                    Some(m) => *m = kept_hold(m, changed)?,
                    None => members.push(changed),
                }
                Ok(())
            })
            .await?;
        if !dry_run {
            self.announce("pool", &pool, false, &by).await;
        }
        Ok(Wrote {
            value: member,
            created: result.0,
            written: result.1,
        })
    }

    /// Removes member `key` from `pool`; its established connections are
    /// dropped (drain it first to let them finish).
    pub async fn delete_member(
        &self,
        pool: String,
        key: MemberKey,
        by: Origin,
    ) -> LbResult<Written<usize>> {
        let (_, written) = self
            .change_member(pool.clone(), key, false, move |members, exists| {
                if !exists {
                    return Err(Invalid::missing("member", format!("no member {key}")));
                }
                members.retain(|m| m.key() != key);
                Ok(())
            })
            .await?;
        self.announce("pool", &pool, false, &by).await;
        Ok(written.expect("not a dry run"))
    }

    /// Drains, disables or enables a member (`drain`: no new connections,
    /// established ones go on). A module's change holds the member (see
    /// [`hold`]); [`Self::release_member`] puts back what it had.
    pub async fn set_admin_state(
        &self,
        pool: String,
        key: MemberKey,
        state: AdminState,
        by: Origin,
    ) -> LbResult<Written<usize>> {
        let holder = by.clone();
        let (_, written) = self
            .change_member(pool.clone(), key, false, move |members, exists| {
                if !exists {
                    return Err(Invalid::missing("member", format!("no member {key}")));
                }
                for m in members.iter_mut().filter(|m| m.key() == key) {
                    hold(m, &holder)?;
                    m.admin_state = state;
                }
                Ok(())
            })
            .await?;
        self.announce("pool", &pool, false, &by).await;
        Ok(written.expect("not a dry run"))
    }

    /// Sets a member's weight (1–1000). A module's change holds the member
    /// (see [`hold`]); [`Self::release_member`] puts back what it had.
    pub async fn set_weight(
        &self,
        pool: String,
        key: MemberKey,
        weight: u16,
        by: Origin,
    ) -> LbResult<Written<usize>> {
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(WriteError::Invalid(Invalid::bad(
                "weight",
                format!("{weight} is outside 1-{MAX_WEIGHT}"),
            )));
        }
        let holder = by.clone();
        let (_, written) = self
            .change_member(pool.clone(), key, false, move |members, exists| {
                if !exists {
                    return Err(Invalid::missing("member", format!("no member {key}")));
                }
                for m in members.iter_mut().filter(|m| m.key() == key) {
                    hold(m, &holder)?;
                    m.weight = weight;
                }
                Ok(())
            })
            .await?;
        self.announce("pool", &pool, false, &by).await;
        Ok(written.expect("not a dry run"))
    }

    /// Ends `by`'s hold of a member: its weight, admin state and origin go
    /// back to what they were before. `None` when there is nothing to
    /// release (no such pool or member, or not held by `by`: already
    /// released, or removed and added again by the operator).
    pub async fn release_member(
        &self,
        pool: String,
        key: MemberKey,
        by: Origin,
    ) -> LbResult<Option<Written<usize>>> {
        let holder = by.clone();
        let held = self
            .service
            .read(move |m| {
                m.member(&pool, key)
                    .filter(|x| x.held.is_some() && x.origin.as_ref() == Some(&holder))
                    .map(|_| pool)
            })
            .await?;
        let Some(pool) = held else {
            return Ok(None);
        };
        let holder = by.clone();
        let result = self
            .change_member(pool.clone(), key, false, move |members, _| {
                for m in members.iter_mut().filter(|m| m.key() == key) {
                    if m.origin.as_ref() != Some(&holder) {
                        continue;
                    }
                    if let Some(before) = m.held.take() {
                        m.weight = before.weight;
                        m.admin_state = before.admin_state;
                        m.origin = before.origin;
                    }
                }
                Ok(())
            })
            .await;
        match result {
            Ok((_, written)) => {
                self.announce("pool", &pool, false, &by).await;
                Ok(written)
            }
            // Gone meanwhile: nothing left to release.
            Err(WriteError::Invalid(Invalid::Missing { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Load-aware balancing: sets the weights of members of `pool` in one
    /// write (held members and members no longer there are skipped; they
    /// are not holds: the origin only says who set them last). `None` when
    /// nothing changed.
    pub async fn set_load_weights(
        &self,
        pool: String,
        weights: BTreeMap<MemberKey, u16>,
        by: Origin,
    ) -> LbResult<Option<Written<usize>>> {
        if let Some((key, w)) = weights.iter().find(|(_, w)| !(1..=MAX_WEIGHT).contains(*w)) {
            return Err(WriteError::Invalid(Invalid::bad(
                "weight",
                format!("{key}: {w} is outside 1-{MAX_WEIGHT}"),
            )));
        }
        let origin = by.owner().map(|_| by.clone());
        let id = pool.clone();
        let prepare = move |m: &LoadBalancer| -> Result<Option<Pool>, Invalid> {
            let mut p = m
                .config()
                .pools
                .get(&id)
                .cloned()
                .ok_or_else(|| Invalid::missing("pool", format!("no pool {id:?}")))?;
            let mut changed = false;
            for member in p.members.iter_mut().filter(|x| x.held.is_none()) {
                if let Some(&w) = weights.get(&member.key()) {
                    if member.weight != w {
                        member.weight = w;
                        member.origin = origin.clone();
                        changed = true;
                    }
                }
            }
            Ok(changed.then_some(p))
        };
        let written = self
            .service
            .write(move |m, ctx| match prepare(m)? {
                None => Ok(flowgate_controller::service::Staged::new(None, |_, _| {})),
                Some(p) => Ok(m
                    .stage(LbOp::PutPool(p), ctx)?
                    .map(|op| Some(flows_of(m, &op)))),
            })
            .await?;
        let Some(flows) = written.value else {
            return Ok(None);
        };
        self.announce("pool", &pool, false, &by).await;
        Ok(Some(written.with_value(flows)))
    }

    /// Changes `pool`'s member list with `edit` (given whether `key` is a
    /// member) and writes the pool, all on the core in one step. Errors
    /// about the edited member name its own fields.
    async fn change_member(
        &self,
        pool: String,
        key: MemberKey,
        dry_run: bool,
        edit: impl FnOnce(&mut Vec<Member>, bool) -> Result<(), Invalid> + Send + 'static,
    ) -> LbResult<(bool, Option<Written<usize>>)> {
        let prepare = move |m: &LoadBalancer| -> Result<(Pool, bool), Invalid> {
            let mut p = m
                .config()
                .pools
                .get(&pool)
                .cloned()
                .ok_or_else(|| Invalid::missing("pool", format!("no pool {pool:?}")))?;
            let exists = p.member(key).is_some();
            edit(&mut p.members, exists)?;
            Ok((p, !exists))
        };
        let own_fields = move |pool: &Pool, e: Invalid| {
            let Some(i) = pool.members.iter().position(|m| m.key() == key) else {
                return e;
            };
            let prefix = format!("members[{i}].");
            let strip = |f: String| f.strip_prefix(&prefix).map(str::to_owned).unwrap_or(f);
            match e {
                Invalid::Bad { field, reason } => Invalid::bad(strip(field), reason),
                Invalid::Missing { field, reason } => Invalid::missing(strip(field), reason),
                Invalid::Conflict { field, reason } => Invalid::conflict(strip(field), reason),
            }
        };
        if dry_run {
            let created = self
                .service
                .read(move |m| {
                    let (p, created) = prepare(m)?;
                    m.check(LbOp::PutPool(p.clone()))
                        .map_err(|e| own_fields(&p, e))?;
                    Ok(created)
                })
                .await?
                .map_err(WriteError::Invalid)?;
            return Ok((created, None));
        }
        let written = self
            .service
            .write(move |m, ctx| {
                let (p, created) = prepare(m)?;
                let staged = m
                    .stage(LbOp::PutPool(p.clone()), ctx)
                    .map_err(|e| own_fields(&p, e))?;
                Ok(staged.map(|op| (created, flows_of(m, &op))))
            })
            .await?;
        let (created, flows) = written.value;
        Ok((created, Some(written.with_value(flows))))
    }

    pub async fn put_monitor(
        &self,
        monitor: Monitor,
        create: bool,
        by: Origin,
        dry_run: bool,
    ) -> LbResult<Wrote<Monitor>> {
        let existing = self.existing("monitor", &monitor.id, create).await?;
        let (op, written) = self.write(LbOp::PutMonitor(monitor), dry_run).await?;
        let LbOp::PutMonitor(monitor) = op else {
            unreachable!("a monitor write answers with its monitor")
        };
        if !dry_run {
            self.announce("monitor", &monitor.id, !existing, &by).await;
        }
        Ok(Wrote {
            value: monitor,
            created: !existing,
            written,
        })
    }

    pub async fn delete_monitor(
        &self,
        id: String,
        by: Origin,
    ) -> LbResult<(Monitor, Written<usize>)> {
        let old = self.monitor(id.clone()).await?;
        let (_, written) = self.write(LbOp::DeleteMonitor(id.clone()), false).await?;
        self.service
            .announce("monitor", &id, ResourceAction::Deleted, &by)
            .await;
        Ok((old, written.expect("not a dry run")))
    }

    // --- statistics -----------------------------------------------------------

    /// Per member of VIP `id`: health, new connections (its bucket's
    /// counters) and packets/bytes (its entries' counters), live from
    /// every switch.
    pub async fn stats(&self, id: String) -> LbResult<VipStats> {
        let (vip, plan, views) = self
            .service
            .read(move |m| {
                let vip = m.config().vips.get(&id).cloned()?;
                let plan = m.plan(vip.index).cloned();
                let views: Vec<MemberView> = m
                    .config()
                    .pools
                    .get(&vip.pool)
                    .map(|p| {
                        p.members
                            .iter()
                            .map(|x| member_view(m, &vip.pool, x))
                            .collect()
                    })
                    .unwrap_or_default();
                Some((vip, plan, views))
            })
            .await?
            .ok_or_else(|| WriteError::Invalid(Invalid::missing("id", "no such VIP")))?;
        let runtime = self.runtime();
        let index = vip.index;
        let mut queries = tokio::task::JoinSet::new();
        for sw in runtime.registry().list() {
            let dpid = sw.info.dpid;
            let groups = runtime.group_stats(dpid, compile::group_id(index));
            let flows = runtime.flow_stats_by_cookie(
                dpid,
                LB,
                compile::cookie(Kind::Member, index),
                u64::MAX,
            );
            queries.spawn(async move { (dpid, groups.await, flows.await) });
        }
        let mut members: Vec<MemberStats> = views
            .into_iter()
            .map(|view| MemberStats {
                view,
                connections: 0,
                packets: 0,
                bytes: 0,
            })
            .collect();
        let mut errors = Vec::new();
        let buckets = plan.as_ref().map(bucket_members).unwrap_or_default();
        while let Some(done) = queries.join_next().await {
            let Ok((dpid, groups, flows)) = done else {
                continue;
            };
            match groups {
                Ok(groups) => add_buckets(&groups, &buckets, &mut members),
                Err(e) => errors.push(format!(
                    "{}: {e}",
                    flowgate_controller::api::dpid::format_dpid(dpid)
                )),
            }
            match flows {
                Ok(flows) => add_flows(&flows, &mut members),
                Err(e) => errors.push(format!(
                    "{}: {e}",
                    flowgate_controller::api::dpid::format_dpid(dpid)
                )),
            }
        }
        errors.sort();
        errors.dedup();
        Ok(VipStats {
            vip,
            members,
            errors,
        })
    }
}

/// The members that have buckets, in bucket order.
fn bucket_members(plan: &PlannedVip) -> Vec<MemberKey> {
    plan.members
        .iter()
        .filter(|m| m.in_rotation && m.mac.is_some())
        .map(|m| m.key)
        .collect()
}

fn add_buckets(groups: &[GroupStats], buckets: &[MemberKey], members: &mut [MemberStats]) {
    for group in groups {
        // A group whose layout differs (changed meanwhile) is skipped.
        if group.bucket_stats.len() != buckets.len() {
            continue;
        }
        for (counter, key) in group.bucket_stats.iter().zip(buckets) {
            if let Some(m) = members.iter_mut().find(|m| m.view.member.key() == *key) {
                m.connections += counter.packet_count;
            }
        }
    }
}

fn add_flows(flows: &[FlowStats], members: &mut [MemberStats]) {
    for flow in flows {
        let fields = &flow.match_.fields;
        let mac = fields.iter().find_map(|f| match f {
            Oxm::EthSrc(m, None) => Some(*m),
            _ => None,
        });
        let dst = fields.iter().find_map(|f| match f {
            Oxm::Ipv4Dst(a, None) => Some(IpAddr::V4(*a)),
            Oxm::Ipv6Dst(a, None) => Some(IpAddr::V6(*a)),
            _ => None,
        });
        let port = fields.iter().find_map(|f| match f {
            Oxm::TcpDst(p) | Oxm::UdpDst(p) => Some(*p),
            _ => None,
        });
        let target = members.iter_mut().find(|m| match (mac, dst, port) {
            (Some(mac), _, _) => m.view.mac == Some(mac),
            (None, Some(a), Some(p)) => {
                m.view.member.key()
                    == MemberKey {
                        address: a,
                        port: p,
                    }
            }
            _ => false,
        });
        if let Some(m) = target {
            m.packets += flow.packet_count;
            m.bytes += flow.byte_count;
        }
    }
}

fn member_view(m: &LoadBalancer, pool: &str, member: &Member) -> MemberView {
    let network = m
        .config()
        .vips_of_pool(pool)
        .find_map(|v| v.network.clone());
    let mut bucket_weights = BTreeMap::new();
    let mut in_rotation = false;
    for vip in m.config().vips_of_pool(pool) {
        if let Some(planned) = m
            .plan(vip.index)
            .and_then(|p| p.members.iter().find(|x| x.key == member.key()))
        {
            if planned.in_rotation {
                in_rotation = true;
                bucket_weights.insert(vip.id.clone(), planned.weight);
            }
        }
    }
    MemberView {
        member: member.clone(),
        health: m.health(pool, member.key()).cloned(),
        mac: m.mac_of(network.as_deref(), member.address),
        in_rotation,
        bucket_weights,
    }
}

/// Entries on connected switches of the VIPs a write touched.
fn flows_of(m: &LoadBalancer, op: &LbOp) -> usize {
    let vmac = m.settings().virtual_mac;
    let per_switch: usize = match op {
        LbOp::PutVip(vip) => m
            .plan(vip.index)
            .map_or(0, |p| compile_vip(p, vmac).flows.len()),
        LbOp::PutPool(pool) => m
            .config()
            .vips_of_pool(&pool.id)
            .filter_map(|v| m.plan(v.index))
            .map(|p| compile_vip(p, vmac).flows.len())
            .sum(),
        _ => 0,
    };
    per_switch * m.switches().len()
}

/// A change of a member's weight or admin state by `by`: a module's holds
/// the member (its state before is kept, the first time, to be put back
/// when the module releases it); anyone else's on a member a module holds
/// is refused (409 naming `origin`).
pub fn hold(member: &mut Member, by: &Origin) -> Result<(), Invalid> {
    if let (Some(_), Some(holder)) = (&member.held, &member.origin) {
        if holder != by {
            return Err(Invalid::conflict(
                "origin",
                format!(
                    "member {} is held by {holder}: it goes back when that module releases it",
                    member.key()
                ),
            ));
        }
        return Ok(());
    }
    if by.owner().is_some() {
        member.held = Some(Before {
            weight: member.weight,
            admin_state: member.admin_state,
            origin: member.origin.take(),
        });
        member.origin = Some(by.clone());
    } else {
        member.origin = None;
    }
    Ok(())
}

/// An operator's new version of `old`: a held member keeps its hold and
/// may not change weight or admin state while held.
fn kept_hold(old: &Member, mut new: Member) -> Result<Member, Invalid> {
    if old.held.is_none() {
        return Ok(new);
    }
    let holder = old.origin.clone().unwrap_or_else(Origin::rest);
    for (field, same) in [
        ("weight", new.weight == old.weight),
        ("admin_state", new.admin_state == old.admin_state),
    ] {
        if !same {
            return Err(Invalid::conflict(
                field,
                format!(
                    "member {} is held by {holder}; its {field} goes back when that module \
                     releases it",
                    old.key()
                ),
            ));
        }
    }
    new.held = old.held.clone();
    new.origin = old.origin.clone();
    Ok(new)
}

/// An operator's pool write keeps the holds of the members it keeps
/// (errors name `members[i].<field>`).
fn keep_holds(m: &LoadBalancer, op: LbOp) -> Result<LbOp, Invalid> {
    let LbOp::PutPool(mut pool) = op else {
        return Ok(op);
    };
    if let Some(old) = m.config().pools.get(&pool.id) {
        for (i, member) in pool.members.iter_mut().enumerate() {
            if member.held.is_some() {
                continue;
            }
            if let Some(before) = old.member(member.key()) {
                *member = kept_hold(before, member.clone())
                    .map_err(|e| e.within(&format!("members[{i}]")))?;
            }
        }
    }
    Ok(LbOp::PutPool(pool))
}
