"""Host-aware reactions through the load balancer, on real Open vSwitch
(issue 17 items 4 and 5).

tree,2,3 as in tests/test_lb.py: backends h1, h4, h7 (10.0.0.1/.4/.7) serve
HTTP on 8080 behind VIPs; h2 is the client. h1 is made "busy"
deterministically: iperf3 from h1 to h3 at 50 Mbit/s, which its access port
counts (`switch:rx_bps`, what s2 receives from h1).

1. `lb_drain`: rule "h1 sends > 20 Mbit/s for 2 polls of 1 s" drains h1 in
   pool web (hash VIP 10.0.0.100): new connections shift to h4/h7, h1's
   member shows the hold (origin, held), and once h1 is quiet the rule
   reverts and h1 takes connections again.
2. Load-aware balancing: pool la (weighted VIP 10.0.0.101) with
   `load_aware` on `switch:rx_bps` (idle 0, busy 20 Mbit/s, weights
   10..100): h1's weight falls to 10 while it is busy, its share of new
   connections with it, and comes back to 100 when it stops.
3. A controller restart (kill -9) while h1 is drained: the hold is found
   again (no re-apply, no revert) and recovery still restores the member.

Run with -s to see the measured distributions and reaction times.
"""

import os
import shutil
import tempfile
import time

import pytest

from conftest import new_controller, release_controller
from flowgate_lab import LabNet, wait_until
from flowgate_lab.checks import wait_controller_ready
from flowgate_lab.ovs import bridges_connected
from flowgate_lab.util import pid_alive
from test_lb import BACKENDS, Lab as LbLab

HA = "/api/v1/hostaware"
VIP, LA_VIP = "10.0.0.100", "10.0.0.101"
THRESHOLD, CLEAR = 20e6, 1e6
BUSY_RATE = "50M"
N = 30


@pytest.fixture(scope="module")
def lab():
    run_dir = tempfile.mkdtemp(prefix="flowgate-halb-")
    ctl = new_controller()
    net = LabNet("tree,2,3", ctl)
    lab = None
    try:
        net.start(connect_timeout=90)
        wait_controller_ready(ctl, [1, 2, 3, 4])
        lab = LbLab(ctl, net, run_dir)
        for host in BACKENDS:
            lab.start_server(host)
        assert net.ping("h2", "h1", count=1) and net.ping("h5", "h4", count=1)
        assert net.ping("h2", "h7", count=1) and net.ping("h1", "h3", count=1)
        yield lab
    finally:
        if lab is not None:
            for host in list(lab.servers):
                lab.kill_server(host)
        net.stop()
        release_controller(ctl)
        shutil.rmtree(run_dir, ignore_errors=True)


def rest(lab, method, path, body=None, want=(200, 201)):
    resp = lab.ctl.rest.request(method, path, body)
    assert resp.status in want, "%s %s -> %d %s" % (method, path, resp.status, resp.text)
    return resp.json


def events(lab, since=0):
    return rest(lab, "GET", HA + "/events?since=%d" % since)


def last_seq(lab):
    return max([e["seq"] for e in events(lab)] or [0])


def wait_kind(lab, kind, since, timeout):
    return wait_until(
        lambda: [e for e in events(lab, since) if e["kind"] == kind],
        timeout, interval=0.2, what="a %s event" % kind,
    )[0]


class Busy:
    """h1 sends iperf3 TCP at BUSY_RATE to h3 until stopped (PIDs we started
    are the only ones killed)."""

    def __init__(self, lab, port):
        self.net, self.port = lab.net, port

    def __enter__(self):
        h1, h3 = self.net["h1"], self.net["h3"]
        self.server = h3.cmd("iperf3 -s -p %d >/dev/null 2>&1 & echo $!" % self.port).strip().splitlines()[-1]
        wait_until(lambda: ":%d " % self.port in h3.cmd("ss -Hltn"), 10, what="iperf3 server")
        self.client = h1.cmd("iperf3 -c 10.0.0.3 -p %d -b %s -t 120 >/dev/null 2>&1 & echo $!"
                             % (self.port, BUSY_RATE)).strip().splitlines()[-1]
        self.started = time.monotonic()
        return self

    def stop(self):
        for pid in (self.client, self.server):
            if pid.isdigit() and pid_alive(int(pid)):
                os.kill(int(pid), 9)
        self.stopped = time.monotonic()

    def __exit__(self, *exc):
        self.stop()


