"""Unit tests of the lab harness itself (no root, no OVS needed)."""

from flowgate_lab.__main__ import parse_switch
from flowgate_lab.checks import compare_flow_snapshots
from flowgate_lab.cluster import balanced, cluster_args, mastered
from flowgate_lab.ovs import cookie_owner, parse_dump_flows
from flowgate_lab.rest import dpid_str
from flowgate_lab.topos import make_topo

DUMP = """\
 cookie=0xf001000000000000, duration=12.500s, table=0, n_packets=7, n_bytes=420, priority=0 actions=goto_table:1
 cookie=0xf002000000000003, duration=3.250s, table=4, n_packets=5, n_bytes=490, send_flow_rem idle_timeout=60, priority=100,metadata=0x1,dl_dst=00:00:00:00:00:02 actions=output:2
 cookie=0x0, duration=1.000s, table=0, n_packets=0, n_bytes=0, reset_counts priority=10,arp,in_port=1 actions=drop
"""


def test_parse_dump_flows_reads_stats_match_and_actions():
    core, fwd, foreign = parse_dump_flows(DUMP)
    assert (core.table, core.priority, core.match, core.actions) == (0, 0, {}, "goto_table:1")
    assert core.owner == "core" and core.duration == 12.5 and core.n_packets == 7
    assert fwd.owner == "forwarding" and fwd.idle_timeout == 60 and fwd.flags == {"send_flow_rem"}
    assert fwd.match == {"metadata": "0x1", "dl_dst": "00:00:00:00:00:02"}
    assert fwd.actions == "output:2" and fwd.n_bytes == 490
    assert foreign.owner is None and foreign.flags == {"reset_counts"}
    assert foreign.match == {"arp": True, "in_port": "1"}


def test_flow_key_ignores_counters_and_field_order():
    a = parse_dump_flows(" cookie=0x1, duration=1s, table=2, n_packets=1, priority=5,in_port=1,dl_vlan=3 actions=drop")
    b = parse_dump_flows(" cookie=0x1, duration=9s, table=2, n_packets=7, priority=5,dl_vlan=3,in_port=1 actions=drop")
    assert a[0].key == b[0].key


def test_cookie_owner_names_mirror_cookie_rs():
    assert cookie_owner(0xF001 << 48) == "core"
    assert cookie_owner((0xF008 << 48) | 5) == "topology"
    assert cookie_owner(0x0001 << 48) is None


def test_compare_snapshots_flags_resets_and_excuses_idle_expiry():
    before_flows = parse_dump_flows(DUMP)[:2]
    before = {"s1": {f.key: f for f in before_flows}}
    reset = parse_dump_flows(DUMP.replace("duration=12.500s", "duration=0.100s"))[:1]
    problems, excused = compare_flow_snapshots(before, {"s1": {f.key: f for f in reset}}, elapsed=70)
    assert any("duration reset" in p for p in problems)
    assert len(excused) == 1 and "idle-expired" in excused[0]
    problems, _ = compare_flow_snapshots(before, {"s1": {f.key: f for f in reset}}, elapsed=5)
    assert any("flow gone" in p for p in problems)


def test_topology_specs():
    linear = make_topo("linear,3")
    assert sorted(linear.switches()) == ["s1", "s2", "s3"] and len(linear.hosts()) == 3
    tree = make_topo("tree,2,3")
    assert len(tree.switches()) == 4 and len(tree.hosts()) == 9
    mesh = make_topo("mesh,4")
    assert len(mesh.links()) == 4 + 6
    ring = make_topo("ring,4")
    assert len(ring.links()) == 4 + 4


def test_switch_spec_and_dpid_format():
    assert parse_switch("ovs,datapath=user,protocols=OpenFlow13,fail_mode=secure") == {
        "datapath": "user",
        "protocols": "OpenFlow13",
        "failMode": "secure",
    }
    assert dpid_str(1) == "00:00:00:00:00:00:00:01"
    assert dpid_str(0xC001) == "00:00:00:00:00:00:c0:01"


def test_cluster_shares_and_balance():
    view = {1: ("a", 10, ("a", "b", "c")), 2: ("b", 11, ("a", "b", "c")), 3: ("a", 12, ("a", "b", "c"))}
    assert mastered(view) == {"a": [1, 3], "b": [2]}
    assert not balanced(view, ("a", "b", "c"))  # c masters none, a two
    assert balanced(view, ("a", "b"))


def test_cluster_args_join_every_etcd_endpoint():
    args = cluster_args(["127.0.0.1:1", "127.0.0.1:2"], "b", 3000)
    assert args[args.index("--etcd-endpoints") + 1] == "127.0.0.1:1,127.0.0.1:2"
    assert args[args.index("--node-id") + 1] == "b" and "--cluster" in args
    assert args[args.index("--lease-ttl-ms") + 1] == "3000"
