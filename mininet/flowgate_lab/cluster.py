"""Reading a Flowgate cluster's state from both sides (issue 22): what the
nodes say (GET /api/v1/cluster) and what Open vSwitch says (each bridge's
Controller rows and their `role` column), and waiting until they agree.

Shared by the cluster tests and tools/cluster-bench.
"""

import json

from . import ovs
from .util import wait_until


def cluster_args(endpoints, node, lease_ms, timeout_ms=1500):
    """flowgate flags of one cluster node on the etcd `endpoints`."""
    return [
        "--store", "etcd", "--etcd-endpoints", ",".join(endpoints), "--etcd-timeout-ms", str(timeout_ms),
        "--cluster", "--node-id", node, "--lease-ttl-ms", str(lease_ms),
    ]


def target(ctl):
    """The OVS controller target of a node."""
    return "tcp:%s:%d" % (ctl.of_host, ctl.of_port)


def point_switches(bridges, nodes):
    """Set every bridge's controllers to every node (dict name -> ctl)."""
    targets = [target(ctl) for ctl in nodes.values()]
    for bridge in bridges:
        ovs.vsctl("set-controller", bridge, *targets)


def view(ctl):
    """{dpid: (master, generation, connected nodes)} in a node's GET /cluster."""
    doc = ctl.rest.get("/api/v1/cluster")
    return {
        int(sw["dpid"].replace(":", ""), 16): (sw["master"], sw["generation"], tuple(sorted(sw["connected"])))
        for sw in doc["switches"]
    }


def ovs_roles(nodes):
    """{bridge: {node: role}} from OVS's Controller table ("master",
    "slave", "other"; None while never connected)."""
    names = {target(ctl): name for name, ctl in nodes.items()}
    rows = json.loads(ovs.vsctl("--format=json", "--columns=_uuid,target,role", "list", "controller"))
    by_uuid = {row[0][1]: (row[1], row[2]) for row in rows["data"]}
    bridges = json.loads(ovs.vsctl("--format=json", "--columns=name,controller", "list", "bridge"))
    out = {}
    for name, cell in bridges["data"]:
        roles = {}
        for uuid in ovs._uuids(cell):  # pylint: disable=protected-access
            tgt, role = by_uuid.get(uuid, (None, None))
            if tgt in names:
                roles[names[tgt]] = role if isinstance(role, str) else None
        if roles:
            out[name] = roles
    return out


def agreed_view(nodes, alive):
    """The view every node of `alive` reports, or None while they differ."""
    views = [view(nodes[name]) for name in alive]
    return views[0] if all(v == views[0] for v in views[1:]) else None


def settled(nodes, alive, dpids):
    """The agreed view when every switch in `dpids` is connected to every
    live node, has one master among them, and OVS shows that node's
    connection as master and every other live node's as slave; else None."""
    agreed = agreed_view(nodes, alive)
    if agreed is None:
        return None
    roles = ovs_roles(nodes)
    for dpid in dpids:
        entry = agreed.get(dpid)
        if entry is None or entry[0] not in alive or set(entry[2]) != set(alive):
            return None
        have = roles.get("s%d" % dpid, {})
        if any(have.get(n) != ("master" if n == entry[0] else "slave") for n in alive):
            return None
    return agreed


def wait_settled(nodes, alive, dpids, timeout, interval=0.2):
    """Wait for `settled`; return the agreed view."""
    return wait_until(lambda: settled(nodes, alive, dpids), timeout, interval=interval,
                      what="one master per switch among %s, confirmed by OVS" % sorted(alive))


def mastered(agreed):
    """{node: sorted dpids it masters} of an agreed view."""
    out = {}
    for dpid, (master, _, _) in agreed.items():
        out.setdefault(master, []).append(dpid)
    return {node: sorted(dpids) for node, dpids in out.items()}


def balanced(agreed, alive):
    """True when every live node masters a share within one of the others'."""
    counts = [len(mastered(agreed).get(n, [])) for n in alive]
    return max(counts) - min(counts) <= 1
