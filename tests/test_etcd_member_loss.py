"""One etcd member killed: no effect on a Flowgate cluster (issue 22).

A three-member etcd cluster (flowgate_lab.etcd.EtcdCluster) on loopback,
nodes `a` and `b` (`--cluster`, a 3-second lease) with `--etcd-endpoints`
listing all three members, and Mininet's single,2 connected to both nodes.
Both nodes use the first member listed; it is killed (-9). Checked over
three lease times after the kill:
- every REST write (a firewall rule added on a, then deleted on b, each
  once the other node followed the previous one) answers 2xx;
- both nodes' GET /api/v1/cluster keep the same master and generation for
  s1 and both membership keys (no lease lost): no mastership change. A
  node's own `alive` (its lease deadline, counted from acknowledged
  keepalives) may lapse briefly while etcd elects a new leader, since no
  keepalive is answered meanwhile; it is checked after the window.

Kept apart from test_cluster.py (one etcd) because it needs its own etcd
cluster and nodes.
"""

import json
import time

import pytest

from conftest import new_controller, release_controller
from flowgate_lab import LabNet, ovs, wait_until
from flowgate_lab.etcd import EtcdCluster
from test_cluster import LEASE_MS, _view, _wait_master

RULES = "/api/v1/firewall/rules"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    etcd = EtcdCluster(size=3, run_dir=str(tmp_path_factory.mktemp("etcd3"))).start()
    nodes = {}
    lab = None
    try:
        for name in ("a", "b"):
            nodes[name] = new_controller(extra_args=[
                "--store", "etcd", "--etcd-endpoints", ",".join(etcd.endpoints()),
                "--etcd-timeout-ms", "3000",
                "--cluster", "--node-id", name, "--lease-ttl-ms", str(LEASE_MS),
            ])
        lab = LabNet("single,2", nodes["a"])
        lab.start(connect_timeout=90)
        targets = {name: "tcp:127.0.0.1:%d" % ctl.of_port for name, ctl in nodes.items()}
        ovs.vsctl("set-controller", "s1", *targets.values())
        wait_until(lambda: ovs.bridges_connected(["s1"]), 60, what="s1 connected to both nodes")
        yield etcd, nodes, targets
    finally:
        if lab is not None:
            lab.stop()
        for ctl in nodes.values():
            release_controller(ctl)
        etcd.stop()


def _rule_ids(ctl):
    return {r["id"] for r in ctl.rest.get(RULES)}


def _registered(ctl):
    """Nodes whose membership key this node sees (their lease lives in etcd)."""
    return sorted(n["id"] for n in ctl.rest.get("/api/v1/cluster")["nodes"] if n["rest"])


def _alive(ctl):
    return sorted(n["id"] for n in ctl.rest.get("/api/v1/cluster")["nodes"] if n["alive"])


@pytest.mark.timeout_secs(240)
def test_one_member_killed_changes_nothing(cluster):
    etcd, nodes, targets = cluster
    settled = _wait_master(nodes, targets, ["a", "b"], 60)
    assert all(_alive(ctl) == ["a", "b"] for ctl in nodes.values())

    # Both nodes talk to the first member listed: kill that one.
    used = etcd.members[0]
    was_leader = _leader(etcd) == used.name
    used.kill()
    print("\nkilled etcd member %s (the leader: %s)" % (used.name, was_leader))

    writes = 0
    until = time.monotonic() + 3 * LEASE_MS / 1000
    while time.monotonic() < until:
        # Rule 100 + k: added on a, then deleted on b.
        rule_id = 100 + writes // 2
        if writes % 2 == 0:
            rule = {"id": rule_id, "priority": 100, "action": "deny",
                    "match": {"ip_proto": "icmp", "ip_src": "10.9.9.9"}}
            resp = nodes["a"].rest.request("POST", RULES, rule)
        else:
            # b follows a's write through its store watch (asynchronously).
            wait_until(lambda: rule_id in _rule_ids(nodes["b"]), 5, interval=0.02,
                       what="b to follow rule %d" % rule_id)
            resp = nodes["b"].rest.request("DELETE", "%s/%d" % (RULES, rule_id))
        assert 200 <= resp.status < 300, "write %d: %r" % (writes, resp)
        if writes % 2 == 1:
            wait_until(lambda: rule_id not in _rule_ids(nodes["a"]), 5, interval=0.02,
                       what="a to follow the delete of rule %d" % rule_id)
        writes += 1
        for name, ctl in nodes.items():
            assert _view(ctl) == settled, "%s: s1's mastership moved" % name
            assert _registered(ctl) == ["a", "b"], "%s: a node lost its lease" % name
    for name, ctl in nodes.items():
        assert _alive(ctl) == ["a", "b"], name
    print("%d REST writes after the kill, all 2xx; s1 kept master %s, generation %s"
          % (writes, settled[0], settled[1]))
    assert etcd.healthy_members() == [m.name for m in etcd.members[1:]]


def _leader(etcd):
    """Name of the member that leads now (etcdctl endpoint status)."""
    for status in json.loads(etcd.ctl("endpoint", "status", "-w", "json").stdout or "[]"):
        if status["Status"]["header"]["member_id"] == status["Status"]["leader"]:
            port = int(status["Endpoint"].rsplit(":", 1)[1])
            return next(m.name for m in etcd.members if m.client_port == port)
    return None
