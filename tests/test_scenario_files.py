"""Scenario files (topologies/*.yaml, mininet/flowgate_lab/scenario.py) without
a lab: parsing, validation errors naming file, line and field, the
generators' shapes, the Mininet topology built from a scenario, and the
pusher reading a scenario's policies. No root, no Open vSwitch.

    /usr/bin/python3 -m pytest tests/test_scenario_files.py -v
"""

import glob
import importlib.machinery
import importlib.util
import os

import pytest
from mininet.link import TCLink
from mininet.topo import LinearTopo, SingleSwitchTopo
from mininet.topolib import TreeTopo

from flowgate_lab import scenario as scn
from flowgate_lab.__main__ import load_custom
from flowgate_lab.bringup import Reachability, ping_round
from flowgate_lab.topos import make_topo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPOLOGIES = os.path.join(ROOT, "topologies")
SHIPPED = sorted(os.path.basename(p) for p in glob.glob(os.path.join(TOPOLOGIES, "*.yaml")))

# Where each shipped scenario is brought up and its reachability checked
# end to end (allowed pairs ping, the others do not).
E2E = {
    "campus.yaml": "test_scenarios.py::test_campus_in_one_command",
    "cloud2.yaml": "test_scenarios.py::test_small_scenarios_match_their_expectations",
    "overlay3.yaml": "test_scenarios.py::test_small_scenarios_match_their_expectations",
    "tree22.yaml": "test_scenarios.py::test_small_scenarios_match_their_expectations",
    "linear3.yaml": "test_linear.py::test_pingall",
    "linear3-of10.yaml": "test_of10.py::test_pingall_through_single_table_learning",
    "linear4.yaml": "test_topology.py::test_pingall_without_storm",
    "tree23.yaml": "test_topology.py::test_pingall_without_storm",
    "ring5.yaml": "test_topology.py::test_pingall_without_storm",
    "diamond.yaml": "test_topology.py::test_pingall_without_storm",
    "fattree4.yaml": "test_topology.py::test_pingall_without_storm",
}


def load(name):
    return scn.load(os.path.join(TOPOLOGIES, name))


def errors_of(text, path="t.yaml"):
    with pytest.raises(scn.ScenarioError) as info:
        scn.loads(text, path)
    return str(info.value)


# ---------------------------------------------------------------------------
# Shipped files.


def test_every_shipped_scenario_loads_and_is_checked_end_to_end():
    assert SHIPPED, "topologies/ has no scenarios"
    assert sorted(E2E) == SHIPPED, "a scenario without an end-to-end check, or a stale entry"
    for name in SHIPPED:
        sc = load(name)
        assert sc.switches or sc.cloud, name
        assert sc.expected(), "%s has no pair of endpoints" % name


@pytest.mark.parametrize("name, switches, hosts, links, vms, reach", [
    ("linear3.yaml", 3, 3, 5, 0, 6),
    ("tree22.yaml", 3, 4, 6, 0, 12),
    ("fattree4.yaml", 20, 16, 48, 0, 240),
    ("cloud2.yaml", 0, 0, 0, 2, 0),
    ("overlay3.yaml", 0, 0, 0, 9, 0),  # 72 pairs less 6 with the same address: 66
    ("campus.yaml", 3, 4, 7, 5, 14),
])
def test_shipped_scenario_shapes(name, switches, hosts, links, vms, reach):
    sc = load(name)
    assert (len(sc.switches), len(sc.hosts), len(sc.links), len(sc.vms())) == (switches, hosts, links, vms)
    assert sum(sc.expected().values()) == reach
    if name == "overlay3.yaml":
        assert len(sc.expected()) == 66 and ("b1", "r1") not in sc.expected()


