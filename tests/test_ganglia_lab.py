"""The Ganglia lab (mininet/flowgate_lab/ganglia.py), end to end on two
namespace hosts: their gmonds report to the collector, gmetric values reach
gmetad's RRD files under <root>/<cluster>/<host>/<metric>.rrd and the XML
of the collector gmond and of gmetad; with gmetad stopped the files stop
updating, and after `stop()` nothing the harness made is left. No
controller: the harness alone."""

import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from flowgate_lab import wait_until
from flowgate_lab.ganglia import MANIFEST_DIR, Ganglia
from flowgate_lab.util import pid_alive, run

STEP = 5  # gmetad's polling interval, the files' step


def metrics_of(xml, host):
    """{metric: METRIC element} of `host` in a Ganglia XML document."""
    doc = ET.fromstring(xml.encode("latin-1"))
    for element in doc.iter("HOST"):
        if element.get("NAME") == host:
            return {m.get("NAME"): m for m in element.iter("METRIC")}
    raise AssertionError("no host %s in %s" % (host, doc.get("SOURCE")))


@pytest.mark.timeout_secs(300)
def test_ganglia_lab():
    lab = Ganglia(["h1", "h2"], cluster="lab", step=STEP, new_namespaces=True)
    lab.start()
    try:
        pids = lab.gmond_pids()
        assert set(pids) == {"collector", "gmond-h1", "gmond-h2", "gmetad"}, pids
        lab.gmetric("h1", "fg_load", 3.5)
        lab.gmetric("h2", "fg_load", 7.25)
        lab.gmetric("h2", "fg_note", "hello", type="string")

        # RRD files, named as gmetad names them, with the values sent; the
        # gmonds' own metrics too (string metrics have none).
        for host, value in (("h1", 3.5), ("h2", 7.25)):
            path = lab.wait_rrd(host, "fg_load", timeout=60)
            assert path == os.path.join(lab.rrd_root, "lab", host, "fg_load.rrd")
            assert lab.last_value(host, "fg_load") == value
            lab.wait_rrd(host, "load_one", timeout=60)
        assert sorted(os.listdir(os.path.join(lab.rrd_root, "lab"))) == ["__SummaryInfo__", "h1", "h2"]
        assert not os.path.exists(lab.rrd_path("h2", "fg_note"))
        step = run(["rrdtool", "info", lab.rrd_path("h1", "fg_load")])
        assert "step = %d" % STEP in step, step

        # The collector gmond's XML, read from the root namespace: each host
        # by its lab name and management address.
        xml = lab.xml()
        h1 = metrics_of(xml, "h1")
        assert h1["fg_load"].get("VAL") == "3.5" and h1["fg_load"].get("TYPE") == "float"
        assert "load_one" in h1
        h2 = metrics_of(xml, "h2")
        assert (h2["fg_note"].get("VAL"), h2["fg_note"].get("TYPE")) == ("hello", "string")
        hosts = {h.get("NAME"): h.get("IP") for h in ET.fromstring(xml.encode("latin-1")).iter("HOST")}
        assert hosts == {"h1": "198.19.250.1", "h2": "198.19.250.2"}
        # gmetad's, from the root namespace too.
        grid = lab.xml(lab.gmetad_addr)
        assert 'SOURCE="gmetad"' in grid
        assert metrics_of(grid, "h2")["fg_load"].get("VAL") == "7.25"

        # gmetad down: the files stop updating, gmond still has new values.
        lab.stop_gmetad()
        assert "gmetad" not in lab.gmond_pids()
        assert not pid_alive(pids["gmetad"])
        frozen = lab.last_update("h1", "fg_load")
        lab.gmetric("h1", "fg_load", 5.0)
        time.sleep(3 * STEP)
        assert lab.last_update("h1", "fg_load") == frozen
        assert lab.last_value("h1", "fg_load") == 3.5
        assert float(metrics_of(lab.xml(), "h1")["fg_load"].get("VAL")) == 5.0
        # Back: updated again, with the value sent meanwhile.
        lab.start_gmetad()
        lab.wait_rrd("h1", "fg_load", timeout=60, after=frozen)
        wait_until(lambda: lab.last_value("h1", "fg_load") == 5.0, 30, what="the new value in the file")
        pids = lab.gmond_pids()
    finally:
        lab.stop()

    # Nothing left: daemons, namespaces, the root link, files, manifest.
    assert not [role for role, pid in pids.items() if pid_alive(pid)], pids
    assert not [ns for ns in run(["ip", "netns", "list"]).split() if ns.startswith("fgg-")]
    assert run(["ip", "link", "show", "dev", "fgg-gm"], check=False).strip() == ""
    assert not os.path.exists(lab.run_dir)
    assert not os.path.exists(os.path.join(MANIFEST_DIR, "ganglia-fgg.json"))


@pytest.mark.timeout_secs(120)
def test_a_dead_runs_leftovers_are_removed():
    """A Ganglia whose process was killed leaves daemons, namespaces and
    files; the next one with its prefix removes them before starting."""
    mininet_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mininet")
    child = subprocess.Popen(
        ["/usr/bin/python3", "-c",
         "import sys, time; sys.path.insert(0, %r)\n"
         "from flowgate_lab.ganglia import Ganglia\n"
         "g = Ganglia(['h1'], prefix='fgk', new_namespaces=True).start()\n"
         "print(g.run_dir, flush=True)\n"
         "time.sleep(600)\n" % mininet_dir],
        stdout=subprocess.PIPE, text=True)
    try:
        old_dir = child.stdout.readline().strip()
        assert old_dir, "the child lab did not start"
        with open(os.path.join(MANIFEST_DIR, "ganglia-fgk.json"), encoding="utf-8") as fh:
            old_pids = json.load(fh)["daemons"]
        assert len(old_pids) == 3 and all(pid_alive(p) for p in old_pids), old_pids
    finally:
        child.kill()
        child.wait(timeout=10)
    assert all(pid_alive(p) for p in old_pids), "the daemons outlive their lab's process"

    lab = Ganglia(["h1"], prefix="fgk", new_namespaces=True)
    lab.start()
    try:
        assert not [p for p in old_pids if pid_alive(p)]
        assert not os.path.exists(old_dir)
        assert sorted(ns for ns in run(["ip", "netns", "list"]).split() if ns.startswith("fgk-")) == ["fgk-col", "fgk-h1"]
        lab.gmetric("h1", "fg_load", 1.5)
        lab.wait_rrd("h1", "fg_load", timeout=60)
    finally:
        lab.stop()
    assert not [ns for ns in run(["ip", "netns", "list"]).split() if ns.startswith("fgk-")]
