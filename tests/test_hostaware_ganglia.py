"""Host-aware reactions driven by real Ganglia (issue 17): a gmond in every
Mininet host reporting to a collector gmond and gmetad (LAB.md; harness
mininet/flowgate_lab/ganglia.py), metrics driven deterministically with
`gmetric`, the controller reading gmond's XML and gmetad's RRD files.

- A custom metric over its threshold quarantines h3 (only h2 answers it)
  within two polls; back under the clear threshold, the quarantine goes.
- An RRD metric over its threshold rate-limits h3, measured with iperf3.
- gmetad stopped: SOURCE_STALE, and a metric over the threshold meanwhile
  does nothing.
- A controller restarted while a quarantine holds re-applies and reverts
  nothing; the audit trail shows each whole sequence.

topologies/linear3.yaml: h1-s1-s2-s3-h3, h2 on s2; h1..h3 = 10.0.0.1..3.
"""

import time

import pytest

from conftest import new_controller, release_controller, topology
from flowgate_lab import LabNet, wait_until
from flowgate_lab.checks import wait_controller_ready
from flowgate_lab.ganglia import Ganglia
from flowgate_lab.ovs import bridges_connected

HA = "/api/v1/hostaware"
STEP = 5  # gmetad's polling interval and the RRD files' step
POLL = 2  # the gmond rule's poll interval


@pytest.fixture(scope="module")
def lab():
    ctl = new_controller()
    net = LabNet(topology("linear3"), ctl)
    ganglia = None
    try:
        net.start(connect_timeout=90)
        wait_controller_ready(ctl, [1, 2, 3])
        assert net.pingall().loss_percent == 0
        ganglia = Ganglia([net["h1"], net["h2"], net["h3"]], cluster="lab", step=STEP).start()
        ip, port = ganglia.xml_addr
        rest(ctl, "PUT", HA + "/settings", {"rrd_root": ganglia.rrd_root, "gmond": "%s:%d" % (ip, port),
                                            "stale_after_s": 15})
        rest(ctl, "POST", HA + "/hosts", {"id": "h3", "ip": "10.0.0.3", "cluster": "lab"})
        for host in ("h1", "h2", "h3"):
            ganglia.gmetric(host, "fg_load", 5)
            ganglia.gmetric(host, "fg_net", 5)
        ganglia.wait_rrd("h3", "fg_net", timeout=60)
        yield ctl, net, ganglia
    finally:
        if ganglia is not None:
            ganglia.stop()
        net.stop()
        release_controller(ctl)


def rest(ctl, method, path, body=None, want=(200, 201)):
    resp = ctl.rest.request(method, path, body)
    assert resp.status in want, "%s %s -> %d %s" % (method, path, resp.status, resp.text)
    return resp.json


def events(ctl, since=0, **filters):
    query = "&".join("%s=%s" % kv for kv in filters.items())
    return rest(ctl, "GET", HA + "/events?since=%d%s" % (since, "&" + query if query else ""))


def last_seq(ctl):
    return max([e["seq"] for e in events(ctl)] or [0])


def wait_event(ctl, kind, since, timeout, rule=None):
    def found():
        return [e for e in events(ctl, since) if e["kind"] == kind and (rule is None or e["rule"] == rule)]

    return wait_until(found, timeout, interval=0.2, what="a %s event" % kind)[0]


def quarantine_rules(ctl):
    return [r for r in rest(ctl, "GET", "/api/v1/firewall/rules")
            if (r.get("origin") or "").startswith("hostaware/rule-1/h3/")]


def pings(net, src, dst):
    return net.ping(src, dst, count=2, wait=1)


def with_rule(ctl, rule):
    """Adds `rule` for the test; the caller deletes it."""
    rest(ctl, "POST", HA + "/rules", rule)


QUARANTINE = {
    "id": 1, "name": "h3 overloaded", "hosts": {"host": "h3"}, "metric": "gmond:fg_load",
    "comparator": ">", "threshold": 50, "clear": 20, "for": 1, "interval_s": POLL,
    "action": {"type": "quarantine", "allow": ["10.0.0.2"]},
}