def share_text(shares):
    return " ".join("%s %d%%" % (b, round(100 * s)) for b, s in shares.items())


def member(lab, pool, address):
    return [m for m in lab.rest("GET", "/pools/%s/members" % pool) if m["address"] == address][0]


@pytest.mark.timeout_secs(240)
def test_lb_drain_shifts_new_connections_away_from_a_busy_member_and_recovery_reverts_it(lab):
    lab.rest("POST", "/pools", {"id": "web", "members": [
        {"address": lab.net[h].IP(), "port": 8080} for h in BACKENDS]})
    lab.rest("POST", "/vips", {"id": "web", "address": VIP, "port": 80, "pool": "web"})
    rest(lab, "POST", HA + "/hosts", {"id": "h1", "ip": "10.0.0.1"})
    rest(lab, "POST", HA + "/rules", {
        "id": 1, "name": "h1 busy", "hosts": {"host": "h1"}, "metric": "switch:rx_bps",
        "comparator": ">", "threshold": THRESHOLD, "clear": CLEAR, "for": 2, "interval_s": 1,
        "action": {"type": "lb_drain", "pool": "web"},
    })
    before, failed = lab.shares(lab.requests("h2", 40000, N))
    assert not failed, failed[:5]
    since = last_seq(lab)
    with Busy(lab, 5302) as busy:
        applied = wait_kind(lab, "ACTION_APPLIED", since, 20)
        reacted = time.monotonic() - busy.started
        held = member(lab, "web", "10.0.0.1")
        assert held["admin_state"] == "drain" and held["in_rotation"] is False, held
        assert held["origin"] == "hostaware/rule-1/h1/lb", held
        assert held["held"] == {"weight": 1, "admin_state": "enabled"}, held
        assert applied["resources"] == [{"kind": "lb_member", "pool": "web", "member": "10.0.0.1:8080"}]
        # Refused for manual edits while held.
        r = lab.ctl.rest.request("PUT", "/api/v1/lb/pools/web/members/10.0.0.1:8080",
                                 {"address": "10.0.0.1", "port": 8080, "admin_state": "enabled"})
        assert r.status == 409 and "hostaware/rule-1/h1/lb" in r.text, r.text
        during, failed = lab.shares(lab.requests("h2", 41000, N))
        assert not failed, failed[:5]
    reverted = wait_kind(lab, "REVERTED", applied["seq"], 20)
    revert_time = time.monotonic() - busy.stopped
    back = member(lab, "web", "10.0.0.1")
    assert back["admin_state"] == "enabled" and "held" not in back and "origin" not in back, back
    after, failed = lab.shares(lab.requests("h2", 42000, N))
    assert not failed, failed[:5]
    print("\nlb_drain, %d connections each from h2 to %s: before %s | h1 busy (drained) %s | after %s"
          % (N, VIP, share_text(before), share_text(during), share_text(after)))
    print("lb_drain: applied %.1f s after h1 got busy (rule: for 2 polls of 1 s); reverted %.1f s after "
          "it stopped" % (reacted, revert_time))
    assert before["h1"] > 0 and after["h1"] > 0, (before, after)
    assert during["h1"] == 0, during
    assert reacted < 8 and revert_time < 10
    kinds = [e["kind"] for e in events(lab, since) if e["seq"] <= reverted["seq"] and e.get("rule") == 1]
    assert kinds == ["THRESHOLD_MET", "ACTION_APPLIED", "INFO", "REVERTED"], kinds
    rest(lab, "DELETE", HA + "/rules/1")