def test_campus_scenario_in_detail():
    sc = load("campus.yaml")
    assert [s.dpid for s in sc.switches] == [1, 2, 3]
    assert sc.host("web1").mac == "02:00:0a:0a:09:01" and sc.host("staff1").ip == "10.10.1.1/16"
    uplinks = [l for l in sc.links if {l.a, l.b} == {"s1", "s2"}]
    assert uplinks[0].params == {"bw": 100}
    guest = [l for l in sc.links if "guest1" in (l.a, l.b)][0]
    assert (guest.b, guest.b_port, guest.params) == ("s2", 2, {"bw": 20})
    assert [h.name for h in sc.cloud.hosts] == ["hv1", "hv2", "hv3"]
    assert [h.underlay_ip for h in sc.cloud.hosts] == ["198.18.0.11", "198.18.0.12", "198.18.0.13"]
    assert list(sc.policies) == ["networks", "ports", "firewall/policy", "firewall/rules", "lb/pools", "lb/vips",
                                 "qos/policies", "hostaware/hosts", "hostaware/rules"]
    want = sc.expected()
    assert want[("guest1", "web1")] and not want[("web1", "guest1")]
    assert want[("staff1", "web1")] and want[("web1", "staff2")] and not want[("staff1", "guest1")]
    assert want[("red1", "red2")] and not want[("red2", "red1")]
    assert not want[("blue1", "red1")] and not want[("staff1", "blue1")]


# ---------------------------------------------------------------------------
# Generators.


@pytest.mark.parametrize("text, switches, hosts, switch_links", [
    ("single 3", 1, 3, 0),
    ("linear k=4", 4, 4, 3),
    ("linear k=3 n=2", 3, 6, 2),
    ("tree depth=2 fanout=3", 4, 9, 3),
    ("tree depth=3 fanout=2", 7, 8, 6),
    ("mesh n=4", 4, 4, 6),
    ("ring n=5", 5, 5, 5),
    ("ring n=4 hosts=2", 4, 8, 4),
    ("diamond", 4, 4, 6),
    ("fattree k=4", 20, 16, 32),
    ("fattree k=8", 80, 128, 256),
])
def test_generators_produce_the_expected_counts(text, switches, hosts, switch_links):
    sc = scn.loads("generate: %s\n" % text)
    names = {s.name for s in sc.switches}
    between = [l for l in sc.links if l.a in names and l.b in names]
    assert (len(sc.switches), len(sc.hosts), len(between)) == (switches, hosts, switch_links)
    assert len(sc.links) == switch_links + hosts
    assert len({s.dpid for s in sc.switches}) == switches


def test_generator_spellings_agree():
    forms = ["generate: fattree k=8", "generate: fattree,8", "generate: fattree 8",
             "generate: {shape: fattree, k: 8}", "generate: {shape: fattree k=8}"]
    shapes = [[(l.a, l.a_port, l.b, l.b_port) for l in scn.loads(f + "\n").links] for f in forms]
    assert all(s == shapes[0] for s in shapes)
    assert scn.from_spec("tree,2,3").generator == "tree depth=2 fanout=3"


def _ports(topo):
    """{frozenset((node, port), (node, port))} of a Mininet Topo."""
    return {frozenset([(i["node1"], i["port1"]), (i["node2"], i["port2"])]) for _, _, i in topo.links(withInfo=True)}


@pytest.mark.parametrize("spec, mininet_topo", [
    ("linear,3", LinearTopo(k=3)),
    ("linear,3,2", LinearTopo(k=3, n=2)),
    ("tree,2,3", TreeTopo(depth=2, fanout=3)),
    ("tree,3,2", TreeTopo(depth=3, fanout=2)),
    ("single,4", SingleSwitchTopo(k=4)),
])
def test_generators_wire_like_mininets_own_topologies(spec, mininet_topo):
    ours = make_topo(spec)
    assert sorted(ours.switches()) == sorted(mininet_topo.switches())
    assert sorted(ours.hosts()) == sorted(mininet_topo.hosts())
    assert _ports(ours) == _ports(mininet_topo)


