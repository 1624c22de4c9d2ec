"""QoS on cloud hosts over OVSDB (issue 16): two emulated hosts whose
Open vSwitch only points at Flowgate (`set-manager`), a tenant network with
VMs qa, qb on host 1 and qc on host 2.

A queue profile bound to a VM port (by its iface-id) becomes a QoS row and
Queue rows on the host that has the port; linux-htb shapes what the port
sends to the VM (LAB.md: port max-rate works on the userspace datapath,
per-queue selection does not reach the queue, so queue policies are checked
on the control plane). Unbinding leaves no QoS or Queue row and no HTB
class behind; a restart writes no row again. A `qospusher.py`-style
Floodlight policy enqueues into a queue somebody made by hand."""

import time

import pytest

from flowgate_lab import wait_until
from flowgate_lab.cloud import Cloud, _ns, iperf_ns, ping_ns

from conftest import new_controller, release_controller

GRACE = 3  # seconds (--overlay-host-grace)
CAP = 5_000_000  # bit/s: the profile's port max-rate
VMS = {"qa": (1, "10.0.0.1"), "qb": (1, "10.0.0.2"), "qc": (2, "10.0.0.3")}


class Lab:
    def __init__(self, cloud, ctl):
        self.cloud, self.ctl = cloud, ctl
        self.hosts = {h.index: h for h in cloud.hosts}

    def rest(self, method, path, body=None, api="/api/v1"):
        return self.ctl.rest.request(method, api + path, body)

    def vm(self, name):
        return self.hosts[VMS[name][0]].vms[name]

    def rows(self, host, table, owner=None):
        """Uuids of `table`'s rows on `host` (owned by `owner` if given)."""
        args = ["--bare", "--columns=_uuid", "find", table]
        if owner:
            args.append("external_ids:flowgate-owner=%s" % owner)
        return sorted(self.hosts[host].vsctl(*args).split())

    def port_qos(self, host, port):
        out = self.hosts[host].vsctl("get", "port", port, "qos").strip()
        return None if out in ("[]", "") else out

    def tc_classes(self, host, dev):
        return _ns(self.hosts[host].ns, "tc", "class", "show", "dev", dev)


def _ready(lab):
    hosts = lab.rest("GET", "/chassis").json or []
    return len(hosts) == 2 and all(
        h["connected"] and h.get("bridge") and h["bridge"]["controllers"]
        and h["bridge"]["controllers"][0]["connected"]
        and len([t for t in h["tunnels"] if (t["ofport"] or -1) > 0]) == 1
        for h in hosts
    )


@pytest.fixture(scope="module")
def lab():
    cloud = Cloud(n_hosts=2, prefix="fgq", subnet="198.19.11", br_int=False)
    cloud.start()
    ctl = None
    try:
        ctl = new_controller(of_host=cloud.mgmt_ip, extra_args=["--overlay-host-grace", str(GRACE)])
        assert ctl.ovsdb_port, "this flowgate build has no OVSDB listener"
        lab = Lab(cloud, ctl)
        for host in cloud.hosts:
            host.set_manager("tcp:%s:%d" % (cloud.mgmt_ip, ctl.ovsdb_port))
        wait_until(lambda: _ready(lab), 60, interval=0.5, what="br-int and tunnels on both hosts")
        for vm, (host, ip) in VMS.items():
            lab.hosts[host].add_vm(vm, ip + "/24")
        r = lab.rest("POST", "/networks", {"id": "q", "tenant": "tenant-q", "vni": 300, "subnet": "10.0.0.0/24"})
        assert r.status == 201, r
        for vm, (_, ip) in VMS.items():
            r = lab.rest("POST", "/networks/q/ports", {"iface_id": vm, "ips": [ip]})
            assert r.status == 201, r

        def bound():
            ports = lab.rest("GET", "/networks/q/ports").json
            return len(ports) == len(VMS) and all(p["status"]["bound"] for p in ports)

        wait_until(bound, 30, what="every VM port bound")
        wait_until(lambda: ping_ns(lab.vm("qc"), "10.0.0.1", count=1, wait=1) == 1, 30,
                   what="qc reaches qa across the tunnel")
        r = lab.rest("POST", "/qos/profiles", {
            "id": "vm-5m", "max_rate": CAP,
            "queues": {"1": {"max_rate": 2_000_000}, "2": {"min_rate": 1_000_000, "priority": 1}},
        })
        assert r.status == 201, r
        yield lab
    finally:
        if ctl is not None:
            release_controller(ctl)
        cloud.stop()


def bind_qa(lab):
    r = lab.rest("POST", "/qos/ports", {"id": "qa-cap", "profile": "vm-5m", "iface_id": "qa"})
    assert r.status == 201, r
    wait_until(lambda: "htb" in lab.tc_classes(1, "qa"), 30, what="HTB classes on qa")


def unbind_qa(lab):
    r = lab.rest("DELETE", "/qos/ports/qa-cap")
    assert r.status == 200, r


