"""Private overlays end to end (issue 4): three emulated cloud hosts whose
Open vSwitch only points at Flowgate (`ovs-vsctl set-manager`); Flowgate
creates br-int, its controller setting and the VXLAN tunnels over OVSDB.
Two tenants use the same addresses (10.0.0.1-3) on all three hosts
(topologies/overlay3.yaml: hosts h1-h3, VMs bN, rN, xN on host N).

Blue ports are bound with configured MAC and IP; red ports with neither
(Flowgate learns them from traffic)."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from flowgate_lab import parse_dump_flows, scenario, wait_until
from flowgate_lab.checks import compare_flow_snapshots
from flowgate_lab.cloud import Capture, Cloud, _ns, iperf_ns, ping_ns

from conftest import new_controller, release_controller, topology

SCENARIO = scenario.load(topology("overlay3"))
N_HOSTS = len(SCENARIO.cloud.hosts)
VNI = {"blue": 100, "red": 200}
PUSH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "flowgate-push")
GRACE = 3  # seconds a host without OVSDB keeps its tunnels (flag below)
OVERLAY_OWNER = 0xF003


def blue_mac(n):
    return "02:00:00:00:01:%02x" % n


def ip(n):
    return "10.0.0.%d" % n


class Lab:
    def __init__(self, cloud, ctl):
        self.cloud, self.ctl = cloud, ctl
        self.hosts = {h.index: h for h in cloud.hosts}
        self.manager = "tcp:%s:%d" % (cloud.mgmt_ip, ctl.ovsdb_port)

    def rest(self, method, path, body=None):
        return self.ctl.rest.request(method, "/api/v1" + path, body)

    def vm(self, name):
        """Namespace of VM `name` (b1, r2, ...), which lives on host int(name[1:])."""
        return self.hosts[int(name[1:])].vms[name]

    def chassis(self):
        return self.rest("GET", "/chassis").json

    def overlay_flows(self, host):
        text = self.hosts[host].ofctl("dump-flows", "br-int", "--no-names")
        return [f for f in parse_dump_flows(text) if f.cookie >> 48 == OVERLAY_OWNER]

    def mac_of(self, vm):
        out = _ns(self.vm(vm), "ip", "-o", "link", "show", "eth0")
        return re.search(r"link/ether ([0-9a-f:]{17})", out).group(1)


def _chassis_ready(lab):
    hosts = lab.chassis() or []
    if len(hosts) != N_HOSTS:
        return False
    for h in hosts:
        br = h.get("bridge")
        if not br or not h["connected"] or not br["controllers"] or not br["controllers"][0]["connected"]:
            return False
        if len([t for t in h["tunnels"] if (t["ofport"] or -1) > 0]) != N_HOSTS - 1:
            return False
    return hosts


@pytest.fixture(scope="module")
def lab():
    cloud = Cloud.from_scenario(SCENARIO.cloud, prefix="fgo")
    cloud.start()
    ctl = None
    try:
        # The harness gives flowgate --ovsdb-listen <of_host>:<free port>.
        ctl = new_controller(of_host=cloud.mgmt_ip, extra_args=["--overlay-host-grace", str(GRACE)])
        assert ctl.ovsdb_port, "this flowgate build has no OVSDB listener"
        lab = Lab(cloud, ctl)
        # The only per-host configuration: point ovsdb-server at Flowgate.
        for host in cloud.hosts:
            host.set_manager(lab.manager)
        wait_until(lambda: _chassis_ready(lab), 60, interval=0.5, what="3 hosts with br-int and tunnels")
        # On each host n: bn (blue_mac(n), ip(n)), rn (ip(n)) and xn, an
        # interface on br-int that no network binds (10.0.0.5n).
        cloud.add_vms(SCENARIO.cloud)
        for name in ("blue", "red"):
            r = lab.rest("POST", "/networks", {"id": name, "tenant": "tenant-" + name, "vni": VNI[name],
                                               "subnet": "10.0.0.0/24"})
            assert r.status == 201, r
        for host in cloud.hosts:
            n = host.index
            r = lab.rest("POST", "/networks/blue/ports",
                         {"iface_id": "b%d" % n, "mac": blue_mac(n), "ips": [ip(n)]})
            assert r.status == 201, r
            r = lab.rest("POST", "/networks/red/ports", {"iface_id": "r%d" % n})
            assert r.status == 201, r

        def all_bound():
            ports = lab.rest("GET", "/networks/blue/ports").json + lab.rest("GET", "/networks/red/ports").json
            return all(p["status"]["bound"] for p in ports) and len(ports) == 2 * N_HOSTS

        wait_until(all_bound, 30, what="every port bound")
        yield lab
    finally:
        if ctl is not None:
            release_controller(ctl)
        cloud.stop()


@pytest.mark.timeout_secs(120)
def test_hosts_join_by_set_manager_and_get_tunnels(lab):
    by_ip = {h.underlay_ip: h for h in lab.cloud.hosts}
    for h in lab.chassis():
        br = h["bridge"]
        assert (br["name"], br["fail_mode"], br["datapath_type"]) == ("br-int", "secure", "netdev"), br
        assert "OpenFlow13" in br["protocols"]
        assert br["controllers"][0]["target"].startswith("tcp:%s:" % lab.cloud.mgmt_ip)
        assert h["encap_ip"] in by_ip, h
        remotes = sorted(t["remote_ip"] for t in h["tunnels"])
        assert remotes == sorted(ip_ for ip_ in by_ip if ip_ != h["encap_ip"]), h["tunnels"]
        assert all(t["type"] == "vxlan" and t["local_ip"] == h["encap_ip"] for t in h["tunnels"])
    # The hosts' own view agrees (options:key=flow).
    out = lab.hosts[1].vsctl("--bare", "--columns=options", "find", "interface", "type=vxlan")
    assert out.count("key=flow") == N_HOSTS - 1, out


@pytest.mark.timeout_secs(120)
def test_same_tenant_pings_across_hosts_with_vni_on_the_underlay(lab):
    with Capture(lab.cloud.under_ns, "u-h1", "udp port 4789") as cap:
        for tenant in ("b", "r"):
            for dst in (2, 3):
                got = ping_ns(lab.vm("%s1" % tenant), ip(dst), count=3)
                assert got >= 2, "%s1 -> %s: %d/3" % (tenant, ip(dst), got)
        lines = cap.stop()
    text = "\n".join(lines)
    assert "vni %d" % VNI["blue"] in text, text[-2000:]
    assert "vni %d" % VNI["red"] in text, text[-2000:]
    # Red was learned from traffic.
    red = {p["id"]: p for p in lab.rest("GET", "/networks/red/ports").json}
    assert red["r1"]["status"]["mac"] == lab.mac_of("r1")
    assert red["r1"]["status"]["ips"] == [ip(1)]


@pytest.mark.timeout_secs(120)
def test_cross_tenant_traffic_never_arrives(lab):
    b1, r1 = blue_mac(1), lab.mac_of("r1")
    x1 = lab.mac_of("x1")
    caps = {
        name: Capture(lab.vm(name), "eth0", "ether src %s or ether src %s or ether src %s" % (b1, r1, x1)).start()
        for name in ("b2", "b3", "r2", "r3")
    }
    try:
        # Same addresses in both tenants: unicast, broadcast, and an unbound port.
        ping_ns(lab.vm("b1"), ip(2), count=3)
        ping_ns(lab.vm("b1"), ip(3), count=3)
        _ns(lab.vm("b1"), "ping", "-b", "-c", "2", "-i", "0.2", "-W", "1", "10.0.0.255", check=False)
        ping_ns(lab.vm("r1"), ip(2), count=3)
        _ns(lab.vm("r1"), "ping", "-b", "-c", "2", "-i", "0.2", "-W", "1", "10.0.0.255", check=False)
        assert ping_ns(lab.vm("x1"), ip(2), count=2, wait=1) == 0
        assert ping_ns(lab.vm("x1"), "10.0.0.52", count=2, wait=1) == 0
    finally:
        seen = {name: cap.stop() for name, cap in caps.items()}
    for blue in ("b2", "b3"):
        lines = seen[blue]
        assert any(b1 in l for l in lines), "%s saw nothing of b1" % blue
        assert not any(r1 in l or x1 in l for l in lines), "%s saw red/unbound traffic: %s" % (blue, lines)
    for red in ("r2", "r3"):
        lines = seen[red]
        assert any(r1 in l for l in lines), "%s saw nothing of r1" % red
        assert not any(b1 in l or x1 in l for l in lines), "%s saw blue/unbound traffic: %s" % (red, lines)


@pytest.mark.timeout_secs(120)
def test_iperf_within_tenants(lab):
    blue = iperf_ns(lab.vm("b1"), lab.vm("b3"), ip(3), seconds=3)
    red = iperf_ns(lab.vm("r2"), lab.vm("r1"), ip(1), seconds=3)
    print("\niperf3 through VXLAN: blue b1->b3 %.0f Mbit/s, red r2->r1 %.0f Mbit/s" % (blue, red))
    assert blue > 10 and red > 10, (blue, red)


@pytest.mark.timeout_secs(120)
def test_arp_is_answered_on_the_host(lab):
    def responder_packets():
        return sum(f.n_packets for f in lab.overlay_flows(1)
                   if (f.cookie >> 32) & 0xFF == 5 and f.cookie & 0xFFFFFF == VNI["blue"])

    before = responder_packets()
    _ns(lab.vm("b1"), "ip", "neigh", "flush", "dev", "eth0")
    with Capture(lab.cloud.under_ns, "u-h1", "udp port 4789") as cap:
        assert ping_ns(lab.vm("b1"), ip(3), count=2) >= 1
        lines = cap.stop()
    assert not any("ARP" in l for l in lines), [l for l in lines if "ARP" in l]
    neigh = _ns(lab.vm("b1"), "ip", "neigh", "show", ip(3))
    assert blue_mac(3) in neigh, neigh
    wait_until(lambda: responder_packets() > before, 5, what="ARP responder counter to grow")


@pytest.mark.timeout_secs(120)
def test_neighbor_discovery_is_answered_on_the_host(lab):
    for n in (1, 3):
        vm = lab.vm("b%d" % n)
        _ns(vm, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0")
        _ns(vm, "ip", "-6", "addr", "add", "fd00::%d/64" % n, "dev", "eth0", "nodad")
        r = lab.rest("PUT", "/ports/b%d" % n, {"network": "blue", "iface_id": "b%d" % n, "mac": blue_mac(n),
                                                "ips": [ip(n), "fd00::%d" % n]})
        assert r.status == 200, r
    with Capture(lab.cloud.under_ns, "u-h1", "udp port 4789") as cap:
        out = _ns(lab.vm("b1"), "ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", "fd00::3", check=False)
        lines = cap.stop()
    assert " 0% packet loss" in out or " 33% packet loss" in out, out
    asked = [l for l in lines if "neighbor solicitation" in l and "fd00::" in l]
    assert asked == [], asked
    neigh = _ns(lab.vm("b1"), "ip", "-6", "neigh", "show", "fd00::3")
    assert blue_mac(3) in neigh, neigh


@pytest.mark.timeout_secs(120)
def test_moved_port_loses_its_old_network_at_once(lab):
    # One PUT moves b2's interface from blue to red.
    r = lab.rest("PUT", "/ports/b2", {"network": "red", "iface_id": "b2", "ips": ["10.0.0.12"]})
    assert r.status == 200, r
    # The blue flows are gone when the PUT answers: nothing of b1 reaches b2.
    with Capture(lab.vm("b2"), "eth0", "ether src %s" % blue_mac(1)) as cap:
        assert ping_ns(lab.vm("b1"), ip(2), count=3, wait=1) == 0
        assert cap.stop() == []
    # The VM takes its red address and is reachable in red only.
    _ns(lab.vm("b2"), "ip", "addr", "flush", "dev", "eth0")
    _ns(lab.vm("b2"), "ip", "addr", "add", "10.0.0.12/24", "dev", "eth0")
    assert ping_ns(lab.vm("r1"), "10.0.0.12", count=3) >= 2
    assert ping_ns(lab.vm("b1"), "10.0.0.12", count=2, wait=1) == 0


@pytest.mark.timeout_secs(120)
def test_bad_input_is_refused_and_changes_nothing(lab):
    before_nets = lab.rest("GET", "/networks").json
    before_flows = {h: sorted(f.key for f in lab.overlay_flows(h)) for h in lab.hosts}
    cases = [
        ("POST", "/networks/nope/ports", {"iface_id": "b1"}, 404, "network"),
        ("POST", "/networks", {"id": "green", "tenant": "t", "vni": VNI["blue"]}, 409, "vni"),
        ("POST", "/networks/red/ports", {"id": "again", "iface_id": "r1"}, 409, "iface_id"),
        ("POST", "/networks/red/ports", {"iface_id": "b1"}, 409, "iface_id"),
        ("POST", "/networks", {"id": "green", "tenant": "t", "vni": 1 << 24}, 422, "vni"),
    ]
    for method, path, body, status, field in cases:
        r = lab.rest(method, path, body)
        assert (r.status, (r.json or {}).get("field")) == (status, field), (path, body, r)
    assert lab.rest("GET", "/networks").json == before_nets
    assert {h: sorted(f.key for f in lab.overlay_flows(h)) for h in lab.hosts} == before_flows


@pytest.mark.timeout_secs(180)
def test_controller_restart_rewrites_no_overlay_flow(lab):
    before = {h: {f.key: f for f in lab.overlay_flows(h)} for h in lab.hosts}
    started = time.time()
    restarts = lab.ctl.log_text().count("flowgate-lab: start #")
    lab.ctl.restart(hard=True)
    assert lab.ctl.log_text().count("flowgate-lab: start #") == restarts + 1

    def reconciled():
        log = lab.ctl.log_text().split("flowgate-lab: start #%d" % (restarts + 1))[-1]
        return log.count("reconciled switch") >= N_HOSTS and _chassis_ready(lab)

    wait_until(reconciled, 60, interval=0.5, what="hosts and switches back after the restart")
    # The module compiles once every host is known again; give it a moment.
    wait_until(lambda: all(p["status"]["bound"] for p in lab.rest("GET", "/networks/red/ports").json),
               20, what="red ports bound again")
    after = {h: {f.key: f for f in lab.overlay_flows(h)} for h in lab.hosts}
    problems, _ = compare_flow_snapshots(before, after, time.time() - started)
    assert not problems, "\n".join(problems)
    assert sorted(before[1]) == sorted(after[1])
    assert ping_ns(lab.vm("r1"), "10.0.0.12", count=2) >= 1


@pytest.mark.timeout_secs(120)
@pytest.mark.skipif(not os.path.exists(PUSH), reason="tools/flowgate-push is missing")
def test_pusher_applies_networks_and_ports(lab, tmp_path):
    # The pusher validates every item by dry run before writing anything,
    # so ports go in a second file once their network exists.
    networks = {"networks": [{"id": "green", "tenant": "tenant-green", "vni": 300, "subnet": "10.0.0.0/24"}]}
    ports = {
        "ports": [
            {"id": "x1", "network": "green", "iface_id": "x1", "ips": ["10.0.0.51"]},
            {"id": "x2", "network": "green", "iface_id": "x2", "mac": lab.mac_of("x2"), "ips": ["10.0.0.52"]},
        ]
    }
    files = []
    for name, doc in (("networks.json", networks), ("ports.json", ports)):
        path = tmp_path / name
        path.write_text(json.dumps(doc))
        files.append(str(path))

    def push(*args):
        proc = subprocess.run([sys.executable, PUSH, "--url", lab.ctl.rest.base_url, *args],
                              capture_output=True, text=True, timeout=60)
        return proc.returncode, proc.stdout + proc.stderr

    for f in files:
        rc, out = push("apply", f)
        assert rc == 0, out
    assert ping_ns(lab.vm("x1"), "10.0.0.52", count=3) >= 2, "green x1 -> x2 across hosts"
    for f in files:
        rc, out = push("diff", f)
        assert rc == 0, "applying again would change something: " + out
    for f in reversed(files):
        rc, out = push("delete", f)
        assert rc == 0, out
    assert lab.rest("GET", "/networks/green").status == 404
    assert lab.rest("GET", "/ports/x1").status == 404
    assert ping_ns(lab.vm("x1"), "10.0.0.52", count=2, wait=1) == 0


@pytest.mark.timeout_secs(120)
def test_deleting_a_network_removes_all_its_flows(lab):
    def red_flows():
        return [f for h in lab.hosts for f in lab.overlay_flows(h) if f.cookie & 0xFFFFFF == VNI["red"]]

    assert red_flows()
    r = lab.rest("DELETE", "/networks/red")
    assert r.status == 200, r
    assert sorted(r.json["ports"]) == ["b2", "r1", "r2", "r3"]
    assert red_flows() == []
    assert ping_ns(lab.vm("r1"), ip(2), count=2, wait=1) == 0
    # Blue is unaffected.
    assert ping_ns(lab.vm("b1"), ip(3), count=2) >= 1


@pytest.mark.timeout_secs(120)
def test_a_host_leaving_loses_its_tunnels_and_rejoins(lab):
    h3 = lab.hosts[3]

    def tunnels_on(host):
        out = lab.hosts[host].vsctl("--bare", "--columns=options", "find", "interface", "type=vxlan")
        return out.count("remote_ip=%s" % h3.underlay_ip)

    wait_until(lambda: tunnels_on(1) == 1 and tunnels_on(2) == 1, 30, what="tunnels to h3 in place")
    h3.del_manager()
    started = time.time()
    try:
        wait_until(lambda: tunnels_on(1) == 0 and tunnels_on(2) == 0, GRACE + 15,
                   what="tunnels to h3 removed on h1 and h2")
        assert time.time() - started >= GRACE - 0.5, "tunnels removed before the grace period"
    finally:
        # Later tests need h3 managed again, whatever happened here.
        h3.set_manager(lab.manager)
    wait_until(lambda: tunnels_on(1) == 1 and tunnels_on(2) == 1, 30, what="tunnels to h3 back")
    wait_until(lambda: ping_ns(lab.vm("b1"), ip(3), count=1) == 1, 20, what="b1 reaches b3 again")


@pytest.mark.timeout_secs(180)
def test_geneve_is_selectable(lab):
    """Restarted with --tunnel-type geneve, Flowgate replaces every tunnel
    and tenant traffic flows through Geneve with the network's VNI."""
    lab.ctl.extra_args += ["--tunnel-type", "geneve"]
    lab.ctl.restart(hard=False)

    def all_geneve():
        hosts = _chassis_ready(lab)
        return hosts and all(t["type"] == "geneve" for h in hosts for t in h["tunnels"])

    wait_until(all_geneve, 60, interval=0.5, what="every tunnel replaced by Geneve")
    with Capture(lab.cloud.under_ns, "u-h1", "udp port 6081") as cap:
        wait_until(lambda: ping_ns(lab.vm("b1"), ip(3), count=1) == 1, 30, what="b1 reaches b3 over Geneve")
        lines = cap.stop()
    text = "\n".join(lines)
    assert "Geneve" in text and "vni 0x%x" % VNI["blue"] in text, text[-1500:]
