"""Assertions-with-polling shared by the end-to-end tests."""

import re

from .ovs import dump_flows
from .util import wait_until


def wait_rest_switches(ctl, dpids, timeout=30):
    """Wait until the controller's REST lists exactly `dpids` (ints) among
    its switches; return the switch list."""
    want = set(dpids)

    def listed():
        switches = ctl.rest.switches()
        have = {sw["dpid_int"] for sw in switches}
        return switches if want <= have else None

    return wait_until(listed, timeout, interval=0.5, what="REST to list switches %s" % sorted(want))


def owned_flows(bridge):
    """Flows on `bridge` whose cookie names a Flowgate module."""
    return [f for f in dump_flows(bridge) if f.owner is not None]


def snapshot_flows(bridges):
    """{bridge: {flow.key: Flow}} of Flowgate-owned flows."""
    return {br: {f.key: f for f in owned_flows(br)} for br in bridges}


def compare_flow_snapshots(before, after, elapsed):
    """Flows of `before` that were replaced, reset or removed in `after`.

    A flow that vanished is only excused when its own idle or hard timeout
    can explain it within `elapsed` seconds. Returns (problems, excused),
    lists of human-readable strings."""
    problems, excused = [], []
    for bridge, flows in before.items():
        for key, old in flows.items():
            new = after.get(bridge, {}).get(key)
            if new is None:
                if old.idle_timeout and old.idle_timeout <= elapsed + 1:
                    excused.append("%s: idle-expired %s" % (bridge, old.line))
                elif old.hard_timeout and old.duration + elapsed + 1 >= old.hard_timeout:
                    excused.append("%s: hard-expired %s" % (bridge, old.line))
                else:
                    problems.append("%s: flow gone: %s" % (bridge, old.line))
                continue
            if new.cookie != old.cookie:
                problems.append("%s: cookie changed %#x -> %#x: %s" % (bridge, old.cookie, new.cookie, new.line))
            if new.duration < old.duration:
                problems.append(
                    "%s: duration reset %.3f -> %.3f: %s" % (bridge, old.duration, new.duration, new.line)
                )
            if new.n_packets < old.n_packets:
                problems.append(
                    "%s: n_packets reset %d -> %d: %s" % (bridge, old.n_packets, new.n_packets, new.line)
                )
            if new.actions != old.actions:
                problems.append("%s: actions changed %s -> %s" % (bridge, old.actions, new.actions))
    return problems, excused


def wait_controller_ready(ctl, dpids, timeout=60):
    """Wait until the controller lists `dpids` and, when it has a topology
    module (GET /api/v1/topology answers), reports each of them ready: a
    topology-aware controller keeps new ports out of forwarding until
    discovery has classified them (its edge delay), so traffic sent before
    that is legitimately dropped."""
    wait_rest_switches(ctl, dpids, timeout=timeout)
    if ctl.rest.request("GET", "/api/v1/topology").status == 404:
        return
    want = set(dpids)

    def ready():
        doc = ctl.rest.get("/api/v1/topology")
        return want <= {s["dpid_int"] for s in doc.get("switches", []) if s.get("ready")}

    wait_until(ready, timeout, interval=0.5, what="switches %s ready in GET /topology" % sorted(want))


def ping_replies(output):
    """Sorted sequence numbers of the echo replies in `ping`'s output. Only
    replies count: "From ... icmp_seq=N Destination Host Unreachable" is a
    lost ping."""
    return sorted({int(m) for m in re.findall(r"bytes from [^:]+: icmp_seq=(\d+)", output)})
