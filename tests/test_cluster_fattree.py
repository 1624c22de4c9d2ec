"""Three Flowgate nodes on a three-member etcd cluster, with every switch of
Mininet's fattree,4 (20 switches, 16 hosts) connected to all three (issue
22, end to end).

Nodes `a` and `b` run in the root namespace; node `c` runs in a network
namespace of its own (flowgate_lab.netns), reaching the switches and etcd
through one veth, so it can be partitioned. Lease 3 s. Tests, in order,
each leaving the cluster settled (one master per switch, confirmed by OVS)
for the next:
1. mastership is balanced and every switch has exactly one master;
2. a firewall rule written on one node holds on the ingress switch of h1
   → h16 mastered by another (the flow is there, pings are dropped), and
   its deletion there too;
3. one etcd member (the raft leader) killed: no mastership change, no ping
   lost, writes still answered;
4. etcd quorum lost: pings go on, writes answer 503 naming the cause;
   quorum back: every node lists every acknowledged rule;
5. kill -9 of the node mastering most switches of h1 → h16 while h1 pings
   h16 at 20/s: 0 pings lost, its switches get new masters (time printed),
   no flow rewritten on any switch;
6. node c cut off: a and b take its switches, OVS shows c master of none,
   c steps down and its REST writes are refused; link back: c writes no
   flow (its flow-mod counters do not move), no flow is rewritten, the
   cluster settles again with c.

Figures go to the output and, with $FLOWGATE_LAB_ARTIFACTS, to
cluster-fattree.json there. Runs in the full test command only (it needs
root and etcd; tools/test-all.sh --quick runs no lab test).
"""

import json
import os
import re
import subprocess
import time

import pytest

from conftest import new_controller, release_controller
from flowgate_lab import LabNet, wait_until
from flowgate_lab import cluster as cl
from flowgate_lab.checks import compare_flow_snapshots, ping_replies, snapshot_flows
from flowgate_lab.etcd import EtcdCluster
from flowgate_lab.netns import ControllerNamespace, NamespacedFlowgate
from flowgate_lab.ovs import dump_flows

LEASE_MS = 3000
INTERVAL = 0.05  # 20 pings a second
NODES = ("a", "b", "c")
DPIDS = list(range(1, 21))
BRIDGES = ["s%d" % d for d in DPIDS]
RULES = "/api/v1/firewall/rules"
INGRESS = "s7"  # h1's edge switch

RESULTS = {}


@pytest.fixture(scope="module")
def fabric(tmp_path_factory):
    """(etcd, namespace, nodes, lab), settled."""
    ns = ControllerNamespace().start()
    etcd = nodes = lab = None
    nodes = {}
    try:
        etcd = EtcdCluster(3, hosts=("127.0.0.1", ns.root_ip), run_dir=str(tmp_path_factory.mktemp("etcd")))
        etcd.start()
        for name in ("a", "b"):
            nodes[name] = new_controller(extra_args=cl.cluster_args(etcd.endpoints(), name, LEASE_MS))
        nodes["c"] = new_controller(kind=NamespacedFlowgate, namespace=ns,
                                    extra_args=cl.cluster_args(etcd.endpoints(ns.root_ip), "c", LEASE_MS))
        lab = LabNet("fattree,4", nodes["a"])
        lab.start(connect_timeout=120)
        cl.point_switches(BRIDGES, nodes)
        cl.wait_settled(nodes, NODES, DPIDS, 120)
        yield etcd, ns, nodes, lab
    finally:
        if lab is not None:
            lab.stop()
        for ctl in nodes.values():
            release_controller(ctl)
        if etcd is not None:
            etcd.stop()
        ns.stop()
        _record()