@pytest.mark.timeout_secs(240)
def test_load_aware_weights_follow_the_members_traffic(lab):
    since = last_seq(lab)
    lab.rest("POST", "/pools", {
        "id": "la",
        "members": [{"address": lab.net[h].IP(), "port": 8080, "weight": 100} for h in BACKENDS],
        "load_aware": {"metric": "rx_bps", "source": "switch", "idle": 0, "busy": THRESHOLD,
                       "min_weight": 10, "max_weight": 100, "smoothing": 1, "min_step": 5,
                       "interval_s": 1},
    })
    # A VIP that ignores weights is refused, naming the field.
    r = lab.ctl.rest.request("POST", "/api/v1/lb/vips",
                             {"id": "la", "address": LA_VIP, "port": 80, "pool": "la"})
    assert r.status == 422 and r.json["field"] == "method", r.text
    lab.rest("POST", "/vips", {"id": "la", "address": LA_VIP, "port": 80, "pool": "la",
                               "method": "weighted"})

    def weights():
        return {m["address"]: m["weight"] for m in lab.rest("GET", "/pools/la/members")}

    time.sleep(3)
    assert set(weights().values()) == {100}, weights()
    before, failed = lab.shares(lab.requests("h2", 43000, 2 * N, vip=LA_VIP))
    assert not failed, failed[:5]
    with Busy(lab, 5303) as busy:
        low = wait_until(lambda: weights()["10.0.0.1"] <= 20 and weights(), 20, interval=0.2,
                         what="h1's weight to fall")
        lowered = time.monotonic() - busy.started
        m = member(lab, "la", "10.0.0.1")
        assert m["origin"] == "hostaware/load-aware/la" and m["bucket_weights"]["la"] == m["weight"], m
        during, failed = lab.shares(lab.requests("h2", 44000, 2 * N, vip=LA_VIP))
        assert not failed, failed[:5]
    wait_until(lambda: weights()["10.0.0.1"] == 100, 20, interval=0.2, what="h1's weight back")
    restored = time.monotonic() - busy.stopped
    print("\nload-aware (switch:rx_bps, busy %d Mbit/s, weights 10..100), %d connections each to %s: "
          "before %s | h1 busy, weights %s: %s; weight down %.1f s after it got busy, back to 100 %.1f s "
          "after it stopped"
          % (THRESHOLD / 1e6, 2 * N, LA_VIP, share_text(before), low, share_text(during), lowered, restored))
    assert before["h1"] >= 0.15, before
    assert during["h1"] <= 0.15 and during["h1"] < before["h1"], (before, during)
    events_ = [e["message"] for e in events(lab, since) if "load-aware pool la" in e["message"]]
    assert events_, "the weight changes are in the audit trail"


@pytest.mark.timeout_secs(240)
def test_a_restart_while_a_member_is_drained_neither_reapplies_nor_reverts(lab):
    rest(lab, "POST", HA + "/rules", {
        "id": 2, "hosts": {"host": "h1"}, "metric": "switch:rx_bps", "comparator": ">",
        "threshold": THRESHOLD, "clear": CLEAR, "for": 2, "interval_s": 1,
        "action": {"type": "lb_drain", "pool": "web"},
    })
    since = last_seq(lab)
    with Busy(lab, 5304) as busy:
        applied = wait_kind(lab, "ACTION_APPLIED", since, 20)
        before = member(lab, "web", "10.0.0.1")
        assert before["origin"] == "hostaware/rule-2/h1/lb", before
        lab.ctl.kill9()
        lab.ctl.start()
        wait_until(lambda: bridges_connected(lab.net.switch_names()), 60, what="switches to reconnect")
        wait_controller_ready(lab.ctl, [1, 2, 3, 4])
        restarted = last_seq(lab)
        time.sleep(5)
        after = member(lab, "web", "10.0.0.1")
        for field in ("admin_state", "weight", "origin", "held", "in_rotation"):
            assert after[field] == before[field], (field, before, after)
        later = [e["kind"] for e in events(lab, restarted)]
        assert "ACTION_APPLIED" not in later and "REVERTED" not in later, later
        assert [r["rule"] for r in rest(lab, "GET", HA + "/reactions")] == [2]
        during, failed = lab.shares(lab.requests("h2", 45000, N))
        assert not failed and during["h1"] == 0, (during, failed[:5])
    wait_kind(lab, "REVERTED", applied["seq"], 20)
    back = member(lab, "web", "10.0.0.1")
    assert back["admin_state"] == "enabled" and "held" not in back and back["in_rotation"], back
    print("\nrestart while h1 was drained: same hold after the restart (%s), no re-apply or revert; "
          "released on recovery" % after["origin"])
    rest(lab, "DELETE", HA + "/rules/2")
