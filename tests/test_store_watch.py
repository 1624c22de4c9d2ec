"""Two controllers sharing one etcd prefix follow each other's changes.

One etcd (this test's own, on loopback), two Flowgate processes with
`--store etcd` and the same (default) prefix, each controlling its own
switch: s1 (h1, h2) on node one, s2 (h3, h4) on node two, no link between
them. A firewall rule written through node one's REST API shows in node
two's listing and is enforced by node two's switch (real pings), without a
restart; deleting it on node one lifts it on node two. How long node two
took is printed.
"""

import time

import pytest
from mininet.topo import Topo

from flowgate_lab import LabNet, ovs, wait_until
from flowgate_lab.checks import wait_controller_ready
from test_store_etcd import etcd  # noqa: F401  (the fixture: one etcd on loopback per test)

RULES = "/api/v1/firewall/rules"
# Longest a follower may take to apply another node's change.
FOLLOW_LIMIT = 10


class TwoIslands(Topo):
    """s1 with h1, h2 and s2 with h3, h4; the switches are not linked."""

    def build(self, *args, **params):
        for n in (1, 2):
            switch = self.addSwitch("s%d" % n, dpid="%016x" % n)
            for h in (2 * n - 1, 2 * n):
                self.addLink(self.addHost("h%d" % h), switch)


@pytest.fixture
def two_nodes(etcd, make_controller):
    """(node one, node two, LabNet): s1 on node one, s2 on node two."""
    store = ["--store", "etcd", "--etcd-endpoints", etcd.endpoint]
    one = make_controller(extra_args=store)
    two = make_controller(extra_args=store)
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
