"""A switch that speaks only OpenFlow 1.5 is refused with HELLO_FAILED and
never listed; the switches that speak 1.3 are unaffected."""

import os
import time

import pytest

from flowgate_lab.nodes import OWNER_KEY
from flowgate_lab.ovs import bridge_connection, bridge_external_ids, bridges, vsctl
from flowgate_lab.util import LabError, pid_alive

BRIDGE = "fgv15"
DPID = 0xF15


@pytest.fixture
def of15_bridge(linear3):
    ctl, _ = linear3
    if BRIDGE in bridges():
        owner = bridge_external_ids(BRIDGE).get(OWNER_KEY, "")
        if owner.isdigit() and not pid_alive(int(owner)):
            vsctl("del-br", BRIDGE)
        else:
            raise LabError("bridge %s exists and is not a leftover of ours" % BRIDGE)
    vsctl(
        "add-br", BRIDGE,
        "--", "set", "bridge", BRIDGE, "datapath_type=netdev", "protocols=OpenFlow15",
        "fail_mode=secure", "other-config:datapath-id=%016x" % DPID,
        "other-config:disable-in-band=true", "external_ids:%s=%d" % (OWNER_KEY, os.getpid()),
        "--", "set-controller", BRIDGE, "tcp:%s:%d" % (ctl.of_host, ctl.of_port),
    )  # fmt: skip
    try:
        yield BRIDGE
    finally:
        vsctl("--if-exists", "del-br", BRIDGE)


def test_openflow15_only_switch_is_refused(linear3, of15_bridge):
    ctl, lab = linear3
    line = ctl.wait_for_log("HELLO_FAILED", "no common OpenFlow version", timeout=30)
    assert line
    # Watch for a while: the bridge keeps retrying and must never be listed.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        dpids = {sw["dpid_int"] for sw in ctl.rest.switches()}
        assert DPID not in dpids, "OpenFlow 1.5-only bridge listed: %s" % dpids
        assert not any(bridge_connection(of15_bridge).values())
        time.sleep(0.5)
    assert ctl.rest.health()["switches"] == 3
    assert ctl.rest.request("GET", "/api/v1/switches/%d" % DPID).status == 404
    result = lab.pingall()
    assert result.loss_percent == 0, result
