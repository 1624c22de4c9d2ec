"""Host-aware reactions on real Open vSwitch, from the switches' own counters
(issue 17): a host sending more than a threshold through its access port is
rate-limited through the QoS module within two polls, measured with iperf3 at
the receiver, and the limit is reverted once it stops; a controller restart
in the middle re-applies and reverts nothing. The audit trail shows the whole
sequence. (Ganglia-driven reactions: tests/test_hostaware_ganglia.py.)

topologies/linear3.yaml: h1-s1-s2-s3-h3, h2 on s2; h1=10.0.0.1, h2=10.0.0.2.
"""

import json
import os
import time

import pytest

from conftest import new_controller, release_controller, topology
from flowgate_lab import LabNet, wait_until
from flowgate_lab.checks import wait_controller_ready
from flowgate_lab.ovs import bridges_connected
from flowgate_lab.util import pid_alive

HA = "/api/v1/hostaware"
LIMIT_KBPS = 2000
THRESHOLD = 20e6  # bit/s from h1 into s1
CLEAR = 1e6


@pytest.fixture(scope="module")
def lab():
    ctl = new_controller()
    lab = LabNet(topology("linear3"), ctl)
    try:
        lab.start(connect_timeout=90)
        wait_controller_ready(ctl, [1, 2, 3])
        assert lab.pingall().loss_percent == 0
        rest(ctl, "POST", HA + "/hosts", {"id": "h1", "ip": "10.0.0.1"})
        rest(ctl, "POST", HA + "/rules", {
            "id": 1, "name": "h1 floods", "hosts": {"host": "h1"}, "metric": "switch:rx_bps",
            "comparator": ">", "threshold": THRESHOLD, "clear": CLEAR, "for": 2, "interval_s": 1,
            "action": {"type": "rate_limit", "kbps": LIMIT_KBPS},
        })
        yield ctl, lab
    finally:
        lab.stop()
        release_controller(ctl)


def rest(ctl, method, path, body=None, want=(200, 201)):
    resp = ctl.rest.request(method, path, body)
    assert resp.status in want, "%s %s -> %d %s" % (method, path, resp.status, resp.text)
    return resp.json


def events(ctl, since=0):
    return rest(ctl, "GET", HA + "/events?since=%d" % since)


def last_seq(ctl):
    return max([e["seq"] for e in events(ctl)] or [0])


def hostaware_policies(ctl):
    return [p for p in rest(ctl, "GET", "/api/v1/qos/policies") if (p.get("origin") or "").startswith("hostaware/")]


class Traffic:
    """iperf3 h1 -> h2 in the background; the server's per-second receive
    rates once it ends."""

    def __init__(self, lab, seconds):
        self.lab, self.seconds = lab, seconds
        self.out = "/tmp/flowgate-ha-iperf-%d.json" % os.getpid()

    def start(self):
        h1, h2 = self.lab["h1"], self.lab["h2"]
        self.server = h2.cmd("iperf3 -s -1 -p 5301 -J > %s 2>&1 & echo $!" % self.out).strip().splitlines()[-1]
        wait_until(lambda: ":5301 " in h2.cmd("ss -Hltn"), 10, what="iperf3 server")
        self.client = h1.cmd("iperf3 -c 10.0.0.2 -p 5301 -t %d >/dev/null 2>&1 & echo $!" % self.seconds)
        self.client = self.client.strip().splitlines()[-1]
        self.started = time.monotonic()
        return self

    def rates(self):
        """Mbit/s received in each second."""
        wait_until(lambda: not pid_alive(int(self.server)), self.seconds + 30, what="iperf3 to finish")
        with open(self.out, encoding="utf-8") as fh:
            text = fh.read()
        os.unlink(self.out)
        doc = json.loads(text[text.index("{"):])
        return [i["sum"]["bits_per_second"] / 1e6 for i in doc["intervals"]]

    def stop(self):
        for pid in (self.client, self.server):
            if pid.isdigit() and pid_alive(int(pid)):
                os.kill(int(pid), 9)