def test_fattree_ports_follow_the_documented_numbering():
    k, half = 4, 2
    sc = scn.from_spec("fattree,%d" % k)
    ports = {}
    for l in sc.links:
        ports[(l.a, l.a_port)] = l.b
        ports[(l.b, l.b_port)] = l.a
    cores = ["s%d" % i for i in range(1, half * half + 1)]
    for pod in range(k):
        base = half * half + 1 + pod * k
        aggs = ["s%d" % (base + a) for a in range(half)]
        edges = ["s%d" % (base + half + e) for e in range(half)]
        for edge in edges:
            assert all(ports[(edge, p)].startswith("h") for p in range(1, half + 1))
            assert [ports[(edge, half + 1 + a)] for a in range(half)] == aggs
        for a, agg in enumerate(aggs):
            assert [ports[(agg, p)] for p in range(1, half + 1)] == edges
            assert [ports[(agg, half + 1 + c)] for c in range(half)] == cores[a * half:(a + 1) * half]
        for core in cores:
            assert ports[(core, pod + 1)] in aggs
    assert ports[("h1", 0)] == "s7"  # first edge switch of pod 0


def test_scenario_topo_carries_names_dpids_addresses_and_link_classes():
    topo = make_topo(os.path.join(TOPOLOGIES, "campus.yaml"))
    assert topo.nodeInfo("s2")["dpid"] == "0000000000000002"
    assert "protocols" not in topo.nodeInfo("s2")  # the lab's default
    assert topo.nodeInfo("web1") == {"ip": "10.10.9.1/16", "mac": "02:00:0a:0a:09:01"}
    links = {frozenset([i["node1"], i["node2"]]): i for _, _, i in topo.links(withInfo=True)}
    assert issubclass(links[frozenset(["s1", "s2"])]["cls"], TCLink) and links[frozenset(["s1", "s2"])]["bw"] == 100
    assert "cls" not in links[frozenset(["s2", "s3"])]
    of10 = make_topo(os.path.join(TOPOLOGIES, "linear3-of10.yaml"))
    assert of10.nodeInfo("s1")["protocols"] == "OpenFlow10"


# ---------------------------------------------------------------------------
# The format: explicit nodes, refinements, defaults.


def test_explicit_nodes_ports_and_addresses():
    sc = scn.loads("""
openflow: [1.0, "1.3"]
switches:
  - {name: core, dpid: "00:00:00:00:00:00:01:00"}
  - {name: s7, openflow: "1.3"}
links:
  - ["core:5", s7]
hosts:
  - {name: a, switch: core, port: 9, mac: 52:54:00:12:34:56, ipv6: "fd00::1"}
  - {name: b, switch: s7, ip: 192.168.1.2}
""")
    core, s7 = sc.switches
    assert (core.dpid, core.protocols, s7.dpid, s7.protocols) == (0x100, "OpenFlow10,OpenFlow13", 7, "OpenFlow13")
    a, b = sc.hosts
    assert a.mac == "52:54:00:12:34:56", "not read as a base-60 number"
    assert a.ipv6 == ["fd00::1/64"] and a.address == "10.0.0.1"  # Mininet's, by name order
    assert b.ip == "192.168.1.2/24"
    assert [(l.a, l.a_port, l.b, l.b_port) for l in sc.links] == [("a", 0, "core", 9), ("b", 0, "s7", 1),
                                                                    ("core", 5, "s7", 2)]


def test_explicit_entries_refine_generated_ones():
    sc = scn.loads("""
generate: linear k=2
switches: [{name: s2, dpid: 0x22}]
hosts: [{name: h2, ip: 10.9.0.2/24}]
links: [[h1, s2]]
""")
    assert sc.switch("s2").dpid == 0x22 and sc.host("h2").ip == "10.9.0.2/24"
    assert sc.links[-1].a == "h1" and sc.links[-1].a_port == 1 and sc.links[-1].b_port == 3


def test_generated_link_settings_apply_to_switch_links_only():
    sc = scn.loads("generate: {shape: linear, k: 3, link: {bw: 10, delay: 2}}\n")
    for l in sc.links:
        is_switch_link = l.a.startswith("s") and l.b.startswith("s")
        assert l.params == ({"bw": 10, "delay": "2ms"} if is_switch_link else {}), l


