"""Two controllers sharing one etcd prefix follow each other's changes.

One etcd (this test's own, on loopback), two Flowgate processes with
`--store etcd` and the same (default) prefix, each controlling its own
switch: s1 (h1, h2) on node one, s2 (h3, h4) on node two, no link between
them. Written through node one's REST API, without a restart of node two:
- a firewall rule shows in node two's listing and is enforced by node two's
  switch (real pings); deleting it on node one lifts it on node two (how
  long node two took is printed);
- a QoS policy shows in node two's listing and node two's switch meters
  h3's packets (the policy's flow and meter on s2, the meter's packet
  count moving with h3's pings); deleting it removes both;
- a host-aware host and rule show in node two's listings.
Clustered (`--cluster`, each node master of its own switch, so node one
acts for the cluster: it masters the lowest switch), a host-aware rule
whose metric (a synthetic Ganglia RRD file both nodes read) crosses its
threshold is acted on once: one ACTION_APPLIED in the shared audit trail,
one rate-limit policy, listed by both nodes and metering on node two's
switch. Node one is then killed: node two becomes the actor, neither
applies the reaction again nor forgets it, and reverts it when the metric
recovers.
"""

import subprocess
import time

import pytest
from mininet.topo import Topo

from flowgate_lab import LabNet, ovs, wait_until
from flowgate_lab.checks import wait_controller_ready
from test_store_etcd import etcd  # noqa: F401  (the fixture: one etcd on loopback per test)

RULES = "/api/v1/firewall/rules"
POLICIES = "/api/v1/qos/policies"
HA = "/api/v1/hostaware"
# Longest a follower may take to apply another node's change.
FOLLOW_LIMIT = 10


class TwoIslands(Topo):
    """s1 with h1, h2 and s2 with h3, h4; the switches are not linked."""

    def build(self, *args, **params):
        for n in (1, 2):
            switch = self.addSwitch("s%d" % n, dpid="%016x" % n)
            for h in (2 * n - 1, 2 * n):
                self.addLink(self.addHost("h%d" % h), switch)


def _two_nodes(etcd, make_controller, one_args=(), two_args=()):
    """(node one, node two, LabNet): s1 on node one, s2 on node two."""
    store = ["--store", "etcd", "--etcd-endpoints", etcd.endpoint]
    one = make_controller(extra_args=store + list(one_args))
    two = make_controller(extra_args=store + list(two_args))
    lab = LabNet(TwoIslands(), one)
    lab.start(connect_timeout=60)
    try:
        ovs.vsctl("set-controller", "s2", "tcp:%s:%d" % (two.of_host, two.of_port))
        wait_until(lambda: ovs.bridges_connected(["s2"]), 30, what="s2 connected to node two")
        wait_controller_ready(one, [1])
        wait_controller_ready(two, [2])
        yield one, two, lab
    finally:
        lab.stop()


@pytest.fixture
def two_nodes(etcd, make_controller):
    yield from _two_nodes(etcd, make_controller)


@pytest.fixture
def two_clustered_nodes(etcd, make_controller):
    def cluster(node):
        return ["--etcd-timeout-ms", "1500", "--cluster", "--node-id", node, "--lease-ttl-ms", "3000"]

    yield from _two_nodes(etcd, make_controller, cluster("one"), cluster("two"))


def rule_ids(ctl):
    resp = ctl.rest.request("GET", RULES)
    assert resp.status == 200, resp
    return sorted(r["id"] for r in resp.json)


def pings(lab, src, dst):
    return lab.ping(src, dst, count=1, wait=1) == 1


def test_a_rule_written_on_one_node_is_enforced_by_the_other(two_nodes):
    one, two, lab = two_nodes
    wait_until(lambda: pings(lab, "h3", "h4"), 30, what="h3 to reach h4 through node two's switch")
    assert pings(lab, "h1", "h2")

    deny = {
        "id": 5,
        "priority": 100,
        "action": "deny",
        "match": {"ip_proto": "icmp", "ip_src": "10.0.0.3", "ip_dst": "10.0.0.4"},
    }
    resp = one.rest.request("POST", RULES, deny)
    assert resp.status == 201, resp
    written = time.monotonic()
    wait_until(lambda: rule_ids(two) == [5], FOLLOW_LIMIT, interval=0.05, what="node two to list rule 5")
    listed = time.monotonic() - written
    wait_until(lambda: not pings(lab, "h3", "h4"), FOLLOW_LIMIT, interval=0.05, what="node two's switch to drop h3's ping")
    enforced = time.monotonic() - written
    print("node two listed the rule after %.3fs, its switch dropped the ping after %.3fs" % (listed, enforced))
    assert pings(lab, "h1", "h2"), "the rule denies only h3 to h4"

    resp = one.rest.request("DELETE", RULES + "/5")
    assert resp.status in (200, 204), resp
    deleted = time.monotonic()
    wait_until(lambda: rule_ids(two) == [], FOLLOW_LIMIT, interval=0.05, what="node two to drop rule 5")
    wait_until(lambda: pings(lab, "h3", "h4"), FOLLOW_LIMIT, interval=0.05, what="h3 to reach h4 again")
    print("node two lifted the rule after %.3fs" % (time.monotonic() - deleted))
    assert rule_ids(one) == []


