"""A VIP inside a private overlay network (issue 15), on three emulated cloud
hosts with their own Open vSwitch (`flowgate_lab.cloud`): network blue
(VNI 100, 10.0.0.0/24) has a client VM c1 on host 1 and backends b2, b3 on
hosts 2 and 3 (`python3 -m http.server` answering with their names). The
VIP 10.0.0.100:80 exists only inside blue; health probes come from
10.0.0.250 through the tunnels' hosts' switches.

Each host has its own ovs-vswitchd, hence its own conntrack: the client's
host NATs the connection and un-NATs the replies, which come back through
the tunnel untranslated.
"""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from flowgate_lab import wait_until
from flowgate_lab.cloud import Capture, Cloud, _ns

from conftest import new_controller, release_controller

N_HOSTS = 3
VIP = "10.0.0.100"
SOURCE = "10.0.0.250"
VMAC = "02:f0:05:00:00:01"


def mac(n):
    return "02:00:00:00:01:%02x" % n


CLIENT = r'''
import json, socket, sys
out = []
for i in range(int(sys.argv[2])):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((sys.argv[1], 80))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        out.append(data.split(b"\r\n\r\n", 1)[1].decode().strip())
    except (OSError, IndexError) as e:
        out.append("error: %s" % e)
    finally:
        s.close()
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def lab():
    cloud = Cloud(n_hosts=N_HOSTS, prefix="fgl", subnet="198.20.0", br_int=False)
    cloud.start()
    run_dir = tempfile.mkdtemp(prefix="flowgate-lb-cloud-")
    ctl = None
    servers = []
    try:
        ctl = new_controller(of_host=cloud.mgmt_ip)
        manager = "tcp:%s:%d" % (cloud.mgmt_ip, ctl.ovsdb_port)
        for host in cloud.hosts:
            host.set_manager(manager)

        def ready():
            hosts = ctl.rest.request("GET", "/api/v1/chassis").json or []
            return len(hosts) == N_HOSTS and all(
                h.get("bridge") and h["bridge"]["controllers"] and h["bridge"]["controllers"][0]["connected"]
                and len([t for t in h["tunnels"] if (t["ofport"] or -1) > 0]) == N_HOSTS - 1
                for h in hosts)

        wait_until(ready, 60, interval=0.5, what="3 hosts with br-int and tunnels")
        names = {1: "c1", 2: "b2", 3: "b3"}
        for host in cloud.hosts:
            n = host.index
            host.add_vm(names[n], "10.0.0.%d/24" % n, mac=mac(n))
        r = ctl.rest.request("POST", "/api/v1/networks",
                             {"id": "blue", "tenant": "acme", "vni": 100, "subnet": "10.0.0.0/24"})
        assert r.status == 201, r
        for n, name in names.items():
            r = ctl.rest.request("POST", "/api/v1/networks/blue/ports",
                                 {"id": name, "iface_id": name, "mac": mac(n), "ips": ["10.0.0.%d" % n]})
            assert r.status == 201, r
        wait_until(lambda: all(p["status"]["bound"] for p in ctl.rest.get("/api/v1/networks/blue/ports")),
                   30, what="ports bound")
        for n in (2, 3):
            ns = cloud.hosts[n - 1].vms[names[n]]
            root = os.path.join(run_dir, names[n])
            os.makedirs(root)
            with open(os.path.join(root, "index.html"), "w", encoding="utf-8") as f:
                f.write(names[n] + "\n")
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, "python3", "-m", "http.server", "8080", "--bind",
                 "10.0.0.%d" % n, "--directory", root],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_until(lambda ns=ns: ":8080 " in _ns(ns, "ss", "-Hltn"), 10, what="server in %s" % ns)
        script = os.path.join(run_dir, "client.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(CLIENT)
        yield cloud, ctl, script
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
            server.wait(timeout=10)
        if ctl is not None:
            release_controller(ctl)
        cloud.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.mark.timeout_secs(120)
def test_a_vip_inside_a_tenant_network_balances_over_members_on_two_hosts(lab):
    cloud, ctl, script = lab
    api = "/api/v1/lb"
    for path, body in (
        ("/pools", {"id": "blue-web", "members": [{"address": "10.0.0.2", "port": 8080},
                                                  {"address": "10.0.0.3", "port": 8080}]}),
        ("/vips", {"id": "blue-web", "address": VIP, "port": 80, "pool": "blue-web", "network": "blue"}),
        ("/monitors", {"id": "blue-web", "pool": "blue-web", "type": "http", "interval": 1,
                       "timeout": 0.5, "source_ip": SOURCE}),
    ):
        r = ctl.rest.request("POST", api + path, body)
        assert r.status == 201, (path, r)
    # Probes through the data plane find both members up.
    wait_until(lambda: all(m["health"] and m["health"]["state"] == "up"
                           for m in ctl.rest.get(api + "/pools/blue-web/members")),
               20, what="both tenant members up by HTTP probes")
    client = cloud.hosts[0].vms["c1"]
    # The client's SYNs (not SYN-ACKs) to the VIP: one per connection, none
    # retransmitted, the first (the first packet tunnelled to a member's
    # host) included.
    with Capture(client, "eth0", "tcp[tcpflags] == tcp-syn and dst host %s" % VIP) as syns:
        out = _ns(client, "timeout", "60", "python3", script, VIP, "60", timeout=70)
        sent = syns.stop()
    names = json.loads([l for l in out.splitlines() if l.startswith("[")][-1])
    counts = {n: names.count(n) for n in set(names)}
    print("\ntenant VIP, 60 connections from host 1: %s, %d SYNs" % (counts, len(sent)))
    assert set(counts) == {"b2", "b3"}, counts
    assert len(sent) == 60, sent[:3]
    neigh = _ns(client, "ip", "neigh", "show", VIP)
    assert VMAC in neigh, neigh
    # The VIP does not exist outside its network: a plain host's ARP for it
    # on the same bridge is not answered by the load balancer (no entry
    # matches untenanted traffic).
    flows = cloud.hosts[0].ofctl("dump-flows", "br-int", "table=3")
    vip_arp = [l for l in flows.splitlines() if "arp_tpa=%s" % VIP in l and "arp_op=1" in l]
    assert vip_arp and all("metadata=0x8000000000000064" in l for l in vip_arp), vip_arp
    # A drained member takes no new connections, in the tenant too.
    r = ctl.rest.request("PUT", api + "/pools/blue-web/members/10.0.0.3:8080",
                         {"address": "10.0.0.3", "port": 8080, "admin_state": "drain"})
    assert r.status == 200, r
    out = _ns(client, "timeout", "60", "python3", script, VIP, "20", timeout=70)
    names = json.loads([l for l in out.splitlines() if l.startswith("[")][-1])
    assert set(names) == {"b2"}, names
