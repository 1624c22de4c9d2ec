"""OpenFlow 1.0 switches: a linear topology (topologies/linear3-of10.yaml) whose bridges only speak
OpenFlow10 forwards traffic through Flowgate's single-table learning, and
the REST API says which modules do not run on them."""

import pytest

from conftest import topology
from flowgate_lab import LabNet
from flowgate_lab.checks import wait_rest_switches
from flowgate_lab.util import run, wait_until

DPIDS = [1, 2, 3]
# Cookie owner id of the forwarding module (controller/src/cookie.rs).
FORWARDING = 0xF002


@pytest.fixture(scope="module")
def linear3_of10(controller):
    lab = LabNet(topology("linear3-of10"), controller)
    lab.start(connect_timeout=90)
    try:
        wait_rest_switches(controller, DPIDS, timeout=60)
        yield controller, lab
    finally:
        lab.stop()


def of10_flows(bridge):
    """(cookie, line) of every flow on an OpenFlow10-only bridge."""
    out = run(["ovs-ofctl", "-O", "OpenFlow10", "--no-names", "dump-flows", bridge])
    flows = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("cookie="):
            flows.append((int(line.split(",", 1)[0].split("=", 1)[1], 16), line))
    return flows


def test_switches_negotiate_openflow_10(linear3_of10):
    ctl, _ = linear3_of10
    for dpid in DPIDS:
        sw = ctl.rest.switch(dpid)
        assert sw["version"] == "1.0", sw
        assert len([p for p in sw["ports"] if p["port_no"] < 0xFF00]) >= 2, sw
        assert "forwarding" not in sw["unavailable_modules"], sw
        assert "topology" in sw["unavailable_modules"], sw


def test_pingall_through_single_table_learning(linear3_of10):
    ctl, lab = linear3_of10
    result = lab.pingall()
    assert result.loss_percent == 0, result
    # The hosts' traffic now runs on learned table-0 flows of forwarding.
    def learned():
        owned = [line for cookie, line in of10_flows("s2") if cookie >> 48 == FORWARDING]
        return owned if owned else None

    owned = wait_until(learned, 10, interval=0.5, what="learned flows on s2")
    assert all("table=0" in line for line in owned), owned
    assert all("idle_timeout=" in line for line in owned), owned
    assert "module flow violates" not in ctl.log_text()


def test_rest_reads_flows_and_port_stats_over_openflow_10(linear3_of10):
    ctl, lab = linear3_of10
    lab.pingall()
    flows = ctl.rest.flows(2)
    owners = {f.get("owner") for f in flows}
    assert "forwarding" in owners, flows
    ports = ctl.rest.ports(2)
    counted = [p for p in ports if (p.get("stats") or {}).get("rx_packets", 0) > 0]
    assert counted, ports
