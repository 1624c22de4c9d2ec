"""QoS on real Open vSwitch (userspace datapath), on a ring of five
(topologies/ring5.yaml: h1..h5 on s1..s5, 10.0.0.1..5; h1 -> h3 goes s1 s2 s3,
and s1 s5 s4 s3 once s1-s2 is cut).

A meter policy caps one host's TCP while another's is unaffected (iperf3),
DSCP marking shows in tcpdump on the receiver, a path policy follows its
path when a link on it fails, and a controller restart rewrites no meter and
no flow of the QoS module.
"""

import re
import time

import pytest

from conftest import new_controller, release_controller, topology
from flowgate_lab import LabNet, wait_until
from flowgate_lab.checks import compare_flow_snapshots, snapshot_flows, wait_controller_ready
from flowgate_lab.ovs import bridges_connected
from flowgate_lab.topology import TEST_CONFIG, wait_topology

POLICIES = "/api/v1/qos/policies"
IP = {"h%d" % i: "10.0.0.%d" % i for i in range(1, 6)}
# Owner index of the QoS module in meter ids (0x06xxxxxx).
QOS_METER_BASE = 0x06000000


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    config = tmp_path_factory.mktemp("qos") / "flowgate.toml"
    config.write_text(TEST_CONFIG)
    ctl = new_controller(config=str(config))
    lab = LabNet(topology("ring5"), ctl)
    try:
        lab.start(connect_timeout=90)
        wait_topology(ctl, lab, timeout=120)
        assert lab.pingall().loss_percent == 0
        yield ctl, lab
    finally:
        lab.stop()
        release_controller(ctl)


def rest(ctl, method, path, body=None, want=(200, 201)):
    resp = ctl.rest.request(method, path, body)
    assert resp.status in want, "%s %s -> %d %s" % (method, path, resp.status, resp.text)
    return resp.json


def meters(bridge):
    """{meter id: (rate kbps, duration s)} of `bridge`'s QoS meters."""
    config = _ofctl("dump-meters", bridge)
    stats = _ofctl("meter-stats", bridge)
    rates = {int(m): int(r) for m, r in re.findall(r"meter=(\d+) .*?rate=(\d+)", config, re.S)}
    durations = {int(m): float(d) for m, d in re.findall(r"meter:(\d+) .*?duration:([\d.]+)s", stats)}
    return {
        m: (rates[m], durations.get(m, 0.0))
        for m in rates
        if m & 0xFF000000 == QOS_METER_BASE
    }


def _ofctl(cmd, bridge):
    import subprocess

    return subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", cmd, bridge],
        capture_output=True,
        text=True,
        check=True,
        timeout=15,
    ).stdout


def holding(lab, meter_id):
    """Switches that have meter `meter_id`."""
    return sorted(s for s in lab.switch_names() if meter_id in meters(s))


def test_a_meter_caps_one_hosts_tcp_and_not_anothers(ring):
    ctl, lab = ring
    policy = rest(
        ctl,
        "POST",
        POLICIES,
        {
            "priority": 100,
            "match": {"ip_src": IP["h1"], "ip_proto": "tcp"},
            "actions": {"meter": {"rate": 2000}},
            "placement": {"switch": "00:00:00:00:00:00:00:01"},
        },
    )
    assert policy["applied"]["switches"] == ["00:00:00:00:00:00:00:01"], policy
    try:
        capped = lab.iperf("h1", "h2", seconds=5)
        free = lab.iperf("h3", "h2", seconds=5)
        print("\nqos meter: h1->h2 %.2f Mbit/s (2 Mbit/s meter), h3->h2 %.1f Mbit/s" % (capped, free))
        assert 1.7 <= capped <= 2.3, "h1 -> h2 at %.2f Mbit/s under a 2 Mbit/s meter" % capped
        assert free > 10, "h3 -> h2 at %.1f Mbit/s: the meter caught other traffic" % free
        stats = rest(ctl, "GET", "%s/%d/stats" % (POLICIES, policy["id"]))
        (sw,) = stats["switches"]
        assert sw["packets"] > 0 and sw["meter"]["band_packets"][0] > 0, stats
    finally:
        rest(ctl, "DELETE", "%s/%d" % (POLICIES, policy["id"]))
    assert not meters("s1"), "the meter leaves with its policy"
    assert lab.iperf("h1", "h2", seconds=3) > 10


