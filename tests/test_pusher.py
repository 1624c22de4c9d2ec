"""tools/flowgate-push: unit tests of its pure parts, and the whole tool
against a real flowgate controller with no switches (no Open vSwitch needed).

    FLOWGATE_BIN=target/release/flowgate /usr/bin/python3 -m pytest tests/test_pusher.py -v
"""

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from flowgate_lab import FlowgateController

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUSH = os.path.join(ROOT, "tools", "flowgate-push")


def _load_push():
    loader = importlib.machinery.SourceFileLoader("flowgate_push", PUSH)
    spec = importlib.util.spec_from_loader("flowgate_push", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


push = _load_push()

# ---------------------------------------------------------------------------
# Pure parts.

OPENAPI = {
    "paths": {
        "/api/v1/health": {"get": {}},
        "/api/v1/switches": {"get": {}},
        "/api/v1/switches/{dpid}": {"get": {}},
        "/api/v1/firewall/rules": {
            "get": {},
            "post": {},
            "put": {"parameters": [{"name": "dry_run", "in": "query"}]},
        },
        "/api/v1/firewall/rules/{id}": {
            "get": {},
            "put": {"parameters": [{"name": "id", "in": "path"}, {"name": "dry_run", "in": "query"}]},
            "delete": {},
        },
        "/api/v1/firewall/rules/{id}/stats": {"get": {}},
        "/api/v1/firewall/policy": {"get": {}, "put": {}},
        "/api/v1/networks": {"get": {}, "post": {}},
        "/api/v1/networks/{name}": {"get": {}, "delete": {}},
        "/api/v1/networks/{name}/ports": {"get": {}, "post": {}},
    }
}


def test_kinds_come_from_the_openapi_document():
    kinds = push.kinds_from_openapi(OPENAPI)
    assert sorted(kinds) == ["firewall/policy", "firewall/rules", "networks"]
    rules = kinds["firewall/rules"]
    assert (rules.collection, rules.id_param, rules.bulk_put) == (True, "id", True)
    assert rules.dry_run == {"item", "bulk"}
    nets = kinds["networks"]
    assert (nets.id_param, nets.bulk_put, nets.dry_run) == ("name", False, set())
    # Items are matched by the path parameter's field, else `id`, else `name`.
    assert nets.id_of({"name": "blue"}) == "blue" and nets.id_of({"id": 7}) == "7"
    assert nets.id_of({"vni": 100}) is None
    policy = kinds["firewall/policy"]
    assert not policy.collection and policy.dry_run == set()
    assert rules.path(7) == "/firewall/rules/7" and nets.path("a b") == "/networks/a%20b"


def test_same_ignores_server_defaults_and_spelling():
    assert push.same({"id": 1, "match": {"dst_port": "80"}}, {"id": 1, "match": {"dst_port": 80}, "x": 2})
    assert push.same({"action": "ALLOW"}, {"action": "allow"})
    assert push.same({"description": None}, {})
    assert not push.same({"priority": 10}, {"priority": 11})
    assert not push.same({"match": {"ip_proto": 6}}, {"match": {"ip_proto": "tcp"}})
    assert not push.same({"enabled": True}, {"enabled": "true"})
    assert not push.same([1, 2], [1])
    assert push.changed_fields({"a": 1, "m": {"b": 2, "c": 3}}, {"a": 1, "m": {"b": 2, "c": 4}}) == ["m.c"]
    assert push.changed_fields({"n": 1}, {}) == ["n"]


def test_extract_object_finds_the_resource_in_an_answer():
    rule = {"id": 4, "priority": 1}
    is_4 = lambda obj: str(obj.get("id")) == "4"  # noqa: E731
    assert push.extract_object({"rule": rule, "applied": None}, is_4) == rule
    assert push.extract_object(rule, is_4) == rule
    assert push.extract_object({"rule": dict(rule, id=5)}, is_4) is None
    policy = {"enabled": True, "default_action": "deny"}
    assert push.extract_object({"policy": policy, "applied": {"flows": 1}}) == policy
    assert push.extract_object(policy) == policy
    # A resource flattened beside `applied` (QoS, overlay answers).
    assert push.extract_object({"id": "uplink", "max_rate": 5, "applied": None}) == {"id": "uplink", "max_rate": 5}


def test_files_json_and_yaml(tmp_path):
    good = tmp_path / "a.json"
    good.write_text(json.dumps({"firewall/rules": []}))
    assert push.load_file(str(good)) == {"firewall/rules": []}
    for name, text, needle in [
        ("b.json", "{", "invalid JSON"),
        ("c.json", "[]", "expected an object"),
        ("missing.json", None, "cannot read"),
    ]:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(push.PushError, match=needle):
            push.load_file(str(path))
    pytest.importorskip("yaml")
    y = tmp_path / "d.yaml"
    y.write_text("firewall/policy:\n  enabled: true\n  default_action: deny\n")
    assert push.load_file(str(y)) == {"firewall/policy": {"enabled": True, "default_action": "deny"}}


# ---------------------------------------------------------------------------
# The tool against a controller.


@pytest.fixture(scope="module")
def ctl():
    controller = FlowgateController()
    controller.start()
    try:
        yield controller
    finally:
        controller.cleanup()


def run(ctl, *args, check=None):
    """Run flowgate-push against `ctl`; (exit code, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, PUSH, "--url", "http://127.0.0.1:%d" % ctl.rest_port, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check is not None:
        assert proc.returncode == check, "exit %d\nstdout:\n%s\nstderr:\n%s" % (
            proc.returncode,
            proc.stdout,
            proc.stderr,
        )
    return proc.returncode, proc.stdout, proc.stderr


def write(tmp_path, doc, name="fw.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def rules_on(ctl):
    return {r["id"]: r for r in ctl.rest.get("/api/v1/firewall/rules")}


def reset(ctl):
    assert ctl.rest.request("PUT", "/api/v1/firewall/rules", []).status == 200
    ctl.rest.request("PUT", "/api/v1/firewall/policy", {"enabled": True, "default_action": "allow"})


RULES = [
    {"id": 1, "priority": 100, "action": "allow-related", "match": {"ip_proto": 6, "dst_port": "80"}},
    {"id": 2, "priority": 50, "action": "deny", "match": {"ip_src": "10.0.0.3"}},
]


def test_kinds_command_lists_firewall_resources(ctl):
    _, out, _ = run(ctl, "kinds", check=0)
    assert "firewall/rules\tcollection by id" in out
    assert "firewall/policy\tsingleton" in out


def test_apply_then_diff_is_in_sync(ctl, tmp_path):
    reset(ctl)
    doc = {"firewall/policy": {"default_action": "deny"}, "firewall/rules": RULES}
    path = write(tmp_path, doc)
    code, out, _ = run(ctl, "diff", path)
    assert code == 1 and "create firewall/rules 1" in out and "set firewall/policy" in out
    _, out, _ = run(ctl, "apply", path, check=0)
    assert "create firewall/rules 2" in out
    assert sorted(rules_on(ctl)) == [1, 2]
    assert ctl.rest.get("/api/v1/firewall/policy")["default_action"] == "deny"
    # The controller spells ip_proto 6 as "tcp": still in sync.
    _, out, _ = run(ctl, "diff", path, check=0)
    assert out.strip() == "in sync"
    _, out, _ = run(ctl, "apply", path, check=0)
    assert out.strip() == "nothing to do"
    # A change shows the field and is applied.
    doc["firewall/rules"][1] = dict(RULES[1], priority=60)
    path = write(tmp_path, doc)
    code, out, _ = run(ctl, "diff", path)
    assert code == 1 and "update firewall/rules 2 (priority)" in out
    run(ctl, "apply", path, check=0)
    assert rules_on(ctl)[2]["priority"] == 60


def test_errors_name_the_item_and_field_and_nothing_is_applied(ctl, tmp_path):
    reset(ctl)
    bad = {
        "firewall/rules": [
            {"id": 5, "priority": 10, "action": "allow", "match": {"ip_proto": "icmp"}},
            {"id": 6, "priority": 20, "action": "allow", "match": {"ip_src": "10.0.0.1/24"}},
            {"id": 7, "priority": 30, "action": "allow", "match": {"ip_proto": "icmp", "dst_port": 22}},
        ]
    }
    code, _, err = run(ctl, "apply", write(tmp_path, bad))
    assert code == 2
    assert "firewall/rules 6: match.ip_src:" in err and "10.0.0.0/24" in err, err
    assert "firewall/rules 7: match.dst_port:" in err, err
    assert rules_on(ctl) == {}, "a refused file changes nothing"
    code, _, err = run(ctl, "apply", write(tmp_path, {"firewall/rulez": []}))
    assert code == 2 and "unknown kind 'firewall/rulez'" in err and "firewall/rules" in err
    code, _, err = run(ctl, "apply", write(tmp_path, {"firewall/rules": [{"priority": 1, "action": "deny"}]}))
    assert code == 2 and "needs its 'id'" in err


def test_a_refused_field_is_named_by_its_yaml_line(ctl, tmp_path):
    pytest.importorskip("yaml")
    reset(ctl)
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "firewall/rules:\n"
        "  - id: 7\n"
        "    priority: 70\n"
        "    action: allow\n"
        "    match:\n"
        "      ip_proto: tcp\n"
        "      ip_dst: 10.0.0.1/24\n"
    )
    code, _, err = run(ctl, "apply", str(bad))
    assert code == 2 and "rules.yaml:7: create firewall/rules 7: match.ip_dst:" in err, err
    assert 7 not in rules_on(ctl)


def test_prune_replaces_in_bulk_and_bulk_errors_name_the_id(ctl, tmp_path):
    reset(ctl)
    run(ctl, "apply", write(tmp_path, {"firewall/rules": RULES}), check=0)
    keep = {"firewall/rules": [RULES[0], {"id": 3, "priority": 5, "action": "deny"}]}
    _, out, _ = run(ctl, "apply", "--prune", write(tmp_path, keep), check=0)
    assert "replace firewall/rules" in out
    assert sorted(rules_on(ctl)) == [1, 3]
    clash = {"firewall/rules": [RULES[0], {"id": 9, "priority": 100, "action": "deny"}]}
    code, _, err = run(ctl, "apply", "--prune", write(tmp_path, clash))
    assert code == 2 and "id 9:" in err and "priority" in err, err
    assert sorted(rules_on(ctl)) == [1, 3]


def test_state_file_limits_prune_to_what_the_tool_applied(ctl, tmp_path):
    reset(ctl)
    state = str(tmp_path / "state.json")
    run(ctl, "--state", state, "apply", write(tmp_path, {"firewall/rules": RULES}), check=0)
    assert json.load(open(state))["items"]["firewall/rules"] == ["1", "2"]
    # Someone else adds a rule through the API.
    other = {"id": 40, "priority": 7, "action": "deny", "match": {"ip_proto": "udp"}}
    assert ctl.rest.request("POST", "/api/v1/firewall/rules", other).status == 201
    _, out, _ = run(ctl, "--state", state, "apply", "--prune", write(tmp_path, {"firewall/rules": RULES[:1]}), check=0)
    assert "delete firewall/rules 2" in out
    assert sorted(rules_on(ctl)) == [1, 40], "the other rule is not the tool's to prune"
    assert json.load(open(state))["items"]["firewall/rules"] == ["1"]
    # delete removes the file's items.
    run(ctl, "--state", state, "delete", write(tmp_path, {"firewall/rules": RULES[:1]}), check=0)
    assert sorted(rules_on(ctl)) == [40]


def test_list_output_applies_back_unchanged(ctl, tmp_path):
    reset(ctl)
    run(ctl, "apply", write(tmp_path, {"firewall/rules": RULES}), check=0)
    _, out, _ = run(ctl, "list", "firewall/rules", "firewall/policy", check=0)
    listed = json.loads(out)
    assert [r["id"] for r in listed["firewall/rules"]] == [1, 2]
    _, out, _ = run(ctl, "diff", write(tmp_path, listed, "listed.json"), check=0)
    assert out.strip() == "in sync"
    pytest.importorskip("yaml")
    _, out, _ = run(ctl, "list", "--yaml", "firewall/rules", check=0)
    path = tmp_path / "listed.yaml"
    path.write_text(out)
    run(ctl, "diff", str(path), check=0)


def test_other_modules_resources_by_the_same_mechanism(ctl, tmp_path):
    """Overlay networks (`/networks/{network}`, items keyed by `id`) and a
    firewall rule scoped to the network's VNI, from one YAML-free file."""
    reset(ctl)
    doc = {
        "networks": [{"id": "blue", "tenant": "acme", "vni": 100, "subnet": "10.0.0.0/24"}],
        "firewall/rules": [
            {"id": 8, "priority": 10, "action": "allow-related", "scope": {"tenant": 100},
             "match": {"ip_proto": "tcp", "dst_port": 22}}
        ],
    }
    path = write(tmp_path, doc)
    _, out, _ = run(ctl, "apply", path, check=0)
    assert "create networks blue" in out and "create firewall/rules 8" in out
    assert [n["id"] for n in ctl.rest.get("/api/v1/networks")] == ["blue"]
    _, out, _ = run(ctl, "diff", path, check=0)
    assert out.strip() == "in sync"
    # delete goes in reverse file order: the rule, then the network.
    _, out, _ = run(ctl, "delete", path, check=0)
    assert out.splitlines() == ["delete firewall/rules 8", "delete networks blue"]
    assert ctl.rest.get("/api/v1/networks") == []


def test_a_scenario_files_policies_round_trip(ctl, tmp_path):
    """topologies/campus.yaml: only its policies section is applied; ports of
    the networks the same file creates are validated once those exist; then
    the controller is in sync with the file, and `delete` undoes it."""
    reset(ctl)
    campus = os.path.join(ROOT, "topologies", "campus.yaml")
    pytest.importorskip("yaml")
    doc = push.load_file(campus)
    _, out, _ = run(ctl, "apply", campus, check=0)
    lines = out.splitlines()
    assert lines[:2] == ["create networks blue", "create networks red"], lines
    assert "create ports blue1" in lines and "create ports red2" in lines
    assert "set firewall/policy (default_action)" in lines and "create firewall/rules 210" in lines
    assert len(lines) == 2 + 5 + 1 + 7 + 2 + 1 + 2, lines
    assert lines[-5:] == ["create lb/pools web", "create lb/vips web", "create qos/policies 1",
                          "create hostaware/hosts guest1", "create hostaware/rules 1"], lines
    ports = {p["id"]: p for p in ctl.rest.get("/api/v1/ports")}
    assert sorted(ports) == ["blue1", "blue2", "blue3", "red1", "red2"]
    assert ports["blue2"]["mac"] == "02:00:00:00:01:02" and ports["red1"]["network"] == "red"
    assert sorted(rules_on(ctl)) == [r["id"] for r in doc["firewall/rules"]]
    assert rules_on(ctl)[210]["scope"]["tenant"] == 200
    _, out, _ = run(ctl, "diff", campus, check=0)
    assert out.strip() == "in sync"
    # Drift is shown against the file's lines.
    assert ctl.rest.request("DELETE", "/api/v1/firewall/rules/130").status == 200
    code, out, _ = run(ctl, "diff", campus)
    assert code == 1 and out.strip() == "create firewall/rules 130"
    # A refused item names the file's line; nothing is written.
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(campus, encoding="utf-8").read().replace("ip_dst: 10.10.9.0/24, ip_proto: icmp",
                                                                  "ip_dst: 10.10.9.1/24, ip_proto: icmp"))
    # The line of the refused field (rule 130's match), not of the item.
    line = next(i for i, text in enumerate(open(campus, encoding="utf-8"), start=1)
                if "ip_dst: 10.10.9.0/24, ip_proto: icmp" in text)
    code, _, err = run(ctl, "apply", str(bad))
    assert code == 2 and "bad.yaml:%d: create firewall/rules 130: match.ip_dst:" % line in err, err
    assert "column" not in err, "the position in the pusher's own JSON body means nothing to the user"
    assert 130 not in rules_on(ctl)
    # delete undoes the file: its items, and its default-deny policy goes
    # back to the controller's default instead of staying in force.
    assert ctl.rest.get("/api/v1/firewall/policy")["default_action"] == "deny"
    _, out, _ = run(ctl, "delete", campus, check=0)
    assert "reset firewall/policy to its default" in out, out
    assert ctl.rest.get("/api/v1/networks") == [] and rules_on(ctl) == {}
    assert ctl.rest.get("/api/v1/ports") == []
    assert ctl.rest.get("/api/v1/firewall/policy") == {"enabled": True, "default_action": "allow"}
    assert ctl.rest.get("/api/v1/lb/vips") == [] and ctl.rest.get("/api/v1/hostaware/rules") == []
    reset(ctl)