@pytest.mark.timeout_secs(240)
def test_a_metric_over_its_threshold_quarantines_the_host_and_recovery_frees_it(lab):
    ctl, net, ganglia = lab
    with_rule(ctl, QUARANTINE)
    try:
        since = last_seq(ctl)
        assert pings(net, "h3", "h1") == 2
        sent = time.monotonic()
        ganglia.gmetric("h3", "fg_load", 80)
        applied = wait_event(ctl, "ACTION_APPLIED", since, 30)
        reaction = time.monotonic() - sent
        rules = quarantine_rules(ctl)
        assert [r["action"] for r in rules] == ["allow", "deny"], rules
        r = ctl.rest.request("DELETE", "/api/v1/firewall/rules/%d" % rules[1]["id"])
        assert r.status == 409 and "hostaware" in r.text, "refused for manual edits: %s" % r
        assert pings(net, "h3", "h1") == 0, "quarantined h3 reaches h1"
        assert pings(net, "h3", "h2") == 2, "h3's allowed peer answers"
        values = rest(ctl, "GET", HA + "/hosts/h3/metrics/gmond:fg_load?window=120")
        assert values["points"][-1]["value"] == 80 and values["thresholds"][0]["threshold"] == 50

        sent = time.monotonic()
        ganglia.gmetric("h3", "fg_load", 10)
        wait_event(ctl, "REVERTED", applied["seq"], 30)
        revert = time.monotonic() - sent
        assert quarantine_rules(ctl) == []
        assert pings(net, "h3", "h1") == 2
        kinds = [e["kind"] for e in events(ctl, since, rule=1)]
        assert kinds == ["THRESHOLD_MET", "ACTION_APPLIED", "INFO", "REVERTED"], kinds
        print("\nhost-aware (gmond, %d s polls): quarantine %.1f s after gmetric, lifted %.1f s after"
              % (POLL, reaction, revert))
        assert reaction < 2 * POLL + 2, "within two polls (and the firewall write)"
    finally:
        rest(ctl, "DELETE", HA + "/rules/1")


@pytest.mark.timeout_secs(240)
def test_an_rrd_metric_rate_limits_the_host_measured_with_iperf(lab):
    ctl, net, ganglia = lab
    with_rule(ctl, {
        "id": 2, "hosts": {"host": "h3"}, "metric": "fg_net", "consolidation": "max", "window_s": STEP,
        "comparator": ">=", "threshold": 100, "clear": 50, "interval_s": STEP,
        "action": {"type": "rate_limit", "kbps": 2000},
    })
    try:
        since = last_seq(ctl)
        free = net.iperf("h3", "h1", seconds=3)
        sent = time.monotonic()
        ganglia.gmetric("h3", "fg_net", 150)
        wait_event(ctl, "ACTION_APPLIED", since, 60, rule=2)
        reaction = time.monotonic() - sent
        limited = net.iperf("h3", "h1", seconds=4)
        print("\nhost-aware (RRD, %d s step): rate limit %.1f s after gmetric; h3->h1 %.0f -> %.2f Mbit/s"
              % (STEP, reaction, free, limited))
        assert free > 20 and limited < 2.6, (free, limited)
        ganglia.gmetric("h3", "fg_net", 5)
        wait_event(ctl, "REVERTED", since, 60, rule=2)
        assert net.iperf("h3", "h1", seconds=2) > 20
    finally:
        rest(ctl, "DELETE", HA + "/rules/2")


@pytest.mark.timeout_secs(240)
def test_a_stale_source_warns_and_does_nothing(lab):
    ctl, net, ganglia = lab
    with_rule(ctl, {
        "id": 3, "hosts": {"host": "h3"}, "metric": "fg_load", "comparator": ">", "threshold": 50,
        "interval_s": STEP, "action": {"type": "block"},
    })
    since = last_seq(ctl)
    try:
        ganglia.stop_gmetad()
        stale = wait_event(ctl, "SOURCE_STALE", since, 60, rule=3)
        assert "stale" in stale["message"], stale
        ganglia.gmetric("h3", "fg_load", 90)  # the files do not see it
        time.sleep(3 * STEP)
        kinds = [e["kind"] for e in events(ctl, since, rule=3)]
        assert kinds == ["SOURCE_STALE"], "a stale source neither acts nor warns twice: %s" % kinds
        assert pings(net, "h3", "h1") == 2
    finally:
        ganglia.gmetric("h3", "fg_load", 5)
        ganglia.start_gmetad()
        rest(ctl, "DELETE", HA + "/rules/3")
    assert not [e for e in events(ctl, since, rule=3) if e["kind"] == "ACTION_APPLIED"]


@pytest.mark.timeout_secs(300)
def test_a_restart_while_a_quarantine_holds_reapplies_and_reverts_nothing(lab):
    ctl, net, ganglia = lab
    with_rule(ctl, QUARANTINE)
    try:
        since = last_seq(ctl)
        ganglia.gmetric("h3", "fg_load", 80)
        applied = wait_event(ctl, "ACTION_APPLIED", since, 30)
        before = [r["id"] for r in quarantine_rules(ctl)]
        ctl.kill9()
        ctl.start()
        wait_until(lambda: bridges_connected(net.switch_names()), 60, what="switches to reconnect")
        wait_controller_ready(ctl, [1, 2, 3])
        restarted = last_seq(ctl)
        time.sleep(3 * POLL)
        assert [r["id"] for r in quarantine_rules(ctl)] == before, "the same firewall rules"
        later = [e["kind"] for e in events(ctl, restarted)]
        assert "ACTION_APPLIED" not in later and "REVERTED" not in later, later
        assert pings(net, "h3", "h1") == 0 and pings(net, "h3", "h2") == 2, "still quarantined"
        ganglia.gmetric("h3", "fg_load", 10)
        wait_event(ctl, "REVERTED", applied["seq"], 30)
        assert quarantine_rules(ctl) == [] and pings(net, "h3", "h1") == 2
    finally:
        ganglia.gmetric("h3", "fg_load", 5)
        rest(ctl, "DELETE", HA + "/rules/1")
