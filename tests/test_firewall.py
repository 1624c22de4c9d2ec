"""The firewall on real Open vSwitch: proactive ACL rules hold from the
moment their REST call returns, stateful rules use OVS conntrack, rules come
from a bootstrap file and the pusher, counters follow traffic, and a
controller restart leaves the firewall's flows untouched.

topologies/linear3.yaml: h1-s1-s2-s3-h3, h2 on s2; h1=10.0.0.1, h2=10.0.0.2, h3=10.0.0.3.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import new_controller, release_controller, topology
from flowgate_lab import LabNet, wait_until
from flowgate_lab.checks import compare_flow_snapshots, wait_rest_switches
from flowgate_lab.ovs import bridges_connected, dump_flows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUSH = os.path.join(ROOT, "tools", "flowgate-push")
H1, H2, H3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
RULES = "/api/v1/firewall/rules"
POLICY = "/api/v1/firewall/policy"

# Loaded by --firewall-rules at start: harmless (no test traffic uses UDP 9999).
BOOTSTRAP = [{"id": 900, "priority": 1, "action": "deny", "match": {"ip_proto": "udp", "dst_port": 9999}}]


@pytest.fixture(scope="module")
def fw():
    """(controller, LabNet) with the bootstrap file, HTTP servers on h2:80,
    h2:22 and h1:8080; everything removed at the end."""
    run_dir = tempfile.mkdtemp(prefix="flowgate-fw-")
    rules_file = os.path.join(run_dir, "rules.json")
    with open(rules_file, "w", encoding="utf-8") as f:
        json.dump(BOOTSTRAP, f)
    ctl = new_controller(extra_args=["--firewall-rules", rules_file])
    lab = LabNet(topology("linear3"), ctl)
    servers = []
    try:
        lab.start(connect_timeout=90)
        wait_rest_switches(ctl, [1, 2, 3])
        for host, ip, port in (("h2", H2, 80), ("h2", H2, 22), ("h1", H1, 8080)):
            out = lab[host].cmd(
                "python3 -m http.server %d --bind %s --directory %s >/dev/null 2>&1 & echo $!"
                % (port, ip, run_dir)
            )
            servers.append((lab[host], out.strip().splitlines()[-1]))
            wait_until(
                lambda h=lab[host], p=port: ":%d " % p in h.cmd("ss -Hltn"),
                10,
                what="HTTP server on %s:%d" % (host, port),
            )
        yield ctl, lab
    finally:
        for host, pid in servers:
            if pid.isdigit():
                host.cmd("kill -9 %s" % pid)
        lab.stop()
        release_controller(ctl)


def rest(ctl, method, path, body=None, want=(200, 201)):
    resp = ctl.rest.request(method, path, body)
    assert resp.status in want, "%s %s -> %d %s" % (method, path, resp.status, resp.text)
    return resp.json


def connect(lab, src, ip, port, timeout=2):
    """'open' when a TCP connection from host `src` to ip:port succeeds."""
    out = lab[src].cmd(
        "%s -c 'import socket\ntry:\n socket.create_connection((\"%s\", %d), timeout=%d); print(\"open\")\n"
        "except socket.timeout: print(\"timeout\")\nexcept OSError as e: print(\"error\", e)'"
        % (sys.executable, ip, port, timeout)
    )
    last = out.strip().splitlines()[-1] if out.strip() else ""
    # The shell prints a continuation prompt for each line of the script.
    return re.sub(r"^(> )+", "", last)


def http_get(lab, src, ip, port):
    """HTTP status code of GET http://ip:port/ from `src` ("000" when it fails)."""
    return lab[src].cmd("curl -s -m 4 -o /dev/null -w '%%{http_code}' http://%s:%d/" % (ip, port)).strip()


def flow_mods(ctl):
    """The reconciler's flow-mod counters from /metrics, by command."""
    text = ctl.rest.request("GET", "/metrics").text
    return {
        m.group(1): int(float(m.group(2)))
        for m in re.finditer(r'^flowgate_flow_mods_total\{command="(\w+)"\} (\S+)$', text, re.M)
    }


def firewall_flows(bridges):
    """{bridge: {key: Flow}} of the firewall's flows."""
    return {br: {f.key: f for f in dump_flows(br) if f.owner == "firewall"} for br in bridges}


def allow_icmp(rule_id, src, dst):
    return {
        "id": rule_id,
        "priority": 100,
        "action": "allow",
        "match": {"ip_proto": "icmp", "ip_src": src, "ip_dst": dst},
    }


def test_bootstrap_file_rules_are_loaded(fw):
    ctl, _ = fw
    assert rest(ctl, "GET", RULES + "/900")["match"]["dst_port"] == 9999


def test_default_deny_blocks_ping_until_a_rule_allows_icmp(fw):
    ctl, lab = fw
    assert lab.pingall().loss_percent == 0, "forwarding works with the default allow policy"
    rest(ctl, "PUT", POLICY, {"enabled": True, "default_action": "deny"})
    assert lab.ping("h1", "h2", count=2) == 0, "default deny lets ping through"
    for rule in (allow_icmp(10, H1, H2), allow_icmp(11, H2, H1)):
        answer = rest(ctl, "POST", RULES, rule)
        assert answer["applied"]["switches"] == [
            "00:00:00:00:00:00:00:01",
            "00:00:00:00:00:00:00:02",
            "00:00:00:00:00:00:00:03",
        ]
        assert answer["applied"]["unconfirmed"] == []
    # The rules hold as soon as the calls returned: the very first ping passes.
    assert lab.ping("h1", "h2", count=1) == 1
    assert lab.ping("h2", "h1", count=1) == 1
    assert lab.ping("h1", "h3", count=2) == 0, "h1-h3 is not allowed"
    # ARP keeps working under default deny (the pings above needed it);
    # check the firewall's ARP entry is matching.
    arp = [f for f in dump_flows("s1", ["table=1,arp"]) if f.owner == "firewall"]
    assert arp and arp[0].n_packets > 0, arp


