"""L2 learning on a loop-free topology larger than linear,3."""

import pytest

from conftest import topology
from flowgate_lab import LabNet
from flowgate_lab.checks import wait_controller_ready, wait_rest_switches


@pytest.fixture(scope="module")
def tree23(controller):
    """tree,2,3: s1 above s2..s4, three hosts under each (9 hosts)."""
    lab = LabNet(topology("tree23"), controller)
    lab.start(connect_timeout=90)
    try:
        wait_controller_ready(controller, [1, 2, 3, 4])
        yield controller, lab
    finally:
        lab.stop()


def test_tree_pingall(tree23):
    ctl, lab = tree23
    wait_rest_switches(ctl, [1, 2, 3, 4])
    result = lab.pingall()
    assert result.loss_percent == 0, result
    # Every leaf switch learned the hosts of the other leaves.
    for dpid in (2, 3, 4):
        learned = [f for f in ctl.rest.flows(dpid) if f["owner"] == "forwarding" and f["priority"] > 1]
        assert len(learned) >= 9, "s%d learned only %d flows" % (dpid, len(learned))


def test_tree_tcp_across_the_root(tree23):
    _, lab = tree23
    mbps = lab.iperf("h1", "h9", seconds=3)
    assert mbps > 10, "TCP h1->h9 across s1: %.1f Mbit/s" % mbps
