"""Scenario files end to end (topologies/*.yaml): a scenario comes up and
every ordered pair of its hosts and VMs pings exactly as its `expect`
section says (allowed pairs reply, the others do not).

- campus.yaml, the scenario with every module, through the one command a
  user runs against a running controller (lab.py ... --apply --run pingall),
  then the pusher finds the controller in sync with the file;
- the small shipped scenarios no other test pings all pairs of;
- a stock Mininet topology file (Mininet's own example) through --custom,
  with OpenFlow 1.3 and with OpenFlow 1.0 switches.

The other shipped scenarios are pinged all pairs by the tests that use them
(tests/test_scenario_files.py lists which)."""

import os
import subprocess
import sys

import pytest

from conftest import new_controller, release_controller, topology
from flowgate_lab import scenario
from flowgate_lab.bringup import ScenarioLab
from flowgate_lab.topology import TEST_CONFIG

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, "mininet", "lab.py")
PUSH = os.path.join(ROOT, "tools", "flowgate-push")
MININET_EXAMPLE = "/usr/share/doc/mininet/examples/linearbandwidth.py"


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """Fast discovery: LLDP every 2 s, ports edge after 2 s."""
    path = tmp_path_factory.mktemp("scenarios") / "flowgate.toml"
    path.write_text(TEST_CONFIG)
    return str(path)


def lab_py(*args, timeout=240):
    """Run mininet/lab.py as a user would; (exit code, output)."""
    proc = subprocess.run(["/usr/bin/python3", LAB, *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.timeout_secs(300)
def test_campus_in_one_command(config):
    # A controller as the README runs it: every address, OVSDB for the
    # cloud hosts (they dial the lab's management address).
    ctl = new_controller(of_host="127.0.0.1", listen_host="0.0.0.0", config=config)
    try:
        campus = topology("campus")
        code, out = lab_py(campus, "--controller", "127.0.0.1:%d" % ctl.of_port, "--rest", ctl.rest.base_url,
                           "--ovsdb-port", str(ctl.ovsdb_port), "--apply",
                           "--run", "web1 sh -c 'python3 -m http.server 80 >/dev/null 2>&1 </dev/null & sleep 1'",
                           "--run", "pingall",
                           "--run", "s1 tc class show dev s1-eth2",
                           "--run", "guest1 curl -s -m 5 -o /dev/null -w 'vip:%{http_code}\\n' http://10.10.9.80/")
        print(out[-4000:])
        assert code == 0, out[-4000:]
        assert "*** reachability: 72 pairs: 14 reach, 58 do not, all as expected" in out, out[-3000:]
        assert "create ports red2" in out and "create firewall/rules 210" in out
        assert "rate 100Mbit" in out, "the s1-s2 link is shaped (TCLink bw)"
        assert "vip:200" in out, "guest1 reaches web1 through the VIP, past the firewall and the QoS meter"
        assert "create lb/vips web" in out and "create hostaware/rules 1" in out
        # The network is gone; the policies stay and match the file.
        proc = subprocess.run([sys.executable, PUSH, "--url", ctl.rest.base_url, "diff", campus],
                              capture_output=True, text=True, timeout=60)
        assert (proc.returncode, proc.stdout.strip()) == (0, "in sync"), proc.stdout + proc.stderr
    finally:
        release_controller(ctl)


@pytest.mark.timeout_secs(300)
@pytest.mark.parametrize("name", ["tree22", "cloud2", "overlay3"])
def test_small_scenarios_match_their_expectations(name, config):
    sc = scenario.load(topology(name))
    started = []

    def controller(of_host):
        ctl = new_controller(of_host=of_host, config=config)
        started.append(ctl)
        return ctl

    try:
        with ScenarioLab(sc, controller, cloud_prefix="fgs") as lab:
            lab.apply_policies()
            lab.wait_ready()
            result = lab.reachability()
            print("\n%s\n%s" % (result.table(), result.summary()))
            assert result.ok, result.summary()
            assert len(result.got) == len(sc.expected())
    finally:
        for ctl in started:
            release_controller(ctl)


@pytest.mark.timeout_secs(300)
@pytest.mark.skipif(not os.path.exists(MININET_EXAMPLE), reason="Debian's mininet examples are not installed")
@pytest.mark.parametrize("protocols", ["OpenFlow13", "OpenFlow10"])
def test_stock_mininet_topology_pings_through_flowgate(protocols, config):
    """Mininet's own LinearTestTopo (examples/linearbandwidth.py: 3 hosts,
    2 switches), unchanged, as `mn --custom FILE --topo LinearTestTopo,3
    --controller remote --switch ovs,protocols=...` would run it."""
    code, out = lab_py("--custom", MININET_EXAMPLE, "--topo", "LinearTestTopo,3", "--switch",
                       "ovs,protocols=%s" % protocols, "--config", config, "--run", "pingall")
    print(out[-2000:])
    assert code == 0, out[-3000:]
    assert "PingResult(6 pairs, 0% loss" in out, out[-2000:]