def test_cloud_defaults_and_vm_fields():
    sc = scn.loads("""
cloud:
  hosts:
    - name: hv1
      vms: [{name: vm1, ip: 10.1.0.1/24, iface_id: port-17, mtu: 1400, ipv6: ["fd00::1/64"]}]
    - {name: hv2, underlay: 198.18.0.77}
""")
    (h1, h2), vm = sc.cloud.hosts, sc.cloud.hosts[0].vms[0]
    assert (sc.cloud.subnet, sc.cloud.attach, sc.cloud.prefix24) == ("198.18.0.0/24", "manager", "198.18.0")
    assert (h1.underlay_ip, h1.dpid, h2.underlay_ip, h2.dpid) == ("198.18.0.11", 0xC001, "198.18.0.77", 0xC002)
    assert (vm.iface_id, vm.mtu, vm.address, vm.ipv6) == ("port-17", 1400, "10.1.0.1", ["fd00::1/64"])
    assert sc.endpoints() == {"vm1": "10.1.0.1"}


def test_expect_groups_pairs_and_patterns():
    sc = scn.loads("""
generate: single 4
expect:
  reachable:
    - group: [h1, h2]
    - {from: "h[34]", to: h1}
""")
    want = sc.expected()
    assert sorted(p for p, ok in want.items() if ok) == [("h1", "h2"), ("h2", "h1"), ("h3", "h1"), ("h4", "h1")]
    assert sum(want.values()) == 4 and len(want) == 12
    assert all(scn.loads("generate: single 3\nexpect: {reachable: all}\n").expected().values())
    assert not any(scn.loads("generate: single 3\nexpect: {reachable: none}\n").expected().values())


def test_spec_and_path_shorthands():
    assert scn.is_scenario_path("topologies/ring5.yaml") and scn.is_scenario_path("x.yml")
    assert not scn.is_scenario_path("ring,5")
    assert len(make_topo("ring,5").switches()) == 5
    assert len(make_topo(os.path.join(TOPOLOGIES, "ring5.yaml")).switches()) == 5


# ---------------------------------------------------------------------------
# Errors: every one names the file, the YAML line and the field.