def _record():
    if not RESULTS:
        return
    print("\ncluster fattree: %s" % json.dumps(RESULTS))
    artifacts = os.environ.get("FLOWGATE_LAB_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        with open(os.path.join(artifacts, "cluster-fattree.json"), "w", encoding="utf-8") as out:
            json.dump(RESULTS, out, indent=2)


def deny_icmp(rule_id, src, dst):
    return {"id": rule_id, "priority": 500, "action": "deny",
            "match": {"ip_proto": "icmp", "ip_src": src, "ip_dst": dst}}


def deny_udp(rule_id):
    return {"id": rule_id, "priority": 10, "action": "deny", "match": {"ip_proto": "udp", "dst_port": 9000 + rule_id}}


def listed_ids(ctl):
    resp = ctl.rest.request("GET", RULES)
    assert resp.status == 200, resp
    return sorted(r["id"] for r in resp.json)


def flow_mods_sent(ctl):
    """Sum of the node's flowgate_flow_mods_total counters."""
    text = ctl.rest.request("GET", "/metrics").text
    return sum(int(float(v)) for v in re.findall(r"^flowgate_flow_mods_total\{[^}]*\} (\S+)$", text, re.M))


class Pinger:
    """h1 pinging h16 at 20/s in the background; `lost()` once done."""

    def __init__(self, lab, count):
        self.count = count
        self.proc = lab["h1"].popen(
            ["ping", "-n", "-i", str(INTERVAL), "-c", str(count), "-W", "1", lab["h16"].IP()],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )

    def lost(self):
        try:
            output, _ = self.proc.communicate(timeout=self.count * INTERVAL + 30)
        finally:
            self.kill()
        return self.count - len(ping_replies(output.decode("utf-8", "replace")))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def path_switches(lab, count=40):
    """Bridges whose Flowgate flows counted h1 ↔ h16 pings (either way)."""

    def packets():
        return {br: sum(f.n_packets for f in dump_flows(br) if f.owner not in (None, "topology")) for br in BRIDGES}

    wait_until(lambda: lab.ping("h1", "h16", count=1) == 1, 60, what="h1 to reach h16")
    before = packets()
    assert lab.ping("h1", "h16", count=count, interval=0.02) == count
    after = packets()
    return [br for br in BRIDGES if after[br] - before[br] >= count]


@pytest.mark.timeout_secs(60)
def test_every_switch_has_one_balanced_master(fabric):
    etcd, ns, nodes, lab = fabric
    agreed = cl.wait_settled(nodes, NODES, DPIDS, 30)
    shares = cl.mastered(agreed)
    RESULTS["shares"] = {n: len(d) for n, d in shares.items()}
    assert cl.balanced(agreed, NODES), shares
    doc = nodes["b"].rest.get("/api/v1/cluster")
    assert {n["id"] for n in doc["nodes"] if n["alive"]} == set(NODES), doc
    assert doc["leader"] in NODES, doc


@pytest.mark.timeout_secs(90)
def test_a_rule_written_on_one_node_holds_on_switches_another_masters(fabric):
    etcd, ns, nodes, lab = fabric
    agreed = cl.wait_settled(nodes, NODES, DPIDS, 30)
    path = path_switches(lab)
    assert INGRESS in path, path
    owner = agreed[int(INGRESS[1:])][0]  # "C": masters h1's ingress switch
    writer = next(n for n in NODES if n != owner)  # "B"
    h1, h16 = lab["h1"].IP(), lab["h16"].IP()

    def rule_flows():
        return [f for f in dump_flows(INGRESS) if f.owner == "firewall" and f.match.get("nw_dst") == h16]

    assert not rule_flows()
    resp = nodes[writer].rest.request("POST", RULES, deny_icmp(4201, h1, h16))
    assert resp.status in (200, 201), resp
    flows = wait_until(rule_flows, 10, interval=0.1, what="the rule's flow on %s (master %s)" % (INGRESS, owner))
    assert lab.ping("h1", "h16", count=3) == 0
    dropped = sum(f.n_packets for f in rule_flows())
    assert dropped >= 3, flows
    RESULTS["rule_on_other_master"] = {"writer": writer, "switch": INGRESS, "master": owner, "dropped": dropped}

    resp = nodes[writer].rest.request("DELETE", RULES + "/4201")
    assert resp.status in (200, 204), resp
    wait_until(lambda: not rule_flows(), 10, interval=0.1, what="the rule's flow to leave %s" % INGRESS)
    assert lab.ping("h1", "h16", count=3) == 3


def _etcd_leader(etcd):
    """The member that is raft leader."""
    out = etcd.ctl("endpoint", "status", "-w", "json")
    assert out.returncode == 0, out.stderr
    for status, member in zip(json.loads(out.stdout), etcd.members):
        if status["Status"]["header"]["member_id"] == status["Status"]["leader"]:
            return member
    raise AssertionError("no etcd leader in %s" % out.stdout)


@pytest.mark.timeout_secs(90)
def test_one_etcd_member_lost_changes_nothing(fabric):
    etcd, ns, nodes, lab = fabric
    before = cl.wait_settled(nodes, NODES, DPIDS, 30)
    victim = _etcd_leader(etcd)
    pinger = Pinger(lab, 200)  # 10 s: more than two lease times
    try:
        time.sleep(1)
        victim.kill()
        answers = {}
        for name, ctl in nodes.items():
            answers[name] = (ctl.rest.request("POST", RULES, deny_udp(1)).status,
                             ctl.rest.request("DELETE", RULES + "/1").status)
        lost = pinger.lost()
        after = cl.settled(nodes, NODES, DPIDS)
    finally:
        pinger.kill()
        victim.start()
        wait_until(lambda: len(etcd.healthy_members()) == 3, 30, what="the etcd member back")
    RESULTS["etcd_member_lost"] = {"member": victim.name, "lost": lost, "masters_unchanged": after == before,
                                   "writes": answers}
    assert after == before, "mastership changed with one etcd member down"
    assert lost == 0, "%d of %d pings lost" % (lost, pinger.count)
    assert all(post in (200, 201) and delete in (200, 204) for post, delete in answers.values()), answers


@pytest.mark.timeout_secs(150)
def test_quorum_loss_keeps_forwarding_and_refuses_writes(fabric):
    etcd, ns, nodes, lab = fabric
    cl.wait_settled(nodes, NODES, DPIDS, 30)
    resp = nodes["a"].rest.request("POST", RULES, deny_udp(2))
    assert resp.status in (200, 201), resp
    pinger = Pinger(lab, 300)  # 15 s
    down = etcd.members[:2]
    try:
        time.sleep(1)
        for member in down:
            member.kill()
        refused = nodes["b"].rest.request("POST", RULES, deny_udp(3))
        # Past the lease: no node holds one, none writes to a switch.
        time.sleep(2 * LEASE_MS / 1000)
    finally:
        for member in down:
            if not member.running():
                member.start()
    try:
        lost = pinger.lost()
    finally:
        pinger.kill()
    etcd.wait_quorum(60)
    RESULTS["quorum_loss"] = {"lost": lost, "refused": refused.status}
    assert lost == 0, "%d of %d pings lost" % (lost, pinger.count)
    assert refused.status == 503, refused
    assert refused.json["error"] == "unavailable" and "etcd" in refused.json["reason"], refused.json
    cl.wait_settled(nodes, NODES, DPIDS, 90)
    for name, ctl in nodes.items():
        assert listed_ids(ctl) == [2], name
    assert nodes["c"].rest.request("DELETE", RULES + "/2").status in (200, 204)


@pytest.mark.timeout_secs(150)
def test_kill9_of_a_path_master_loses_no_ping_and_rewrites_no_flow(fabric):
    etcd, ns, nodes, lab = fabric
    agreed = cl.wait_settled(nodes, NODES, DPIDS, 60)
    path = [int(br[1:]) for br in path_switches(lab)]
    shares = {n: [d for d in path if agreed[d][0] == n] for n in NODES}
    victim = max(NODES, key=lambda n: (len(shares[n]), n))
    moved = cl.mastered(agreed)[victim]
    alive = [n for n in NODES if n != victim]
    before = snapshot_flows(BRIDGES)

    pinger = Pinger(lab, 240)  # 12 s
    try:
        time.sleep(2)
        killed_at = time.monotonic()
        nodes[victim].kill9()

        def reassigned():
            views = [cl.view(nodes[n]) for n in alive]
            return all(v[d][0] in alive for v in views for d in moved)

        wait_until(reassigned, 30, interval=0.05, what="%s's switches to get new masters" % victim)
        failover = time.monotonic() - killed_at
        after_view = cl.wait_settled(nodes, alive, DPIDS, 30, interval=0.1)
        confirmed = time.monotonic() - killed_at
        lost = pinger.lost()
        problems, excused = compare_flow_snapshots(before, snapshot_flows(BRIDGES), time.monotonic() - killed_at)
    finally:
        pinger.kill()
        if not nodes[victim].running():
            nodes[victim].start()
    RESULTS["failover"] = {
        "victim": victim, "path": path, "path_switches_mastered": shares[victim], "moved": len(moved),
        "new_master_s": round(failover, 2), "ovs_confirmed_s": round(confirmed, 2), "lease_ms": LEASE_MS,
        "pings": pinger.count, "lost": lost, "flows": sum(len(f) for f in before.values()),
        "rewritten": problems, "excused": excused,
    }
    print("\nfailover: %s" % RESULTS["failover"])
    assert shares[victim], "the victim masters no switch of the path"
    assert all(after_view[d][1] > agreed[d][1] for d in moved)
    # The lease running out, then etcd's expiry, the election and the
    # assignment: within two lease times (test_cluster.py's bound).
    assert failover < 2 * LEASE_MS / 1000, failover
    assert not problems, problems
    assert lost == 0, "%d of %d pings lost" % (lost, pinger.count)
    cl.wait_settled(nodes, NODES, DPIDS, 60)


def _settled_with_switches(nodes, node):
    agreed = cl.settled(nodes, NODES, DPIDS)
    return agreed if agreed and cl.mastered(agreed).get(node) else None


@pytest.mark.timeout_secs(180)
def test_a_partitioned_node_loses_mastership_and_writes_nothing(fabric):
    etcd, ns, nodes, lab = fabric
    c = nodes["c"]
    agreed = wait_until(lambda: _settled_with_switches(nodes, "c"), 60, what="c to master switches")
    theirs = cl.mastered(agreed)["c"]
    before = snapshot_flows(BRIDGES)
    sent = flow_mods_sent(c)
    log_mark = len(c.log_text())

    ns.cut()
    cut_at = time.monotonic()
    try:
        def taken():
            views = [cl.view(nodes[n]) for n in ("a", "b")]
            return all(v[d][0] in ("a", "b") for v in views for d in theirs)

        wait_until(taken, 30, interval=0.05, what="a and b to take c's switches")
        takeover = time.monotonic() - cut_at

        def ovs_moved():
            roles = cl.ovs_roles(nodes)
            return all(roles["s%d" % d].get("c") != "master"
                       and [roles["s%d" % d].get(n) for n in ("a", "b")].count("master") == 1 for d in DPIDS)

        wait_until(ovs_moved, 30, what="OVS to show a or b master of every switch, c of none")
        confirmed = time.monotonic() - cut_at
        # c knows: it stepped down at its lease deadline, and refuses writes.
        wait_until(lambda: "no longer master of the switch" in c.log_text()[log_mark:], 10,
                   what="c to step down")
        refused = c.rest_inside("POST", RULES, deny_udp(5))
    finally:
        ns.restore()
    assert refused.status == 503, refused

    settled = cl.wait_settled(nodes, NODES, DPIDS, 90)
    problems, excused = compare_flow_snapshots(before, snapshot_flows(BRIDGES), time.monotonic() - cut_at)
    c_log = c.log_text()[log_mark:]
    RESULTS["partition"] = {
        "switches_of_c": len(theirs), "takeover_s": round(takeover, 2), "ovs_confirmed_s": round(confirmed, 2),
        "c_flow_mods": flow_mods_sent(c) - sent, "stale_refusals": c_log.count("stale generation"),
        "rewritten": problems, "excused": excused,
    }
    print("\npartition: %s" % RESULTS["partition"])
    assert takeover < 2 * LEASE_MS / 1000, takeover
    assert all(settled[d][1] > agreed[d][1] for d in theirs)
    assert flow_mods_sent(c) == sent, "c sent flow-mods after the partition"
    assert not problems, problems
    for ctl in nodes.values():
        assert 5 not in listed_ids(ctl)
    assert lab.ping("h1", "h16", count=3) == 3