def test_qos_profiles_bindings_and_policies_by_the_same_mechanism(ctl, tmp_path):
    """QoS kinds come from the OpenAPI document like the others: a profile,
    a binding of it to an overlay VM port, a metered policy; applied in file
    order, in sync afterwards, deleted in reverse order (the binding before
    the profile it names). A policy naming an unprovisioned queue is refused
    with its field, and nothing of that file is applied."""
    _, out, _ = run(ctl, "kinds", check=0)
    for kind in ("qos/policies", "qos/profiles", "qos/ports"):
        assert kind + "\tcollection by id" in out, out
    doc = {
        "qos/profiles": [{"id": "vm-5m", "max_rate": 5000000, "queues": {"1": {"max_rate": 1000000}}}],
        "qos/ports": [{"id": "vm1-cap", "profile": "vm-5m", "iface_id": "vm1"}],
        "qos/policies": [{"id": 4, "priority": 300, "match": {"ip_src": "10.0.0.4"},
                          "actions": {"meter": {"rate": 8000}, "dscp": 10}}],
    }
    path = write(tmp_path, doc)
    _, out, _ = run(ctl, "apply", path, check=0)
    assert out.splitlines() == ["create qos/profiles vm-5m", "create qos/ports vm1-cap", "create qos/policies 4"], out
    _, out, _ = run(ctl, "diff", path, check=0)
    assert out.strip() == "in sync"
    bad = {"qos/policies": [{"id": 5, "priority": 10, "actions": {"queue": {"id": 9}}},
                            {"id": 6, "priority": 20, "actions": {"dscp": 99}}]}
    code, _, err = run(ctl, "apply", write(tmp_path, bad, "bad.json"))
    assert code == 2 and "qos/policies 6: actions.dscp" in err, err
    assert [p["id"] for p in ctl.rest.get("/api/v1/qos/policies")] == [4]
    _, out, _ = run(ctl, "delete", path, check=0)
    assert out.splitlines() == ["delete qos/policies 4", "delete qos/ports vm1-cap", "delete qos/profiles vm-5m"]
    assert ctl.rest.get("/api/v1/qos/profiles") == []