def get(ctl, path):
    resp = ctl.rest.request("GET", path)
    assert resp.status == 200, resp
    return resp.json


def send(ctl, method, path, body=None):
    resp = ctl.rest.request(method, path, body)
    assert resp.status in (200, 201, 204), resp
    return resp


def policy_ids(ctl):
    return sorted(p["id"] for p in get(ctl, POLICIES))


def meter_packets(bridge, meter):
    """Packets meter `meter` of `bridge` has seen (None: no such meter)."""
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "meter-stats", bridge, "meter=%d" % meter],
                         capture_output=True, text=True, timeout=15, check=False).stdout
    for line in out.splitlines():
        if line.strip().startswith("meter:%d " % meter) and "packet_in_count:" in line:
            return int(line.split("packet_in_count:")[1].split()[0])
    return None


def qos_flows(bridge, policy):
    """s2's entries of QoS policy `policy` (cookie 0xf006 << 48 | id)."""
    return [f for f in ovs.dump_flows(bridge) if f.cookie == (0xF006 << 48) | policy]


def qos_meter(policy):
    return 0x06000000 | policy


def test_qos_and_hostaware_writes_on_one_node_work_on_the_other(two_nodes):
    one, two, lab = two_nodes
    wait_until(lambda: pings(lab, "h3", "h4"), 30, what="h3 to reach h4 through node two's switch")

    policy = {"id": 7, "priority": 100, "match": {"ip_src": "10.0.0.3"}, "actions": {"meter": {"rate": 1000}}}
    send(one, "POST", POLICIES, policy)
    written = time.monotonic()
    wait_until(lambda: policy_ids(two) == [7], FOLLOW_LIMIT, interval=0.05, what="node two to list policy 7")
    wait_until(lambda: qos_flows("s2", 7), FOLLOW_LIMIT, interval=0.05, what="policy 7's entries on s2")
    print("\nnode two put the QoS policy on its switch after %.3fs" % (time.monotonic() - written))
    (flow,) = qos_flows("s2", 7)
    assert "meter:%d" % qos_meter(7) in flow.actions, flow
    before = meter_packets("s2", qos_meter(7))
    assert before is not None, "meter on s2"
    assert pings(lab, "h3", "h4")
    wait_until(lambda: meter_packets("s2", qos_meter(7)) >= before + 1, 10,
               what="h3's ping to go through the meter")

    send(one, "DELETE", POLICIES + "/7")
    wait_until(lambda: policy_ids(two) == [], FOLLOW_LIMIT, interval=0.05, what="node two to drop policy 7")
    wait_until(lambda: not qos_flows("s2", 7), FOLLOW_LIMIT, interval=0.05, what="policy 7 gone from s2")
    assert meter_packets("s2", qos_meter(7)) is None, "its meter too"

    send(one, "POST", HA + "/hosts", {"id": "h3", "ip": "10.0.0.3"})
    rule = {"id": 3, "hosts": {"host": "h3"}, "metric": "load_one", "comparator": ">", "threshold": 4,
            "action": {"type": "rate_limit", "kbps": 500}}
    send(one, "POST", HA + "/rules", rule)
    wait_until(lambda: [r["id"] for r in get(two, HA + "/rules")] == [3], FOLLOW_LIMIT, interval=0.05,
               what="node two to list host-aware rule 3")
    assert [h["id"] for h in get(two, HA + "/hosts")] == ["h3"]
    send(one, "DELETE", HA + "/rules/3")
    wait_until(lambda: get(two, HA + "/rules") == [], FOLLOW_LIMIT, interval=0.05,
               what="node two to drop rule 3")


class SyntheticRrd:
    """One Ganglia RRD file (`<root>/web/h3/fg_load.rrd`, 10 s step), written
    with rows in the past: the reader takes the newest complete row."""

    STEP = 10

    def __init__(self, root):
        self.root = str(root)
        path = root / "web" / "h3"
        path.mkdir(parents=True)
        self.path = str(path / "fg_load.rrd")
        self.t = int(time.time()) - 1000
        self.t -= self.t % self.STEP
        subprocess.run(["rrdtool", "create", self.path, "--start", str(self.t), "--step", str(self.STEP),
                        "DS:sum:GAUGE:60:U:U", "RRA:AVERAGE:0.5:1:200"], check=True, timeout=10)

    def write(self, value, rows=10):
        updates = []
        for _ in range(rows):
            self.t += self.STEP
            updates.append("%d:%s" % (self.t, value))
        subprocess.run(["rrdtool", "update", self.path, *updates], check=True, timeout=10)


