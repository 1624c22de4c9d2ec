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
# Edge delay of the restarted controller (the default is 3 s).
RESTART_EDGE_DELAY_SECS = 10


def ready_switches(ctl):
    """Dpids that GET /topology reports ready."""
    doc = ctl.rest.get("/api/v1/topology")
    return {s["dpid_int"] for s in doc.get("switches", []) if s.get("ready")}


def reprobed(lab, src, dst):
    """Marks `src`'s neighbour entry for `dst` stale and pings `dst`, so the
    kernel re-checks it with unicast ARP probes (one second after the first
    ping, one a second, three before giving up); `ip neigh`'s line for it
    once the ping is done, after the first probe's time and before the
    last's."""
    host, peer = lab.net[src], lab.net[dst]
    intf = host.defaultIntf().name
    host.cmd("sysctl -qw net.ipv4.neigh.%s.delay_first_probe_time=1" % intf)
    host.cmd("ip neigh replace %s lladdr %s dev %s nud stale" % (peer.IP(), peer.MAC(), intf))
    lab.ping(src, dst, count=6, interval=0.5)
    return host.cmd("ip neigh show %s dev %s" % (peer.IP(), intf)).strip()


def test_restart_keeps_flows_and_traffic(linear3, tmp_path):
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
    # A host re-checking a neighbour it knows (Linux's unicast ARP probe)
    # is answered by that neighbour: the switches forward the probe, so no
    # controller is needed for it.
    state = reprobed(lab, "h1", "h3")
    assert "REACHABLE" in state, "h1's unicast ARP probe for h3 went unanswered: %s" % state

    # A long edge delay holds the restarted controller in the window before
    # discovery settles, where it knows neither topology nor hosts and must
    # keep to the flows it found.
    config = tmp_path / "slow-discovery.toml"
    config.write_text("[topology]\nedge_delay = %d\n" % RESTART_EDGE_DELAY_SECS)
    ctl.config = str(config)
    ctl.start()
    wait_until(lambda: bridges_connected(names), 60, what="switches to reconnect")
    # Hosts that already talked must not notice the restart, even when they
    # have to resolve each other's address again.
    for host in ("h1", "h3"):
        lab.net[host].cmd("ip neigh flush all")
    assert lab.ping("h1", "h3", count=5) == 5, "traffic disturbed while the controller reconnected"
    assert not ready_switches(ctl), "the check above ran after discovery settled; it proves nothing"
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