def test_dscp_marking_shows_at_the_receiver(ring):
    ctl, lab = ring
    policy = rest(
        ctl,
        "POST",
        POLICIES,
        {
            "priority": 100,
            "match": {"ip_src": IP["h1"], "ip_proto": "icmp"},
            "actions": {"dscp": 46},
        },
    )
    try:
        h3 = lab["h3"]
        capture = h3.popen(
            ["tcpdump", "-v", "-n", "-l", "-c", "2", "-i", h3.defaultIntf().name, "icmp and src %s" % IP["h1"]],
            stdout=-1,
            stderr=-1,
            text=True,
        )
        time.sleep(1)
        lab.ping("h1", "h3", count=3)
        out, _ = capture.communicate(timeout=20)
        # DSCP 46 (EF) is the ToS byte 0xb8.
        assert "tos 0xb8" in out, out
    finally:
        rest(ctl, "DELETE", "%s/%d" % (POLICIES, policy["id"]))


@pytest.mark.timeout_secs(180)
def test_a_path_policy_follows_its_path_when_a_link_fails(ring):
    ctl, lab = ring
    policy = rest(
        ctl,
        "POST",
        POLICIES,
        {
            "priority": 200,
            "match": {"ip_src": IP["h1"], "ip_dst": IP["h3"]},
            "actions": {"meter": {"rate": 50000}},
            "placement": {"path": {"src": IP["h1"], "dst": IP["h3"]}},
        },
    )
    meter_id = QOS_METER_BASE | policy["id"]
    try:
        assert holding(lab, meter_id) == ["s1", "s2", "s3"]
        listed = rest(ctl, "GET", "%s/%d" % (POLICIES, policy["id"]))
        assert len(listed["switches"]) == 3, listed
        lab.net.configLinkStatus("s1", "s2", "down")
        wait_until(
            lambda: holding(lab, meter_id) == ["s1", "s3", "s4", "s5"],
            30,
            what="the path policy on s1 s5 s4 s3 (has %s)" % holding(lab, meter_id),
        )
        assert lab.ping("h1", "h3", count=3) == 3
    finally:
        lab.net.configLinkStatus("s1", "s2", "up")
        rest(ctl, "DELETE", "%s/%d" % (POLICIES, policy["id"]))
    wait_topology(ctl, lab, timeout=60)


@pytest.mark.timeout_secs(180)
def test_a_restart_rewrites_no_meter_and_no_flow(ring):
    ctl, lab = ring
    names = lab.switch_names()
    policy = rest(
        ctl,
        "POST",
        POLICIES,
        {
            "priority": 300,
            "match": {"ip_src": IP["h4"]},
            "actions": {"meter": {"rate": 8000, "burst": 800}, "dscp": 10},
        },
    )
    meter_id = QOS_METER_BASE | policy["id"]
    try:
        assert holding(lab, meter_id) == names
        time.sleep(2)
        before_flows = snapshot_flows(names)
        before = {n: meters(n) for n in names}
        taken = time.monotonic()
        ctl.kill9()
        ctl.start()
        wait_until(lambda: bridges_connected(names), 60, what="switches to reconnect")
        wait_controller_ready(ctl, [int(s.dpid, 16) for s in lab.switches])
        time.sleep(5)
        elapsed = time.monotonic() - taken
        compare_flow_snapshots(before_flows, snapshot_flows(names), elapsed)
        for n in names:
            after = meters(n)
            assert set(after) == set(before[n]), (n, before[n], after)
            for m, (rate, duration) in after.items():
                assert rate == before[n][m][0]
                # A meter written again would start counting from zero.
                assert duration >= before[n][m][1] + elapsed - 1, (n, m, before[n][m], duration)
    finally:
        rest(ctl, "DELETE", "%s/%d" % (POLICIES, policy["id"]))