def test_load_balancer_resources_apply_in_file_order(ctl, tmp_path):
    """lb/pools, lb/vips and lb/monitors are collections like the others; a
    VIP may name a pool the same file creates (kinds go in file order)."""
    doc = {
        "lb/pools": [{"id": "web", "members": [{"address": "10.0.0.2", "port": 8080, "weight": 3},
                                               {"address": "10.0.0.3", "port": 8080}]}],
        "lb/vips": [{"id": "web", "address": "10.0.0.100", "port": 80, "pool": "web", "method": "weighted"}],
        "lb/monitors": [{"id": "web", "pool": "web", "type": "http", "interval": 2, "timeout": 1,
                         "source_ip": "10.0.0.250"}],
    }
    _, out, _ = run(ctl, "kinds", check=0)
    for kind in ("lb/pools", "lb/vips", "lb/monitors"):
        assert "%s\tcollection by id" % kind in out, out
    path = write(tmp_path, doc, "lb.json")
    _, out, _ = run(ctl, "apply", path, check=0)
    assert out.splitlines() == ["create lb/pools web", "create lb/vips web", "create lb/monitors web"], out
    _, out, _ = run(ctl, "diff", path, check=0)
    assert out.strip() == "in sync"
    assert ctl.rest.get("/api/v1/lb/monitors/web")["http_path"] == "/"
    # A file whose VIP names a pool nobody creates changes nothing.
    bad = {"lb/vips": [{"id": "x", "address": "10.0.0.101", "port": 80, "pool": "nope"}]}
    code, _, err = run(ctl, "apply", write(tmp_path, bad, "bad.json"))
    assert code == 2 and "lb/vips x: pool:" in err and "nothing applied" in err, err
    # A VIP refused once its pool exists stops the file there, saying what
    # was applied before it.
    staged = {
        "lb/pools": [{"id": "api", "members": [{"address": "10.0.0.4", "port": 80}]}],
        "lb/vips": [{"id": "api", "address": "10.0.0.100", "port": 80, "pool": "api"}],
    }
    code, _, err = run(ctl, "apply", write(tmp_path, staged, "staged.json"))
    assert code == 2 and "stopped after 1 of 2 changes (create lb/pools api)" in err, err
    assert "lb/vips api: address:" in err, err
    _, out, _ = run(ctl, "delete", path, check=0)
    assert out.splitlines() == ["delete lb/monitors web", "delete lb/vips web", "delete lb/pools web"]
    ctl.rest.request("DELETE", "/api/v1/lb/pools/api")