ERRORS = [
    # (text, expected piece of the message)
    ("switches:\n  - {name: s1, dpid: banana}\n", "t.yaml:2: switches[0].dpid: 'banana' is not a datapath id"),
    ("switches:\n  - name: s1\n    openflw: 1.3\n", "t.yaml:3: switches[0].openflw: unknown field (did you mean openflow?)"),
    ("switches:\n  - {name: s1, openflow: 2.0}\n", "t.yaml:2: switches[0].openflow: '2.0' is not an OpenFlow version"),
    ("switches:\n  - {name: core}\n", "t.yaml:2: switches[0]: dpid is required: the name 'core' has no number"),
    ("switches:\n  - {name: s1}\n  - {name: x1}\n", "t.yaml:3: switches: s1 and x1 have the same dpid 0x1"),
    ("switches:\n  - {name: averyverylongname}\n", "switches[0].name: 'averyverylongname' is too long"),
    ("switches: [{name: s1}]\nhosts:\n  - {name: h1, switch: sw1}\n",
     "t.yaml:3: hosts[0].switch: no switch named 'sw1' (did you mean s1?)"),
    ("switches: [{name: s1}]\nhosts:\n  - {name: h1, switch: s1, mac: 01:00:00:00:00:01}\n",
     "t.yaml:3: hosts[0].mac: 01:00:00:00:00:01 is a multicast address"),
    ("switches: [{name: s1}]\nhosts:\n  - {name: h1, switch: s1, ip: 10.0.0.300}\n",
     "t.yaml:3: hosts[0].ip: '10.0.0.300' is not an IPv4 address"),
    ("switches: [{name: s1}]\nhosts:\n  - {name: h1, switch: s1, ip: 10.0.0.0/24}\n",
     "hosts[0].ip: 10.0.0.0 is the network address of 10.0.0.0/24"),
    ("switches: [{name: s1}]\nhosts:\n  - {name: h1, switch: s1, ip: 10.1.0.1}\n  - {name: h2, switch: s1, ip: 10.1.0.1}\n",
     "t.yaml:4: hosts: h1 and h2 both have the address 10.1.0.1"),
    ("switches: [{name: s1}]\nhosts:\n  - {name: h1}\n", "t.yaml:3: hosts: host h1 is not connected"),
    ("switches: [{name: s1}]\nhosts:\n  - {name: h1, switch: s1, port: 1}\n  - {name: h2, switch: s1, port: 1}\n",
     "t.yaml:4: hosts[1].port: port 1 of s1 is already in use"),
    ("switches: [{name: s1}, {name: s2}]\nlinks:\n  - [s1, s3]\n", "t.yaml:3: links[0][1]: no switch or host named 's3'"),
    ("switches: [{name: s1}, {name: s2}]\nlinks:\n  - {ends: [s1, s2], bw: fast}\n",
     "t.yaml:3: links[0].bw: 'fast' must be a positive number"),
    ("switches: [{name: s1}, {name: s2}]\nlinks:\n  - {ends: [s1, s2], delay: soon}\n",
     "t.yaml:3: links[0].delay: 'soon' is not a duration"),
    ("switches: [{name: s1}, {name: s2}]\nlinks:\n  - {ends: [s1, s2], loss: 120}\n",
     "t.yaml:3: links[0].loss: 120 must be a percentage"),
    ("switches: [{name: s1}, {name: s2}]\nlinks:\n  - [s1]\n", "t.yaml:3: links[0]: a link has two ends"),
    ("switches: [{name: s1}, {name: s2}]\nlinks:\n  - [\"s1:x\", s2]\n", "links[0][0]: 's1:x': the port after ':' must be a number"),
    ("generate: fattree k=5\n", "t.yaml:1: generate: k must be even and at least 2, not 5"),
    ("generate: torus 3\n", "t.yaml:1: generate: unknown shape 'torus'"),
    ("generate: tree depth=2 fanot=3\n", "generate: tree has no parameter 'fanot' (did you mean fanout?)"),
    ("generate: ring n=two\n", "generate: ring: n must be a whole number"),
    ("generate: linear 3 n=1 2\n", "generate: linear takes at most 2 values in order"),
    ("cloud:\n  underlay: 10.0.0.0/16\n  hosts: [{name: a}]\n", "t.yaml:2: cloud.underlay: the lab's underlay is a /24"),
    ("cloud:\n  hosts:\n    - {name: a, underlay: 198.18.0.254}\n",
     "t.yaml:3: cloud.hosts[0].underlay: 198.18.0.254 is not a host address of 198.18.0.0/24 other than .254"),
    ("cloud:\n  hosts:\n    - {name: a, dpid: 5}\n", "t.yaml:3: cloud.hosts[0].dpid: only with attach: controller"),
    ("cloud:\n  attach: ovsdb\n  hosts: [{name: a}]\n", "t.yaml:2: cloud.attach: 'ovsdb': manager"),
    ("cloud:\n  hosts:\n    - name: a\n      vms:\n        - {name: vm1, mtu: 9000}\n",
     "t.yaml:5: cloud.hosts[0].vms[0].mtu: 9000: 576..1450"),
    ("cloud:\n  hosts:\n    - name: a\n      vms: [{name: v, ip: 10.0.0.1}]\n    - name: b\n      vms: [{name: v, ip: 10.0.0.2}]\n",
     "VM v: the name is used on two cloud hosts"),
    ("cloud:\n  hosts:\n    - name: a\n      vms: [{name: v}]\npolicies:\n  ports:\n    - {id: p, network: n, iface_id: w}\n",
     "t.yaml:7: policies.ports[0].iface_id: no VM of this file has iface_id 'w'"),
    ("generate: linear k=2\npolicies:\n  ports:\n    - {id: p, network: n, switch: {dpid: 1, port: s1-eth9}}\n",
     "t.yaml:4: policies.ports[0].switch.port: s1 has no port 's1-eth9' (it has s1-eth1, s1-eth2)"),
    ("policies:\n  Firewall Rules: []\n", "t.yaml:2: policies.Firewall Rules: not a resource kind"),
    ("policies:\n  firewall/rules: 5\n", "t.yaml:2: policies.firewall/rules: expected a list (a collection) or a mapping"),
    ("policies:\n  firewall/rules:\n    - 5\n", "t.yaml:3: policies.firewall/rules[0]: expected a mapping, not 5"),
    ("generate: single 2\nexpect:\n  reachable:\n    - group: [h1, h7]\n",
     "t.yaml:4: expect.reachable[0].group[1]: 'h7' names no host or VM"),
    ("generate: single 2\nexpect:\n  reachable:\n    - {from: h1}\n", "t.yaml:4: expect.reachable[0]: either group:"),
    ("generate: single 2\nexpect:\n  reachable: some\n", "t.yaml:3: expect.reachable: all, none, or a list"),
    ("cloud:\n  hosts:\n    - name: a\n      vms: [{name: v1, ip: 10.0.0.1}, {name: v2, ip: 10.0.0.1}, {name: v3, ip: 10.0.0.3}]\n"
     "expect:\n  reachable: [{from: v3, to: v1}]\n", "expect: v1 and v2 share the address 10.0.0.1"),
    ("switchs: []\n", "t.yaml:1: switchs: unknown field (did you mean switches?)"),
    ("- a\n- b\n", "t.yaml:1: expected a mapping, not a list"),
]


