"""A host forging Flowgate's LLDP probes gets no link and no traffic
(issue 19 item 1), on real Open vSwitch: `linear,3` with two hosts per
switch. The attacker (h1b on s1) copies a genuine probe it received —
controller id, time stamp and tag included — and re-sends it claiming to
be the victim's port (h3a's on s3), while h2a pings the victim. Before the
probes were authenticated this spliced a fake link into the spanning tree
and the attacker captured the victim's traffic.

    FLOWGATE_BIN=target/release/flowgate /usr/bin/python3 -m pytest tests/test_lldp_spoofing.py -v -s
"""

import os
import threading

import pytest

from conftest import new_controller, release_controller
from flowgate_lab import LabNet
from flowgate_lab.topology import TEST_CONFIG, attachment, discovered_links, switch_links, wait_topology

pytestmark = pytest.mark.timeout_secs(240)

FORGER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools", "lldp_forger.py")

SCENARIO = """
name: linear3-two-hosts
description: three switches in a line, two hosts on each
switches:
  - {name: s1, dpid: 1}
  - {name: s2, dpid: 2}
  - {name: s3, dpid: 3}
links:
  - [s1, s2]
  - [s2, s3]
hosts:
  - {name: h1a, switch: s1, ip: 10.0.0.11/24}
  - {name: h1b, switch: s1, ip: 10.0.0.12/24}
  - {name: h2a, switch: s2, ip: 10.0.0.21/24}
  - {name: h2b, switch: s2, ip: 10.0.0.22/24}
  - {name: h3a, switch: s3, ip: 10.0.0.31/24}
  - {name: h3b, switch: s3, ip: 10.0.0.32/24}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("spoof")
    config = base / "flowgate.toml"
    config.write_text(TEST_CONFIG)
    scenario = base / "linear3-two-hosts.yaml"
    scenario.write_text(SCENARIO)
    ctl = new_controller(config=str(config))
    try:
        net = LabNet(str(scenario), ctl)
        net.start(connect_timeout=90)
        try:
            wait_topology(ctl, net)
            yield ctl, net
        finally:
            net.stop()
    finally:
        release_controller(ctl)


def test_a_forged_probe_makes_no_link_and_captures_no_traffic(lab):
    ctl, net = lab
    assert net.pingall().loss_percent == 0
    victim_dpid, victim_port = attachment(net, "h3a")
    attacker = net["h1b"]
    result = {}

    def forge():
        result["out"] = attacker.cmd(
            "timeout 40 python3 %s %s %d %d %s 12" % (
                FORGER, attacker.defaultIntf().name, victim_dpid, victim_port, net["h3a"].IP())
        )  # fmt: skip

    forger = threading.Thread(target=forge, daemon=True)
    forger.start()
    # While the forged probes flow (12 s: several LLDP rounds), h2a pings
    # the victim.
    replies = net.ping("h2a", "h3a", count=5, interval=1)
    forger.join(45)
    out = result.get("out", "")
    print("\nforger: %s; victim replies %d/5" % (out.strip().replace("\n", "; "), replies))
    assert "probe-copied" in out, "the attacker saw a genuine probe to copy: %r" % out
    forged = int(out.split("forged=")[1].split()[0])
    captured = int(out.split("captured=")[1].split()[0])
    assert forged >= 30
    assert replies == 5
    assert captured == 0, "the attacker captured the victim's traffic"
    doc = ctl.rest.get("/api/v1/topology")
    assert discovered_links(doc) == switch_links(net), "no fake link"
    attacker_port = attachment(net, "h1b")
    s1 = next(s for s in doc["switches"] if s["dpid_int"] == attacker_port[0])
    role = next(p["role"] for p in s1["ports"] if p["port_no"] == attacker_port[1])
    assert role == "edge"
    assert ctl.wait_for_log("refused an LLDP probe carrying this controller's id")