def test_a_deleted_rule_stops_matching_at_once(fw):
    ctl, lab = fw
    assert lab.ping("h1", "h2", count=1) == 1
    rest(ctl, "DELETE", RULES + "/10")
    assert lab.ping("h1", "h2", count=2) == 0, "ping still passes after the rule was deleted"
    rest(ctl, "DELETE", RULES + "/11")


def test_pusher_applies_a_stateful_web_policy(fw, tmp_path):
    ctl, _ = fw
    doc = {
        "firewall/policy": {"enabled": True, "default_action": "deny"},
        "firewall/rules": [
            {
                "id": 20,
                "priority": 200,
                "action": "allow-related",
                "description": "h1 may browse h2",
                "match": {"ip_src": H1, "ip_dst": H2, "ip_proto": "tcp", "dst_port": 80},
            }
        ],
    }
    path = tmp_path / "web.json"
    path.write_text(json.dumps(doc))
    url = "http://127.0.0.1:%d" % ctl.rest_port
    out = subprocess.run(
        [sys.executable, PUSH, "--url", url, "apply", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "create firewall/rules 20" in out.stdout
    diff = subprocess.run(
        [sys.executable, PUSH, "--url", url, "diff", str(path)], capture_output=True, text=True, timeout=60
    )
    assert diff.returncode == 0 and diff.stdout.strip() == "in sync", diff.stdout + diff.stderr
    # The conntrack entries came with the first stateful rule.
    assert any("ct(table=1" in f.actions for f in dump_flows("s2", ["table=1"]))


def test_tcp_80_is_allowed_and_22_refused(fw):
    _, lab = fw
    assert http_get(lab, "h1", H2, 80) == "200"
    assert connect(lab, "h1", H2, 22) == "timeout"
    assert connect(lab, "h3", H2, 80) == "timeout", "only h1 may connect"


def test_stateful_replies_pass_but_the_other_side_cannot_open(fw):
    _, lab = fw
    # h1 -> h2 gets its answers (the whole HTTP exchange needs replies).
    assert http_get(lab, "h1", H2, 80) == "200"
    # h2 cannot open a connection to h1, although h1 talks to h2.
    assert connect(lab, "h2", H1, 8080) == "timeout"
    assert http_get(lab, "h1", H2, 80) == "200"


def test_counters_increase_with_traffic(fw):
    ctl, lab = fw
    before = rest(ctl, "GET", RULES + "/20/stats")
    assert before["flows"] == 3 * 3, "the +new entry and two connection entries on 3 switches"
    for _ in range(3):
        assert http_get(lab, "h1", H2, 80) == "200"
    # OVS folds datapath counters into its flows about once a second.
    after = wait_until(
        lambda: (lambda s: s if s["packets"] >= before["packets"] + 3 * 8 else None)(
            rest(ctl, "GET", RULES + "/20/stats")
        ),
        10,
        what="rule 20's counters to count three HTTP exchanges",
    )
    assert after["bytes"] > before["bytes"]
    assert after["errors"] == []


def test_one_rule_change_sends_only_its_flow_mods(fw):
    ctl, _ = fw
    rule = {"id": 30, "priority": 300, "action": "deny", "match": {"ip_proto": "udp", "ip_src": H3}}
    before = flow_mods(ctl)
    answer = rest(ctl, "POST", RULES, rule)
    after = flow_mods(ctl)
    assert answer["applied"]["flow_changes"] == 3, answer
    assert after["add"] - before["add"] == 3, (before, after)
    assert after["modify"] == before["modify"] and after["delete"] == before["delete"]
    before = after
    rest(ctl, "DELETE", RULES + "/30")
    after = flow_mods(ctl)
    assert after["delete"] - before["delete"] == 3, (before, after)
    assert after["add"] == before["add"]


def test_rules_survive_a_restart_without_flow_churn(fw):
    ctl, lab = fw
    names = lab.switch_names()
    before = firewall_flows(names)
    assert all(before[n] for n in names), before
    taken = time.monotonic()
    ctl.kill9()
    ctl.start()
    wait_until(lambda: bridges_connected(names), 60, what="switches to reconnect")
    wait_rest_switches(ctl, [1, 2, 3])
    time.sleep(3)  # give a wrong reconciliation time to do damage
    after = firewall_flows(names)
    problems, _ = compare_flow_snapshots(before, after, time.monotonic() - taken)
    assert not problems, "\n".join(problems)
    extra = {n: set(after[n]) - set(before[n]) for n in names}
    assert not any(extra.values()), extra
    assert sorted(r["id"] for r in rest(ctl, "GET", RULES)) == [20, 900]
    assert rest(ctl, "GET", POLICY)["default_action"] == "deny"
    # Still enforced.
    assert http_get(lab, "h1", H2, 80) == "200"
    assert connect(lab, "h2", H1, 8080) == "timeout"
