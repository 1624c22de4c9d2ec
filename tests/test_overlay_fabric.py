"""Private networks across plain OpenFlow switches (no tunnels, issue 4):
topologies/tree22.yaml — s1 joins s2 (h1, h2) and s3 (h3, h4). Blue = h1, h3;
red = h2, h4, with the same addresses (10.0.0.1 and 10.0.0.3). Links carry
each network under its own VLAN on the topology's spanning tree."""

import pytest

from flowgate_lab import LabNet, wait_until
from flowgate_lab.cloud import Capture

from conftest import new_controller, release_controller, topology

VNI = {"blue": 100, "red": 200}


def fabric_vlan(vni):
    return 0x800 + vni % 2047


@pytest.fixture(scope="module")
def tree():
    ctl = new_controller()
    lab = LabNet(topology("tree22"), ctl)
    try:
        lab.start(connect_timeout=90)
        wait_until(lambda: len(ctl.rest.get("/api/v1/topology")["links"]) >= 2, 60, interval=0.5,
                   what="the two links discovered")
        net = lab.net
        net["h2"].setIP("10.0.0.1/8")
        net["h4"].setIP("10.0.0.3/8")
        for name, r in (("blue", None), ("red", None)):
            r = ctl.rest.request("POST", "/api/v1/networks", {"id": name, "tenant": name, "vni": VNI[name]})
            assert r.status == 201, r
        members = {"h1": ("blue", 2), "h3": ("blue", 3), "h2": ("red", 2), "h4": ("red", 3)}
        for host, (network, dpid) in sorted(members.items()):
            h = net[host]
            (_, sw_intf), = h.connectionsTo(net["s%d" % dpid])
            body = {"id": host, "switch": {"dpid": str(dpid), "port": sw_intf.name}}
            if network == "red":  # red configured, blue learned
                body.update(mac=h.MAC(), ips=[h.IP()])
            r = ctl.rest.request("POST", "/api/v1/networks/%s/ports" % network, body)
            assert r.status == 201, r
        yield ctl, lab
    finally:
        lab.stop()
        release_controller(ctl)


def ping(host, ip, count=3):
    out = host.cmd("ping -n -c %d -i 0.2 -W 2 %s" % (count, ip))
    for line in out.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


@pytest.mark.timeout_secs(180)
def test_tenants_with_the_same_addresses_across_switches(tree):
    ctl, lab = tree
    net = lab.net
    h1, h2, h3, h4 = (net[h] for h in ("h1", "h2", "h3", "h4"))
    to_h4 = Capture(None, "s3-eth2", "ether src %s or ether src %s" % (h1.MAC(), h2.MAC())).start()
    to_h3 = Capture(None, "s3-eth1", "ether src %s or ether src %s" % (h1.MAC(), h2.MAC())).start()
    link = Capture(None, "s1-eth2", "vlan").start()
    try:
        assert ping(h1, "10.0.0.3") >= 2, "blue h1 -> h3"
        assert ping(h2, "10.0.0.3") >= 2, "red h2 -> h4"
        h1.cmd("ping -b -c 2 -i 0.2 -W 1 10.255.255.255")
        h2.cmd("ping -b -c 2 -i 0.2 -W 1 10.255.255.255")
    finally:
        seen_h4, seen_h3, tagged = to_h4.stop(), to_h3.stop(), link.stop()
    assert any(h2.MAC() in l for l in seen_h4) and not any(h1.MAC() in l for l in seen_h4), seen_h4
    assert any(h1.MAC() in l for l in seen_h3) and not any(h2.MAC() in l for l in seen_h3), seen_h3
    text = "\n".join(tagged)
    assert "vlan %d" % fabric_vlan(VNI["blue"]) in text, text[-1500:]
    assert "vlan %d" % fabric_vlan(VNI["red"]) in text, text[-1500:]
    # Blue was learned from traffic.
    blue = {p["id"]: p for p in ctl.rest.get("/api/v1/networks/blue/ports")}
    assert blue["h1"]["status"]["mac"] == h1.MAC()


@pytest.mark.timeout_secs(120)
def test_a_host_tagging_frames_cannot_join_a_tenant(tree):
    ctl, lab = tree
    net = lab.net
    h1, h3 = net["h1"], net["h3"]
    # h1 leaves blue; a VLAN interface with blue's fabric tag gets it nowhere.
    assert ctl.rest.request("DELETE", "/api/v1/networks/blue/ports/h1").status == 200
    vid = fabric_vlan(VNI["blue"])
    h1.cmd("ip link add link h1-eth0 name h1-eth0.%d type vlan id %d" % (vid, vid))
    h1.cmd("ip addr add 10.9.0.1/24 dev h1-eth0.%d && ip link set h1-eth0.%d up" % (vid, vid))
    cap = Capture(None, "s3-eth1", "ether src %s" % h1.MAC()).start()
    try:
        h1.cmd("ping -b -c 3 -i 0.2 -W 1 10.9.0.255")
        assert ping(h1, "10.0.0.3", count=2) == 0
    finally:
        seen = cap.stop()
        h1.cmd("ip link del h1-eth0.%d" % vid)
    assert seen == [], seen
    assert ping(net["h2"], "10.0.0.3", count=2) >= 1, "red unaffected"
