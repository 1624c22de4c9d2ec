"""Failover on a ring of 5 (topologies/ring5.yaml): a continuous ping (20 per second) from h1 to
h3 while the first link of its path goes down. The controller learns the
failure from PORT_STATUS, recomputes paths and the spanning tree, and
traffic resumes over the other side of the ring. The test records the
outage (pings lost x 50 ms, and the longest gap between replies) in its
output and, when $FLOWGATE_LAB_ARTIFACTS is set, in failover.json there.

$FLOWGATE_FAILOVER_INTERVAL (seconds, default 0.05) pings faster for a
finer measurement, e.g. 0.002 (500 per second)."""

import json
import os
import subprocess
import time

import pytest

from conftest import new_controller, release_controller, topology
from flowgate_lab import LabNet
from flowgate_lab.checks import ping_replies
from flowgate_lab.topology import TEST_CONFIG, discovered_links, switch_name, wait_topology

INTERVAL = float(os.environ.get("FLOWGATE_FAILOVER_INTERVAL", "0.05"))  # 20 pings/s
PINGS = round(15 / INTERVAL)  # 15 seconds of pings


@pytest.fixture(scope="module")
def ring5(tmp_path_factory):
    config = tmp_path_factory.mktemp("failover") / "flowgate.toml"
    config.write_text(TEST_CONFIG)
    ctl = new_controller(config=str(config))
    try:
        lab = LabNet(topology("ring5"), ctl)
        lab.start(connect_timeout=90)
        try:
            yield ctl, lab
        finally:
            lab.stop()
    finally:
        release_controller(ctl)


def _path(ctl, lab, src, dst):
    doc = ctl.rest.get("/api/v1/paths?src=%s&dst=%s" % (lab[src].IP(), lab[dst].IP()))
    return [switch_name(h["dpid"]) for h in doc["hops"]]


def _record(result):
    print("\nfailover: %s" % json.dumps(result))
    artifacts = os.environ.get("FLOWGATE_LAB_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        with open(os.path.join(artifacts, "failover.json"), "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)


@pytest.mark.timeout_secs(240)
def test_traffic_resumes_when_a_link_on_the_path_goes_down(ring5):
    ctl, lab = ring5
    wait_topology(ctl, lab, timeout=120)
    assert lab.ping("h1", "h3", count=3) == 3
    assert lab.ping("h3", "h1", count=3) == 3
    before = _path(ctl, lab, "h1", "h3")
    assert before == ["s1", "s2", "s3"], before
    cut = (before[0], before[1])

    ping = lab["h1"].popen(
        ["ping", "-n", "-i", str(INTERVAL), "-c", str(PINGS), "-W", "1", lab["h3"].IP()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # Let a few seconds of pings through, then cut the link.
        time.sleep(3)
        lab.net.configLinkStatus(cut[0], cut[1], "down")
        output, _ = ping.communicate(timeout=PINGS * INTERVAL + 30)
    finally:
        if ping.poll() is None:
            ping.kill()
            ping.wait(timeout=10)
    output = output.decode("utf-8", "replace")
    seqs = ping_replies(output)
    assert seqs, output
    lost = PINGS - len(seqs)
    gaps = [b - a for a, b in zip(seqs, seqs[1:])]
    longest_gap = max(gaps) if gaps else 0
    result = {
        "topology": "ring,5",
        "cut": "%s-%s" % cut,
        "pings": PINGS,
        "interval_ms": round(INTERVAL * 1000, 3),
        "lost": lost,
        "outage_ms_from_loss": round(lost * INTERVAL * 1000, 1),
        "longest_gap_ms": round((longest_gap - 1) * INTERVAL * 1000, 1) if longest_gap else 0,
    }
    _record(result)

    # Traffic resumed: the last pings all came back.
    assert seqs[-1] == PINGS, output[-500:]
    tail = range(PINGS - PINGS // 8, PINGS + 1)
    assert all(s in seqs for s in tail), "pings still lost at the end"
    assert lost < PINGS // 3, result

    after = _path(ctl, lab, "h1", "h3")
    assert after == ["s1", "s5", "s4", "s3"], after
    doc = ctl.rest.get("/api/v1/topology")
    assert len(discovered_links(doc)) == 4, "the cut link is gone: %s" % doc["links"]


@pytest.mark.timeout_secs(120)
def test_a_restored_link_is_rediscovered(ring5):
    ctl, lab = ring5
    lab.net.configLinkStatus("s1", "s2", "up")
    wait_topology(ctl, lab, timeout=60)
    assert _path(ctl, lab, "h1", "h3") == ["s1", "s2", "s3"]
    assert lab.pingall().loss_percent == 0
