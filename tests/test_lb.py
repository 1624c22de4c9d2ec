"""Load balancing in the switches, end to end on Open vSwitch (issue 15).

tree,2,3: s1 on top, s2/s3/s4 below; h1-h3 on s2, h4-h6 on s3, h7-h9 on s4
(h<n> = 10.0.0.<n>). Backends h1, h4, h7 run `python3 -m http.server` on
8080 answering with their own name; clients h2 and h5 make HTTP requests
to the VIP 10.0.0.100:80, each from its own source port. Health probes come
from 10.0.0.250.

Run with -s to see the measured distribution and failover figures.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import new_controller, release_controller
from flowgate_lab import LabNet, wait_until
from flowgate_lab.checks import wait_controller_ready
from flowgate_lab.ovs import dump_flows
from flowgate_lab.util import run

VIP = "10.0.0.100"
STREAM_VIP = "10.0.0.101"
BACKENDS = ("h1", "h4", "h7")
CLIENTS = ("h2", "h5")
SOURCE = "10.0.0.250"
VMAC = "02:f0:05:00:00:01"
LB = "/api/v1/lb"
INTERVAL, FALL, RISE = 1.0, 2, 2
SWITCHES = ("s1", "s2", "s3", "s4")

CLIENT_SCRIPT = r'''
import json, socket, sys, time
vip, port, first, count, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
out = []
for sport in range(first, first + count):
    for _ in range(repeat):
        got = None
        for attempt in range(3):
            s = socket.socket()
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("", sport))
                s.settimeout(3)
                s.connect((vip, port))
                s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                got = data.split(b"\r\n\r\n", 1)[1].decode().strip()
                break
            except (OSError, IndexError) as e:
                got = "error: %s" % e
                time.sleep(0.05)
            finally:
                s.close()
        out.append([sport, got])
print(json.dumps(out))
'''


class Lab:
    def __init__(self, ctl, net, run_dir):
        self.ctl, self.net, self.run_dir = ctl, net, run_dir
        self.servers = {}
        self.client = os.path.join(run_dir, "lb_client.py")
        with open(self.client, "w", encoding="utf-8") as f:
            f.write(CLIENT_SCRIPT)

    def rest(self, method, path, body=None, want=(200, 201)):
        resp = self.ctl.rest.request(method, LB + path, body)
        assert resp.status in want, "%s %s -> %d %s" % (method, path, resp.status, resp.text)
        return resp.json

    def start_server(self, host):
        ip = self.net[host].IP()
        root = os.path.join(self.run_dir, host)
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "index.html"), "w", encoding="utf-8") as f:
            f.write(host + "\n")
        out = self.net[host].cmd(
            "python3 -m http.server 8080 --bind %s --directory %s >/dev/null 2>&1 & echo $!" % (ip, root)
        )
        self.servers[host] = out.strip().splitlines()[-1]
        wait_until(lambda: ":8080 " in self.net[host].cmd("ss -Hltn"), 10, what="HTTP server on %s" % host)

    def kill_server(self, host):
        pid = self.servers.pop(host, None)
        if pid and pid.isdigit():
            self.net[host].cmd("kill -9 %s" % pid)
            wait_until(lambda: ":8080 " not in self.net[host].cmd("ss -Hltn"), 10, what="server gone")

    def requests(self, client, first_port, count, repeat=1, port=80, vip=VIP):
        """[(source port, backend name or 'error: ...')] of `count` requests
        from `client` from ports first_port.., each repeated `repeat` times."""
        out = self.net[client].cmd(
            "timeout 120 python3 %s %s %d %d %d %d" % (self.client, vip, port, first_port, count, repeat)
        )
        line = [l for l in out.splitlines() if l.startswith("[")]
        assert line, out
        return [tuple(x) for x in json.loads(line[-1])]

    def shares(self, results):
        names = [name for _, name in results]
        return {b: names.count(b) / len(names) for b in BACKENDS}, [n for n in names if n not in BACKENDS]


def lb_flows():
    return {sw: {f.key: f for f in dump_flows(sw) if f.owner == "loadbalancer"} for sw in SWITCHES}


def group_stats(sw):
    """{group_id: (duration, packet_count)} from dump-group-stats."""
    out = run(["ovs-ofctl", "-O", "OpenFlow13", "dump-group-stats", sw])
    stats = {}
    for m in re.finditer(r"group_id=(\d+),duration=([\d.]+)s,.*?packet_count=(\d+)", out):
        stats[int(m.group(1))] = (float(m.group(2)), int(m.group(3)))
    return stats


def groups(sw):
    out = run(["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", sw])
    return sorted(l.strip() for l in out.splitlines() if "group_id=" in l)


@pytest.fixture(scope="module")
def lab():
    run_dir = tempfile.mkdtemp(prefix="flowgate-lb-")
    ctl = new_controller()
    net = LabNet("tree,2,3", ctl)
    lab = None
    try:
        net.start(connect_timeout=90)
        wait_controller_ready(ctl, [1, 2, 3, 4])
        lab = Lab(ctl, net, run_dir)
        for host in BACKENDS:
            lab.start_server(host)
        # Clients and backends are known to topology before the VIP exists
        # (a silent backend would be found by the load balancer's ARP).
        assert net.ping("h2", "h1", count=1) and net.ping("h5", "h4", count=1)
        yield lab
    finally:
        if lab is not None:
            for host in list(lab.servers):
                lab.kill_server(host)
        net.stop()
        release_controller(ctl)
        shutil.rmtree(run_dir, ignore_errors=True)


def test_hash_spreads_connections_evenly_and_arp_is_answered_in_the_switch(lab):
    lab.rest("POST", "/pools", {"id": "web", "members": [
        {"address": lab.net[h].IP(), "port": 8080} for h in BACKENDS]})
    answer = lab.rest("POST", "/vips", {"id": "web", "address": VIP, "port": 80, "pool": "web"})
    assert answer["applied"]["switches"] == ["00:00:00:00:00:00:00:0%d" % d for d in (1, 2, 3, 4)]
    results = lab.requests("h2", 20000, 300) + lab.requests("h5", 30000, 300)
    shares, failed = lab.shares(results)
    print("\nhash, equal weights, 600 connections: %s" % {b: "%.1f%%" % (100 * s) for b, s in shares.items()})
    assert not failed, failed[:5]
    for backend, share in shares.items():
        assert abs(share - 1 / 3) <= 0.10, (backend, shares)
    # The VIP's ARP was answered by the switch with the virtual MAC.
    neigh = lab.net["h2"].cmd("ip neigh show %s" % VIP)
    assert VMAC in neigh, neigh
    arp = [f for f in dump_flows("s2", ["table=3,arp,arp_tpa=%s,arp_op=1" % VIP])]
    assert arp and arp[0].n_packets >= 1, arp
    # Stats: the buckets counted the connections (counters lag ~1 s).
    def counted():
        stats = lab.rest("GET", "/vips/web/stats")
        total = sum(m["connections"] for m in stats["members"])
        return stats if total >= 600 else None

    stats = wait_until(counted, 10, what="bucket counters to count 600 connections")
    assert all(m["packets"] > 0 for m in stats["members"]), stats


def test_the_same_five_tuple_always_lands_on_the_same_backend(lab):
    for client, first in (("h2", 21000), ("h5", 31000)):
        results = lab.requests(client, first, 8, repeat=5)
        by_port = {}
        for sport, name in results:
            assert name in BACKENDS, name
            by_port.setdefault(sport, set()).add(name)
        assert all(len(names) == 1 for names in by_port.values()), by_port


def test_weights_3_1_1_split_60_20_20(lab):
    pool = lab.rest("GET", "/pools/web")
    for member, weight in zip(pool["members"], (3, 1, 1)):
        member["weight"] = weight
    lab.rest("PUT", "/pools/web", pool)
    vip = lab.rest("GET", "/vips/web")
    vip["method"] = "weighted"
    lab.rest("PUT", "/vips/web", vip)
    results = lab.requests("h2", 22000, 300) + lab.requests("h5", 32000, 300)
    shares, failed = lab.shares(results)
    print("\nweighted 3:1:1, 600 connections: %s" % {b: "%.1f%%" % (100 * s) for b, s in shares.items()})
    assert not failed, failed[:5]
    for backend, want in zip(BACKENDS, (0.6, 0.2, 0.2)):
        assert abs(shares[backend] - want) <= 0.10, shares


def test_affinity_keeps_a_clients_connections_on_one_backend(lab):
    lab.rest("POST", "/vips", {"id": "sticky", "address": "10.0.0.102", "port": 80, "pool": "web",
                               "affinity_timeout": 30})
    backends = {}
    for client, first in (("h2", 25000), ("h3", 25000), ("h5", 35000), ("h6", 35000), ("h9", 35000)):
        results = lab.requests(client, first, 20, vip="10.0.0.102")
        names = {name for _, name in results}
        assert len(names) == 1 and names <= set(BACKENDS), (client, results[:5])
        backends[client] = names.pop()
    print("\naffinity: each client's 20 connections on one backend: %s" % backends)
    pins = [f for sw in SWITCHES for f in dump_flows(sw, ["table=3"])
            if f.owner == "loadbalancer" and (f.cookie >> 32) & 0xFF == 5]
    assert len(pins) == 5 and all(f.idle_timeout == 30 for f in pins), pins
    lab.rest("DELETE", "/vips/sticky")


def test_leastconn_counts_connections_in_the_switches(lab):
    vip = lab.rest("GET", "/vips/web")
    vip["method"] = "leastconn"
    lab.rest("PUT", "/vips/web", vip)
    results = lab.requests("h2", 24000, 150) + lab.requests("h5", 34000, 150)
    shares, failed = lab.shares(results)
    assert not failed, failed[:5]
    # The counting entries (tcp_flags) saw the connections open and close.
    # OVS folds its datapath's packet counts into flow stats every ~0.5 s
    # (revalidators; later on a busy machine), so the sum catches up.
    def counted():
        counting = [f for sw in SWITCHES for f in dump_flows(sw, ["table=3"])
                    if f.owner == "loadbalancer" and (f.cookie >> 32) & 0xFF == 8]
        return counting if sum(f.n_packets for f in counting) >= 600 else None

    wait_until(counted, 10, what="counting entries to see 300 opens and 300 closes")
    # Every connection closed: no member is loaded, the weights are even.
    def even():
        weights = [m["bucket_weights"].get("web") for m in lab.rest("GET", "/pools/web/members")]
        return weights if len(set(weights)) == 1 and weights[0] else None

    weights = wait_until(even, 15, what="leastconn weights even once connections closed")
    print("\nleastconn, 300 short connections: %s, weights %s"
          % ({b: "%.1f%%" % (100 * s) for b, s in shares.items()}, weights))


def test_a_killed_backend_leaves_and_comes_back(lab):
    lab.rest("POST", "/monitors", {"id": "web-tcp", "pool": "web", "type": "tcp", "interval": INTERVAL,
                                   "timeout": 0.5, "rise": RISE, "fall": FALL, "source_ip": SOURCE})
    wait_until(lambda: all(m["health"] and m["health"]["state"] == "up"
                           for m in lab.rest("GET", "/pools/web/members")), 15, what="members up")
    lab.kill_server("h7")
    killed = time.monotonic()

    def down():
        member = [m for m in lab.rest("GET", "/pools/web/members") if m["address"] == "10.0.0.7"][0]
        return member if member["health"]["state"] == "down" else None

    member = wait_until(down, FALL * INTERVAL + 5, interval=0.1, what="h7 down")
    detected = time.monotonic() - killed
    print("\nfailover: h7 down after %.2f s (fall %d x interval %.1f s); reason: %s"
          % (detected, FALL, INTERVAL, member["health"]["reason"]))
    assert member["in_rotation"] is False
    assert member["health"]["transitions"][-1]["to"] == "down"
    # From fall x interval + 1 s on, no new connection goes to h7 and none fails.
    time.sleep(max(0.0, FALL * INTERVAL + 1 - (time.monotonic() - killed)))
    results = lab.requests("h2", 23000, 100)
    shares, failed = lab.shares(results)
    assert not failed, failed[:5]
    assert shares["h7"] == 0, shares
    lab.start_server("h7")
    back = time.monotonic()
    wait_until(lambda: not down() and [m for m in lab.rest("GET", "/pools/web/members")
                                       if m["address"] == "10.0.0.7"][0]["in_rotation"],
               RISE * INTERVAL + 5, interval=0.1, what="h7 back")
    print("recovery: h7 back in rotation after %.2f s (rise %d x interval %.1f s)"
          % (time.monotonic() - back, RISE, INTERVAL))
    results = lab.requests("h5", 33000, 100)
    shares, failed = lab.shares(results)
    assert not failed and shares["h7"] > 0, (shares, failed[:5])
    log = lab.ctl.log_text()
    assert "load balancer member health changed" in log and "10.0.0.7:8080" in log


def test_a_long_stream_survives_member_changes_and_a_controller_restart(lab):
    h1 = lab.net["h1"]
    server = h1.cmd("iperf3 -s -1 -p 5201 >/dev/null 2>&1 & echo $!").strip().splitlines()[-1]
    wait_until(lambda: ":5201 " in h1.cmd("ss -Hltn"), 10, what="iperf3 server")
    lab.rest("POST", "/pools", {"id": "stream", "members": [{"address": "10.0.0.1", "port": 5201}]})
    lab.rest("POST", "/vips", {"id": "stream", "address": STREAM_VIP, "port": 5201, "pool": "stream"})
    out_file = os.path.join(lab.run_dir, "iperf.json")
    seconds = 16
    out = open(out_file, "w", encoding="utf-8")  # pylint: disable=consider-using-with
    client = lab.net["h8"].popen(
        ["iperf3", "-c", STREAM_VIP, "-p", "5201", "-t", str(seconds), "-i", "1", "-J"],
        stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(3)
        # A member joins and the stream's own member is drained.
        lab.rest("POST", "/pools/stream/members", {"address": "10.0.0.4", "port": 5201})
        lab.rest("PUT", "/pools/stream/members/10.0.0.1:5201",
                 {"address": "10.0.0.1", "port": 5201, "admin_state": "drain"})
        time.sleep(2)
        flows_before, groups_before = lb_flows(), {sw: groups(sw) for sw in SWITCHES}
        stats_before = {sw: group_stats(sw) for sw in SWITCHES}
        taken = time.monotonic()
        lab.ctl.kill9()
        time.sleep(1)
        lab.ctl.start()
        wait_controller_ready(lab.ctl, [1, 2, 3, 4])
        time.sleep(3)  # give a wrong reconciliation time to do damage
        elapsed = time.monotonic() - taken
        flows_after, groups_after = lb_flows(), {sw: groups(sw) for sw in SWITCHES}
        stats_after = {sw: group_stats(sw) for sw in SWITCHES}
        client.wait(timeout=seconds + 30)
    finally:
        if client.poll() is None:
            client.kill()
        out.close()
        if server.isdigit():
            h1.cmd("kill -9 %s 2>/dev/null" % server)
    with open(out_file, encoding="utf-8") as f:
        text = f.read()
    doc = json.loads(text[text.index("{"):])
    assert "error" not in doc, doc.get("error")
    intervals = [i["sum"]["bits_per_second"] for i in doc["intervals"]]
    received = doc["end"]["sum_received"]["bytes"]
    print("\niperf3 through the VIP over a member add, a drain and a controller restart: "
          "%.0f Mbit/s, %d MB, slowest second %.0f Mbit/s"
          % (doc["end"]["sum_received"]["bits_per_second"] / 1e6, received / 1e6, min(intervals) / 1e6))
    assert len(intervals) >= seconds - 1 and min(intervals) > 0, intervals
    # Nothing of the load balancer was rewritten: same flows, not reset,
    # same groups, group counters not reset.
    for sw in SWITCHES:
        assert set(flows_after[sw]) == set(flows_before[sw]), sw
        for key, old in flows_before[sw].items():
            new = flows_after[sw][key]
            assert new.duration >= old.duration + elapsed - 1, (sw, old.line, new.line)
            assert new.n_packets >= old.n_packets and new.actions == old.actions, (old.line, new.line)
        assert groups_after[sw] == groups_before[sw], sw
        for gid, (duration, packets) in stats_before[sw].items():
            new_duration, new_packets = stats_after[sw][gid]
            assert new_duration >= duration + elapsed - 1 and new_packets >= packets, (sw, gid)
    # The stream stayed on its drained member: the new member took nothing.
    stats = lab.rest("GET", "/vips/stream/stats")
    by_addr = {m["address"]: m for m in stats["members"]}
    assert by_addr["10.0.0.4"]["connections"] == 0, stats


def test_bad_input_is_refused_and_changes_nothing(lab):
    # h2 speaks (topology, restarted with the controller, knows a host once
    # it has sent something): its address is taken.
    assert lab.net.ping("h2", "h1", count=1)
    wait_until(lambda: lab.ctl.rest.request("GET", "/api/v1/hosts?ip=10.0.0.2").json, 10, what="h2 known")
    before = lb_flows()
    for method, path, body, status, field in (
        ("POST", "/vips", {"id": "x", "address": "10.0.0.102", "port": 80, "pool": "nope"}, 404, "pool"),
        ("POST", "/vips", {"id": "x", "address": VIP, "port": 80, "pool": "web"}, 409, "address"),
        ("POST", "/vips", {"id": "x", "address": "10.0.0.2", "port": 80, "pool": "web"}, 409, "address"),
        ("POST", "/pools/web/members", {"address": "10.0.0.9", "port": 8080, "weight": 0}, 422, "weight"),
        ("POST", "/pools/web/members", {"address": "10.0.0.9", "port": 8080, "weight": 1001}, 422, "weight"),
        ("PUT", "/monitors/web-tcp", {"pool": "web", "type": "tcp", "interval": 1, "timeout": 2,
                                      "source_ip": SOURCE}, 422, "timeout"),
    ):
        resp = lab.ctl.rest.request(method, LB + path, body)
        assert resp.status == status and resp.json["field"] == field, (path, resp.status, resp.text)
    after = lb_flows()
    assert {sw: set(f) for sw, f in after.items()} == {sw: set(f) for sw, f in before.items()}