def events(ctl, kind=None):
    return [e for e in get(ctl, HA + "/events?since=0") if kind is None or e["kind"] == kind]


def reactions(ctl, host):
    return get(ctl, HA + "/hosts/" + host)["status"]["reactions"]


def hostaware_policies(ctl):
    """Host-aware's QoS policies, without where this node placed them."""
    return [{k: v for k, v in p.items() if k != "switches"}
            for p in get(ctl, POLICIES) if (p.get("origin") or "").startswith("hostaware/")]


def masters(ctl):
    """{dpid: master} in this node's view of the cluster."""
    return {int(sw["dpid"].replace(":", ""), 16): sw.get("master") for sw in get(ctl, "/api/v1/cluster")["switches"]}


@pytest.mark.timeout_secs(240)
def test_a_threshold_crossing_is_acted_on_once_and_the_next_actor_takes_it_over(two_clustered_nodes, tmp_path):
    one, two, lab = two_clustered_nodes
    for ctl in (one, two):
        wait_until(lambda ctl=ctl: masters(ctl) == {1: "one", 2: "two"}, 60, what="each node to master its switch")
    wait_until(lambda: pings(lab, "h3", "h4"), 30, what="h3 to reach h4 through node two's switch")
    rrd = SyntheticRrd(tmp_path / "rrd")
    rrd.write(9)

    send(one, "PUT", HA + "/settings", {"rrd_root": rrd.root, "stale_after_s": 3600})
    send(one, "POST", HA + "/hosts", {"id": "h3", "ip": "10.0.0.3", "cluster": "web"})
    send(one, "POST", HA + "/rules", {
        "id": 1, "hosts": {"host": "h3"}, "metric": "fg_load", "comparator": ">", "threshold": 5,
        "clear": 2, "interval_s": 1, "action": {"type": "rate_limit", "kbps": 2000},
    })
    wait_until(lambda: events(two, "ACTION_APPLIED"), 30, interval=0.2, what="the rate limit to be applied")
    # Node two follows the actor: its record, its policy, on its switch.
    wait_until(lambda: [r["rule"] for r in reactions(two, "h3")] == [1], FOLLOW_LIMIT, interval=0.1,
               what="node two to list the reaction")
    (policy,) = wait_until(lambda: hostaware_policies(two), FOLLOW_LIMIT, interval=0.1,
                           what="node two to list the rate limit")
    wait_until(lambda: qos_flows("s2", policy["id"]), FOLLOW_LIMIT, interval=0.1, what="the rate limit on s2")
    assert hostaware_policies(one) == [policy]
    since = reactions(two, "h3")[0]["since"]
    assert reactions(one, "h3") == reactions(two, "h3")
    # The actor keeps polling (its board has the value); node two polls
    # nothing, so it applied nothing of its own.
    assert get(one, HA + "/hosts/h3")["status"]["metrics"]["fg_load"]["value"] == 9
    assert "fg_load" not in get(two, HA + "/hosts/h3")["status"].get("metrics", {})
    assert len(events(two, "ACTION_APPLIED")) == 1, events(two)

    # Node one dies: node two masters the only switch left and acts.
    one.kill9()
    killed = time.monotonic()
    wait_until(lambda: masters(two).get(1) is None, 30, what="s1's mastership to end with node one's lease")
    wait_until(lambda: get(two, HA + "/hosts/h3")["status"].get("metrics", {}).get("fg_load", {}).get("value") == 9,
               30, interval=0.2, what="node two to poll h3 as the new actor")
    print("\nnode two acted for the cluster %.1fs after node one's kill" % (time.monotonic() - killed))
    assert len(events(two, "ACTION_APPLIED")) == 1, "not applied again: %s" % events(two)
    assert [(r["rule"], r["since"]) for r in reactions(two, "h3")] == [(1, since)]
    assert hostaware_policies(two) == [policy]

    # The metric recovers: the new actor reverts what the old one applied.
    rrd.write(1)
    wait_until(lambda: events(two, "REVERTED"), 30, interval=0.2, what="node two to revert the rate limit")
    assert hostaware_policies(two) == [] and reactions(two, "h3") == []
    wait_until(lambda: not qos_flows("s2", policy["id"]), FOLLOW_LIMIT, interval=0.1, what="the rate limit off s2")
    kinds = [e["kind"] for e in events(two) if e.get("rule") == 1]
    print("audit trail of rule 1: %s" % " ".join(kinds))
    assert kinds.count("ACTION_APPLIED") == 1 and kinds.count("REVERTED") == 1, kinds
