"""Restart without disruption: kill -9 the controller, traffic keeps
flowing (fail_mode=secure keeps the flows), and after a restart on the same
data dir the controller leaves the flows it still wants untouched."""

import time

from flowgate_lab import wait_until
from flowgate_lab.checks import compare_flow_snapshots, snapshot_flows, wait_controller_ready
from flowgate_lab.ovs import bridge_connection, bridges_connected

# Time given to the restarted controller to finish reconciling (and do any
# damage) before the flows are compared.
SETTLE_SECS = 5


def test_restart_keeps_flows_and_traffic(linear3):
    ctl, lab = linear3
    names = lab.switch_names()
    assert lab.pingall().loss_percent == 0

    before = snapshot_flows(names)
    taken = time.monotonic()
    learned = [f for flows in before.values() for f in flows.values() if f.owner == "forwarding"]
    assert learned, "no forwarding flows after pingall; nothing to preserve: %s" % before

    ctl.kill9()
    wait_until(
        lambda: not any(any(bridge_connection(n).values()) for n in names),
        30,
        what="switches to notice the controller is gone",
    )
    # Hosts that already talked keep talking on the installed flows.
    assert lab.ping("h1", "h3", count=5) == 5, "traffic stopped while the controller was down"
    assert lab.ping("h3", "h1", count=5) == 5, "traffic stopped while the controller was down"

    ctl.start()
    wait_until(lambda: bridges_connected(names), 60, what="switches to reconnect")
    # Right after the reconnect (before discovery settles) traffic between
    # hosts that already talked must not notice anything either.
    assert lab.ping("h1", "h3", count=5) == 5, "traffic disturbed while the controller reconnected"
    wait_controller_ready(ctl, [1, 2, 3])
    time.sleep(SETTLE_SECS)

    after = snapshot_flows(names)
    elapsed = time.monotonic() - taken
    problems, excused = compare_flow_snapshots(before, after, elapsed)
    assert not problems, "restart disturbed flows (%.1fs after snapshot):\n%s\nexcused: %s" % (
        elapsed,
        "\n".join(problems),
        excused,
    )
    assert lab.pingall().loss_percent == 0