@pytest.mark.parametrize("text, message", ERRORS, ids=[m.split(":")[2].strip() if m.startswith("t.yaml:") else m[:30]
                                                       for _, m in ERRORS])
def test_errors_name_file_line_and_field(text, message):
    assert message in errors_of(text)


def test_one_mistake_one_error():
    assert len(errors_of("switches: [{name: s1}]\nhosts:\n  - {name: h1, switch: sw1}\n").splitlines()) == 1


def test_all_errors_are_reported_at_once():
    text = "switches:\n  - {name: s1, dpid: x}\n  - {name: s2, openflow: 9}\n"
    lines = errors_of(text).splitlines()
    assert [l.split(": ")[0] for l in lines] == ["t.yaml:2", "t.yaml:3"], lines


def test_yaml_syntax_errors_and_duplicate_keys_point_at_the_line():
    message = errors_of("switches:\n  - {name: s1}\n  - {name: s2\n")
    assert message.startswith("t.yaml:4: invalid YAML: expected ',' or '}'"), message
    assert "while parsing a flow mapping at line 3" in message, message
    message = errors_of("switches: []\nhosts: []\nswitches: []\n")
    assert message.startswith("t.yaml:3: invalid YAML: duplicate key 'switches' (first on line 1)"), message
    with pytest.raises(scn.ScenarioError, match="cannot read"):
        scn.load("/nonexistent/x.yaml")


# ---------------------------------------------------------------------------
# The pusher reads a scenario's policies, with the same YAML loader.