@pytest.mark.timeout_secs(240)
def test_a_profile_on_a_vm_port_caps_its_traffic_and_leaves_nothing_when_unbound(lab):
    assert lab.rows(1, "qos") == [] and lab.rows(1, "queue") == [], "no QoS before a binding"
    free = iperf_ns(lab.vm("qc"), lab.vm("qa"), "10.0.0.1", seconds=3)
    assert free > 3 * CAP / 1e6, "qc -> qa unshaped: %.1f Mbit/s" % free
    bind_qa(lab)
    try:
        qos = lab.rows(1, "qos", owner="qos")
        assert len(qos) == 1, qos
        assert lab.port_qos(1, "qa") == qos[0]
        assert len(lab.rows(1, "queue", owner="qos")) == 2
        assert lab.hosts[1].vsctl("get", "qos", qos[0], "type").strip() == "linux-htb"
        assert lab.hosts[1].vsctl("get", "qos", qos[0], "other_config:max-rate").strip().strip('"') == str(CAP)
        assert lab.rows(2, "qos") == [], "host 2 has no bound port"
        capped = iperf_ns(lab.vm("qc"), lab.vm("qa"), "10.0.0.1", seconds=4)
        other = iperf_ns(lab.vm("qc"), lab.vm("qb"), "10.0.0.2", seconds=3)
        print("qc->qa %.2f Mbit/s under a %d Mbit/s cap; qc->qb %.1f" % (capped, CAP // 10**6, other))
        assert 0.5 < capped <= CAP / 1e6 * 1.15, capped
        assert other > 3 * CAP / 1e6, "the other VM on the host is not shaped: %.1f" % other
    finally:
        unbind_qa(lab)
    wait_until(lambda: lab.rows(1, "qos") == [] and lab.rows(1, "queue") == [], 30,
               what="QoS and Queue rows gone")
    assert lab.port_qos(1, "qa") is None
    wait_until(lambda: "htb" not in lab.tc_classes(1, "qa"), 30, what="HTB classes gone from qa")
    again = iperf_ns(lab.vm("qc"), lab.vm("qa"), "10.0.0.1", seconds=3)
    assert again > 3 * CAP / 1e6, again


@pytest.mark.timeout_secs(240)
def test_a_restart_writes_no_qos_row_again(lab):
    bind_qa(lab)
    try:
        before = (lab.rows(1, "qos"), lab.rows(1, "queue"), lab.port_qos(1, "qa"))
        assert len(before[0]) == 1 and len(before[1]) == 2
        lab.ctl.kill9()
        lab.ctl.start()
        wait_until(lambda: _ready(lab), 60, interval=0.5, what="hosts back after the restart")
        # Long enough for the module to have declared its rows and the
        # reconciler to have planned on them.
        time.sleep(GRACE + 5)
        after = (lab.rows(1, "qos"), lab.rows(1, "queue"), lab.port_qos(1, "qa"))
        assert after == before, "rows rewritten: %s -> %s" % (before, after)
        assert "htb" in lab.tc_classes(1, "qa")
    finally:
        unbind_qa(lab)
    wait_until(lambda: lab.rows(1, "qos") == [], 30, what="QoS row gone after the restart too")


@pytest.mark.timeout_secs(240)
def test_a_floodlight_policy_enqueues_into_a_hand_made_queue(lab):
    h1 = lab.hosts[1]
    dpid = int(h1.vsctl("get", "bridge", "br-int", "datapath_id").strip().strip('"'), 16)
    sw = ":".join("%02x" % b for b in dpid.to_bytes(8, "big"))
    ofport = h1.vsctl("get", "interface", "qb", "ofport").strip()
    policy = {"name": "to-qb", "eth-type": "0x0800", "ip-dst": "10.0.0.2", "queue": "7",
              "enqueue-port": ofport, "sw": sw, "priority": "200"}
    r = lab.rest("POST", "/wm/qos/policy/json", policy, api="")
    assert r.status == 409 and "queue" in r.text, "no queue 7 anywhere yet: %s" % r
    # The operator's own QoS with queue 7 on qb, as Floodlight's users made it.
    h1.vsctl("set", "port", "qb", "qos=@q", "--", "--id=@q", "create", "qos", "type=linux-htb",
             "other-config:max-rate=50000000", "queues:7=@q7", "--",
             "--id=@q7", "create", "queue", "other-config:max-rate=3000000")
    mine = (lab.rows(1, "qos"), lab.rows(1, "queue"))
    try:
        def accepted():
            r = lab.rest("POST", "/wm/qos/policy/json", policy, api="")
            assert r.status in (200, 201, 409), r
            return r if r.status != 409 else None

        r = wait_until(accepted, 30, what="the policy accepted once the hand-made queue is seen")
        pid = r.json["id"]
        listed = lab.rest("GET", "/wm/qos/policy/json", api="").json
        assert any(p["policyid"] == pid and p["queue"] == 7 for p in listed), listed

        def entry():
            flows = h1.ofctl("dump-flows", "br-int", "table=2", "--no-names")
            return [f for f in flows.splitlines() if "set_queue:7" in f and "output:%s" % ofport in f]

        wait_until(entry, 30, what="the enqueue entry on host 1's br-int")
        assert ping_ns(lab.vm("qc"), "10.0.0.2", count=3) >= 2

        def packets():
            return int(entry()[0].split("n_packets=")[1].split(",")[0])

        # The userspace datapath hands its counters to the entry every so often.
        wait_until(lambda: packets() >= 2, 10, what="the pings counted by the enqueue entry")
        r = lab.rest("DELETE", "/wm/qos/policy/json", {"policy-id": str(pid)}, api="")
        assert r.status == 200, r
        wait_until(lambda: not entry(), 30, what="the entry removed")
        assert (lab.rows(1, "qos"), lab.rows(1, "queue")) == mine, "the operator's rows stay"
    finally:
        h1.vsctl("clear", "port", "qb", "qos")
        for q in mine[0]:
            h1.vsctl("--if-exists", "destroy", "qos", q)
        for q in mine[1]:
            h1.vsctl("--if-exists", "destroy", "queue", q)
