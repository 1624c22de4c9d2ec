"""Topology discovery and topology-aware forwarding on real OVS: every
lab topology (topologies/*.yaml: trees and meshes with loops) is discovered, pings all pairs
without loss and without a broadcast storm; REST reports links, hosts and
paths; TCP crosses the fat-tree end to end.

Each topology gets its own controller (config: LLDP every 2 s, ports edge
after 2 s). The fat-tree (20 userspace switches on 2 cores) is slow to
start: its tests are patient and share one network."""

import time

import pytest

from conftest import new_controller, release_controller, topology
from flowgate_lab import LabNet
from flowgate_lab.topology import (
    TEST_CONFIG,
    attachment,
    flood_packets,
    hosts_by_mac,
    metric,
    switch_links,
    switch_name,
    wait_topology,
)

LLDP_INTERVAL = 2


class _Labs:
    """One controller + network at a time, kept for the next test that
    asks for the same topology."""

    def __init__(self, tmpdir):
        self.config = str(tmpdir / "flowgate.toml")
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(TEST_CONFIG)
        self.spec = None
        self.ctl = None
        self.lab = None

    def get(self, spec):
        if spec != self.spec:
            self.close()
            self.ctl = new_controller(config=self.config)
            self.spec = spec
            self.lab = LabNet(topology(spec), self.ctl)
            self.lab.start(connect_timeout=180)
        return self.ctl, self.lab

    def close(self):
        try:
            if self.lab is not None:
                self.lab.stop()
        finally:
            if self.ctl is not None:
                release_controller(self.ctl)
            self.spec = self.ctl = self.lab = None


@pytest.fixture(scope="module")
def labs(tmp_path_factory):
    holder = _Labs(tmp_path_factory.mktemp("topology"))
    try:
        yield holder
    finally:
        holder.close()


@pytest.mark.parametrize("spec", ["ring5"])
def test_rest_reports_links_hosts_and_paths(labs, spec):
    ctl, lab = labs.get(spec)
    doc = wait_topology(ctl, lab, timeout=240)
    assert lab.pingall().loss_percent == 0
    # Ports: hosts' ports are edge, inter-switch ports are links; exactly
    # one ring link is off the broadcast tree (both directions listed).
    roles = {(s["dpid_int"], p["port_no"]): p["role"] for s in doc["switches"] for p in s["ports"]}
    for host in lab.host_names():
        assert roles[attachment(lab, host)] == "edge", host
    for link in switch_links(lab):
        for end in link:
            assert roles[end] == "link", end
    assert sum(1 for link in doc["links"] if not link["tree"]) == 2

    hosts = hosts_by_mac(ctl)
    for name in lab.host_names():
        node = lab[name]
        host = hosts[node.MAC()]
        dpid, port = attachment(lab, name)
        assert (host["dpid"], host["port"]) == (ctl.rest.get("/api/v1/switches/%d" % dpid)["dpid"], port)
        assert node.IP() in host["ipv4"], host
    by_ip = ctl.rest.get("/api/v1/hosts?ip=%s" % lab["h2"].IP())
    assert [h["mac"] for h in by_ip] == [lab["h2"].MAC()]
    assert len(ctl.rest.get("/api/v1/hosts?dpid=3")) == 1
    bad = ctl.rest.request("GET", "/api/v1/hosts?mac=nope")
    assert bad.status == 422 and bad.json["field"] == "mac", bad

    path = ctl.rest.get("/api/v1/paths?src=%s&dst=%s" % (lab["h1"].IP(), lab["h3"].MAC()))
    hops = [(switch_name(h["dpid"]), h["in_port"], h["out_port"]) for h in path["hops"]]
    assert hops[0][:2] == ("s1", attachment(lab, "h1")[1])
    assert hops[-1] == ("s3", hops[-1][1], attachment(lab, "h3")[1])
    assert len(hops) == 3, "ring of 5: h1 to h3 is two links away: %s" % hops
    unknown = ctl.rest.request("GET", "/api/v1/paths?src=%s&dst=10.9.9.9" % lab["h1"].IP())
    assert unknown.status == 404 and unknown.json["field"] == "dst", unknown


# Ordered so that neighbouring tests share a network: the ring with the
# REST test above, the fat-tree with the iperf test below.
SPECS = [
    "ring5",
    "linear4",
    "tree23",
    "diamond",
    pytest.param("fattree4", marks=pytest.mark.timeout_secs(900)),
]


@pytest.mark.parametrize("spec", SPECS)
def test_pingall_without_storm(labs, spec):
    ctl, lab = labs.get(spec)
    wait_topology(ctl, lab, timeout=240)
    n = len(lab.hosts)
    pairs = n * (n - 1)
    directed = 2 * len(switch_links(lab))
    packet_ins = metric(ctl, "flowgate_packet_ins_total")
    started = time.monotonic()

    result = lab.pingall()
    assert result.loss_percent == 0, result

    elapsed = time.monotonic() - started
    packet_ins = metric(ctl, "flowgate_packet_ins_total") - packet_ins
    # Per pair: an ARP request and reply copied to topology, the request
    # trapped for proxy-ARP, a first packet per unknown source; plus LLDP
    # (one packet-in per directed link per round). A storm makes millions.
    lldp = directed * (elapsed / LLDP_INTERVAL + 2)
    bound = 6 * pairs + 1.5 * lldp + 100
    print("%s: %d pairs in %.1fs, %d packet-ins (bound %d)" % (spec, pairs, elapsed, packet_ins, bound))
    assert packet_ins <= bound, "controller packet-in rate suggests a storm"
    # Each broadcast crosses each switch's flood table at most once.
    floods = flood_packets(lab)
    assert floods <= pairs * len(lab.switches), "flood tables matched %d packets" % floods


@pytest.mark.timeout_secs(900)
def test_iperf_between_the_farthest_fat_tree_hosts(labs):
    ctl, lab = labs.get("fattree4")
    wait_topology(ctl, lab, timeout=240)
    assert lab.ping("h1", "h16", count=3) == 3
    # h1 (pod 0) and h16 (pod 3): edge - aggregation - core - aggregation - edge.
    path = ctl.rest.get("/api/v1/paths?src=%s&dst=%s" % (lab["h1"].MAC(), lab["h16"].MAC()))
    assert len(path["hops"]) == 5, path
    mbps = lab.iperf("h1", "h16", seconds=5)
    print("fat-tree h1 -> h16: %.1f Mbit/s over %s" % (mbps, [switch_name(h["dpid"]) for h in path["hops"]]))
    assert mbps > 5, "TCP h1->h16: %.1f Mbit/s" % mbps