def _load_push():
    loader = importlib.machinery.SourceFileLoader("flowgate_push", os.path.join(ROOT, "tools", "flowgate-push"))
    spec = importlib.util.spec_from_loader("flowgate_push", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


push = _load_push()

OPENAPI = {"paths": {
    "/api/v1/networks": {"get": {}, "post": {}},
    "/api/v1/networks/{network}": {"get": {}, "put": {}, "delete": {}},
    "/api/v1/firewall/rules": {"get": {}, "post": {}},
    "/api/v1/firewall/rules/{id}": {"get": {}, "put": {}, "delete": {}},
}}


class FakeApi:
    """GET answers for the pusher's planning; no writes."""

    url = "http://fake"

    def get(self, path):
        return OPENAPI if path == "/openapi.json" else []


def test_pusher_and_scenario_loaders_agree():
    text = open(os.path.join(TOPOLOGIES, "campus.yaml"), encoding="utf-8").read()
    ours = scn.parse_yaml(text)
    theirs = push.parse_yaml(text, "campus.yaml")
    assert ours == theirs
    rules_ours, rules_theirs = ours["policies"]["firewall/rules"], theirs["policies"]["firewall/rules"]
    assert rules_ours.item_lines == rules_theirs.item_lines and rules_ours.item_lines
    assert ours["policies"].key_lines == theirs["policies"].key_lines
    assert push.parse_yaml("mac: 52:54:00:12:34:56\n", "x.yaml") == {"mac": "52:54:00:12:34:56"}


def test_pusher_uses_a_scenarios_policies_section(tmp_path):
    doc = push.load_file(os.path.join(TOPOLOGIES, "campus.yaml"))
    assert list(doc) == ["networks", "ports", "firewall/policy", "firewall/rules", "lb/pools", "lb/vips",
                         "qos/policies", "hostaware/hosts", "hostaware/rules"]
    assert push.load_file(os.path.join(TOPOLOGIES, "ring5.yaml")) == {}
    plain = tmp_path / "p.yaml"
    plain.write_text("firewall/rules: []\n")
    assert push.load_file(str(plain)) == {"firewall/rules": []}


def test_pusher_errors_name_the_yaml_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("generate: single 2\npolicies:\n  networks:\n    - {id: blue, vni: 100}\n"
                    "    - {tenant: acme}\n  qos/policies: []\n")
    pusher = push.Pusher(FakeApi())
    with pytest.raises(push.PushError, match=r"s\.yaml:5: networks\[1\]: every item needs its 'network'"):
        pusher.plan(push.load_file(str(path)))
    path.write_text("policies:\n  networks: []\n  qos/policies: []\n")
    with pytest.raises(push.PushError, match=r"s\.yaml:3: unknown kind 'qos/policies'; this controller offers"):
        pusher.plan(push.load_file(str(path)))
    path.write_text("firewall/rules:\n  - {id: 1\n")
    with pytest.raises(push.PushError, match=r"s\.yaml:3:1: invalid YAML"):
        push.load_file(str(path))
    actions = pusher.plan(push.load_file(os.path.join(TOPOLOGIES, "campus.yaml")).__class__(
        {"networks": [{"id": "blue", "vni": 100}]}))
    assert [a.label() for a in actions] == ["create networks blue"]


# ---------------------------------------------------------------------------
# Lab pieces that need no network.


def test_stock_mininet_custom_files_are_read_like_mn_does(tmp_path):
    custom = tmp_path / "topo-2sw-2host.py"
    custom.write_text(
        "from mininet.topo import Topo\n\n"
        "class MyTopo( Topo ):\n"
        "    def build( self ):\n"
        "        h1, h2 = self.addHost( 'h1' ), self.addHost( 'h2' )\n"
        "        s3, s4 = self.addSwitch( 's3' ), self.addSwitch( 's4' )\n"
        "        self.addLink( h1, s3 ); self.addLink( s3, s4 ); self.addLink( s4, h2 )\n\n"
        "topos = { 'mytopo': ( lambda: MyTopo() ) }\n"
        "if __name__ == '__main__':\n    raise SystemExit('not run as a script')\n"
    )
    topos = load_custom(str(custom))
    assert sorted(topos) == ["MyTopo", "mytopo"]
    assert len(topos["mytopo"]().links()) == 3
    example = "/usr/share/doc/mininet/examples/linearbandwidth.py"
    if os.path.exists(example):
        assert "LinearTestTopo" in load_custom(example)


def test_ping_round_and_reachability_report():
    class Shell:
        def __init__(self, out):
            self.out, self.scripts = out, []

        def start(self, script):
            self.scripts.append(script)

        def finish(self):
            return self.out

    a, c = Shell("REACH b\nNOREACH c\n"), Shell("")
    got = ping_round({a: {"b": "10.0.0.2", "c": "10.0.0.3"}, c: {"a": "10.0.0.1"}}, names={a: "a", c: "c"})
    assert got == {("a", "b"): True, ("a", "c"): False, ("c", "a"): False}
    assert "b=10.0.0.2 c=10.0.0.3" in a.scripts[0] and "${t%%=*}" in a.scripts[0]
    expected = {("a", "b"): True, ("a", "c"): False, ("b", "a"): True, ("b", "c"): False,
                ("c", "a"): False, ("c", "b"): False}
    got = dict(expected)
    got[("a", "c")] = True
    result = Reachability(["a", "b", "c"], expected, got)
    assert not result.ok and result.mismatches == [("a", "c")]
    assert "a -> c: reached, expected no reply" in result.summary()
    assert "ok!" in result.table()