def wait_kind(ctl, kind, since, timeout):
    try:
        return wait_until(
            lambda: [e for e in events(ctl, since) if e["kind"] == kind],
            timeout,
            interval=0.2,
            what="a %s event" % kind,
        )[0]
    except Exception:
        print("events since %d: %s" % (since, json.dumps(events(ctl, since), indent=1)))
        print("h1: %s" % json.dumps(rest(ctl, "GET", HA + "/hosts/h1"), indent=1))
        raise


@pytest.mark.timeout_secs(180)
def test_a_host_over_its_threshold_is_rate_limited_then_released(lab):
    ctl, net = lab
    since = last_seq(ctl)
    traffic = Traffic(net, seconds=14).start()
    try:
        applied = wait_kind(ctl, "ACTION_APPLIED", since, 20)
        reacted = time.monotonic() - traffic.started
        (policy,) = hostaware_policies(ctl)
        assert policy["origin"] == "hostaware/rule-1/h1/qos", policy
        assert policy["actions"]["meter"]["rate"] == LIMIT_KBPS
        # Owned by host-aware: refused for manual edits.
        r = ctl.rest.request("DELETE", "/api/v1/qos/policies/%d" % policy["id"])
        assert r.status == 409 and "hostaware" in r.text, r
        host = rest(ctl, "GET", HA + "/hosts/h1")
        assert host["status"]["location"] == {"dpid": "00:00:00:00:00:00:00:01", "port": 1}, host
        assert host["status"]["metrics"]["switch:rx_bps"]["value"] > THRESHOLD
        assert [r["rule"] for r in host["status"]["reactions"]] == [1]
        rates = traffic.rates()
    finally:
        traffic.stop()
    reverted = wait_kind(ctl, "REVERTED", applied["seq"], 15)
    assert hostaware_policies(ctl) == []
    free, limited = rates[0], rates[int(reacted) + 2:]
    print("\nhost-aware: reacted after %.1f s; h1->h2 %.0f Mbit/s before, %s after"
          % (reacted, free, " ".join("%.2f" % r for r in limited)))
    assert reacted < 6, "two 1 s polls and the QoS write"
    assert free > THRESHOLD / 1e6
    assert limited and max(limited) < LIMIT_KBPS / 1000 * 1.4, limited
    kinds = [e["kind"] for e in events(ctl, since) if e["seq"] <= reverted["seq"]]
    assert kinds == ["THRESHOLD_MET", "ACTION_APPLIED", "INFO", "REVERTED"], kinds
    assert net.iperf("h1", "h2", seconds=2) > LIMIT_KBPS / 1000 * 3, "released"
    # That burst may trip the rule again: let it recover before the next test.
    wait_until(lambda: rest(ctl, "GET", HA + "/reactions") == [], 20, what="no reaction in place")


@pytest.mark.timeout_secs(240)
def test_a_restart_in_the_middle_neither_reapplies_nor_reverts(lab):
    ctl, net = lab
    wait_until(lambda: rest(ctl, "GET", HA + "/reactions") == [], 20, what="no reaction in place")
    since = last_seq(ctl)
    traffic = Traffic(net, seconds=25).start()
    try:
        applied = wait_kind(ctl, "ACTION_APPLIED", since, 20)
        (before,) = hostaware_policies(ctl)
        ctl.kill9()
        ctl.start()
        wait_until(lambda: bridges_connected(net.switch_names()), 60, what="switches to reconnect")
        wait_controller_ready(ctl, [1, 2, 3])
        restarted = last_seq(ctl)
        time.sleep(5)
        (after,) = hostaware_policies(ctl)
        assert after["id"] == before["id"], "the same policy, not a new one"
        later = [e["kind"] for e in events(ctl, restarted)]
        assert "ACTION_APPLIED" not in later and "REVERTED" not in later, later
        assert rest(ctl, "GET", HA + "/reactions")[0]["rule"] == 1
        traffic.rates()
    finally:
        traffic.stop()
    wait_kind(ctl, "REVERTED", applied["seq"], 20)
    assert hostaware_policies(ctl) == []
