"""Bring a whole scenario up (scenario.py): its cloud hosts and their VMs,
its Mininet switches and hosts, pointed at a controller; optionally push
its policies (tools/flowgate-push) and check its expected reachability.

    lab = ScenarioLab(scenario.load("topologies/campus.yaml"), controller_factory)
    with lab:                      # cloud, controller, Mininet, VMs
        lab.apply_policies()       # the file's `policies` section
        lab.wait_ready()           # discovery done, ports bound, tunnels up
        result = lab.reachability()
        assert result.ok, result

`controller_factory(of_host)` returns a started controller (anything with
`of_host`, `of_port`, `ovsdb_port` and `rest`, e.g. FlowgateController or
RemoteController below); `of_host` is where switches can dial it: the
cloud's management address when the scenario has cloud hosts (their
namespaces reach the root namespace only there), else 127.0.0.1.
"""

import importlib.machinery
import importlib.util
import io
import os
import subprocess

from .checks import wait_rest_switches
from .cloud import Cloud
from .controller import REPO_ROOT
from .net import LabNet
from .rest import RestClient
from .topology import discovered_links, switch_links
from .util import LabError, wait_until

PUSHER = os.path.join(REPO_ROOT, "tools", "flowgate-push")


class RemoteController:
    """A controller someone else runs: its OpenFlow address, OVSDB port
    (for cloud hosts) and REST client (None when unknown)."""

    name = "remote"
    log_path = None

    def __init__(self, host, port, rest_url=None, ovsdb_port=6640):
        self.of_host = host
        self.of_port = port
        self.ovsdb_port = ovsdb_port
        self.rest = RestClient(rest_url) if rest_url else None

    def start(self):
        return self

    def cleanup(self):
        return None


def load_pusher():
    """tools/flowgate-push as a module."""
    loader = importlib.machinery.SourceFileLoader("flowgate_push", PUSHER)
    spec = importlib.util.spec_from_loader("flowgate_push", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _is_local(host):
    return host.startswith("127.") or host in ("localhost", "0.0.0.0", "::1")


class ScenarioLab:
    """A scenario's network, built and torn down as one."""

    def __init__(self, sc, controller_factory, switch_opts=None, cloud_prefix="fgc", log_level="warning",
                 connect_timeout=120):
        self.scenario = sc
        self.controller_factory = controller_factory
        self.switch_opts = switch_opts
        self.cloud_prefix = cloud_prefix
        self.log_level = log_level
        self.connect_timeout = connect_timeout
        self.ctl = None
        self.cloud = None
        self.lab = None

    # --- lifecycle -------------------------------------------------------
    def start(self):
        sc = self.scenario
        try:
            if sc.cloud is not None:
                self.cloud = Cloud.from_scenario(sc.cloud, prefix=self.cloud_prefix)
                self.cloud.start()
            self.ctl = self.controller_factory(self.cloud.mgmt_ip if self.cloud else "127.0.0.1")
            if sc.switches:
                self.lab = LabNet(sc, self.ctl, switch_opts=self.switch_opts, log_level=self.log_level)
                self.lab.start(connect_timeout=self.connect_timeout)
            if self.cloud is not None:
                self._attach_cloud()
        except BaseException:
            self.stop()
            raise
        return self

    def _attach_cloud(self):
        """Point the cloud hosts at the controller (OVSDB manager, or
        br-int's controller), then add the VMs once br-int exists."""
        host = self.cloud.mgmt_ip if _is_local(self.ctl.of_host) else self.ctl.of_host
        if self.scenario.cloud.attach == "manager":
            if not self.ctl.ovsdb_port:
                raise LabError("cloud hosts with attach: manager need the controller's OVSDB port")
            for ch in self.cloud.hosts:
                ch.set_manager("tcp:%s:%d" % (host, self.ctl.ovsdb_port))
            for ch in self.cloud.hosts:
                wait_until(lambda ch=ch: "br-int" in ch.vsctl("list-br").split(), self.connect_timeout,
                           interval=0.5, what="%s's br-int, created by the controller over OVSDB" % ch.name)
        else:
            for ch in self.cloud.hosts:
                ch.set_controller("tcp:%s:%d" % (host, self.ctl.of_port))
            for ch in self.cloud.hosts:
                wait_until(ch.br_int_connected, self.connect_timeout, interval=0.5,
                           what="%s br-int to connect" % ch.name)
        self.cloud.add_vms(self.scenario.cloud)

    def stop(self):
        """Tear down the Mininet network and the cloud (not the controller:
        whoever made it stops it)."""
        try:
            if self.lab is not None:
                self.lab.stop()
        finally:
            self.lab = None
            if self.cloud is not None:
                self.cloud.stop()
                self.cloud = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- policies and readiness -------------------------------------------
    def apply_policies(self, out=None):
        """Push the scenario's `policies` section through tools/flowgate-push
        (validated first; ports of networks the file creates are checked once
        those exist). Returns the pusher's output lines."""
        if not self.scenario.policies:
            return []
        if self.ctl.rest is None:
            raise LabError("applying policies needs the controller's REST address")
        push = load_pusher()
        buf = io.StringIO()
        try:
            api = push.Api(self.ctl.rest.base_url, token=os.environ.get("FLOWGATE_API_TOKEN"))
            push.Pusher(api, out=buf).apply(self.scenario.policies)
        except push.PushError as err:
            raise LabError("%s: policies: %s" % (self.scenario.path or self.scenario.name, err)) from None
        finally:
            if out is not None:
                out.write(buf.getvalue())
        return buf.getvalue().splitlines()

    def wait_ready(self, timeout=120):
        """Wait until the controller knows the network well enough for the
        reachability check: every switch connected and, when all speak
        OpenFlow 1.3, discovered with all its links; every cloud host with
        br-int and its tunnels; every port of the policies bound."""
        rest = self.ctl.rest
        if rest is None:
            return
        if self.lab is not None:
            wait_network_ready(self.ctl, self.lab, timeout)
        if self.cloud is not None and self.scenario.cloud.attach == "manager":
            n = len(self.cloud.hosts)

            def tunnels_up():
                hosts = rest.get("/api/v1/chassis") or []
                return len(hosts) >= n and all(
                    h.get("connected") and h.get("bridge") and h["bridge"]["controllers"]
                    and h["bridge"]["controllers"][0]["connected"]
                    and len([t for t in h["tunnels"] if (t["ofport"] or -1) > 0]) >= n - 1
                    for h in hosts
                )

            wait_until(tunnels_up, timeout, interval=0.5, what="cloud hosts with br-int connected and tunnels up")
        iface_ids = {vm.iface_id for _, vm in self.scenario.vms()}
        if iface_ids and rest.request("GET", "/api/v1/ports").status == 200:
            def bound():
                ports = [p for p in rest.get("/api/v1/ports") if p.get("iface_id") in iface_ids]
                return all(p["status"]["bound"] for p in ports)

            wait_until(bound, timeout, interval=0.5, what="the VMs' ports bound")

    # --- traffic -------------------------------------------------------------
    def endpoints(self):
        """{name: (Shell, IPv4)}: where to run commands as each host or VM,
        and its address."""
        out = {}
        for name, addr in self.scenario.endpoints().items():
            if self.lab is not None and self.scenario.host(name) is not None:
                node = self.lab[name]
                out[name] = (NodeShell(node), node.IP())
            else:
                out[name] = (NamespaceShell(self._vm_ns(name)), addr)
        return out

    def _vm_ns(self, name):
        for ch in self.cloud.hosts:
            if name in ch.vms:
                return ch.vms[name]
        raise LabError("no VM %s" % name)

    def vm_namespaces(self):
        """{VM name: network namespace}."""
        return {vm: ns for ch in (self.cloud.hosts if self.cloud else []) for vm, ns in ch.vms.items()}

    def reachability(self, retries=2):
        """Ping every ordered pair of endpoints, all sources and all their
        destinations at once (pairs with the same address are left out),
        and compare with the scenario's `expect`. A pair that should reach
        and does not is tried `retries` more times."""
        eps = self.endpoints()
        expected = self.scenario.expected()
        todo = {src: {d: eps[d][1] for d in eps if (src, d) in expected} for src in eps}
        got = ping_round({eps[s][0]: dsts for s, dsts in todo.items()}, wait=1, names={eps[s][0]: s for s in eps})
        for _ in range(retries):
            again = {}
            for (src, dst), ok in got.items():
                if expected[(src, dst)] and not ok:
                    again.setdefault(eps[src][0], {})[dst] = eps[dst][1]
            if not again:
                break
            got.update(ping_round(again, wait=2, names={eps[s][0]: s for s in eps}))
        return Reachability(list(eps), expected, got)


class NodeShell:
    """A Mininet node's shell: start a script, collect its output later."""

    def __init__(self, node):
        self.node = node

    def start(self, script):
        self.node.sendCmd(script)

    def finish(self):
        return self.node.waitOutput()


class NamespaceShell:
    """`sh` in a network namespace, started and collected the same way."""

    def __init__(self, ns):
        self.ns = ns
        self.proc = None

    def start(self, script):
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, "sh", "-c", script],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def finish(self, timeout=60):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=10)
        return out


def ping_round(todo, wait=1, names=None):
    """One ping for every (source, destination) at once. `todo` maps a
    shell (NodeShell, NamespaceShell) to {dst name: IPv4}; returns
    {(source name, dst name): replied?}, naming sources by `names`."""
    names = names or {}
    started = [(shell, dsts) for shell, dsts in todo.items() if dsts]
    for shell, dsts in started:
        shell.start(ping_script(dsts, wait))
    got = {}
    for shell, dsts in started:
        src = names.get(shell, shell)
        got.update(((src, d), ok) for d, ok in parse_pings(shell.finish(), dsts).items())
    return got


def wait_network_ready(ctl, lab, timeout=120):
    """Wait until the controller lists every switch of a started LabNet and,
    when all of them speak OpenFlow 1.3 (discovery and its edge delay run
    there), has discovered them and all their links."""
    dpids = {int(sw.dpid, 16) for sw in lab.switches}
    switches = wait_rest_switches(ctl, dpids, timeout=timeout)
    versions = {sw["version"] for sw in switches if sw["dpid_int"] in dpids}
    if versions != {"1.3"} or ctl.rest.request("GET", "/api/v1/topology").status != 200:
        return
    want = switch_links(lab)

    def discovered():
        # The controller may have other switches too (cloud hosts' br-int).
        doc = ctl.rest.get("/api/v1/topology")
        ready = {s["dpid_int"] for s in doc["switches"] if s["ready"]}
        links = [link for link in doc["links"]
                 if {int(link[end]["dpid"].replace(":", ""), 16) for end in ("src", "dst")} <= dpids]
        return dpids <= ready and discovered_links({"links": links}) == want and len(links) == 2 * len(want)

    wait_until(discovered, timeout, interval=1, what="the controller to discover %d links" % len(want))


def ping_script(dsts, wait=1):
    """A shell script pinging each of `dsts` ({name: IPv4}) once, all at
    once, printing `REACH name` or `NOREACH name` for each."""
    targets = " ".join("%s=%s" % (name, addr) for name, addr in dsts.items())
    return (
        "for t in %s; do ( n=${t%%%%=*}; a=${t#*=}; "
        "if ping -n -q -c 1 -W %d $a >/dev/null 2>&1; then echo REACH $n; else echo NOREACH $n; fi ) & "
        "done; wait" % (targets, wait)
    )


def parse_pings(out, dsts):
    """{dst: replied?} from a ping_script's output."""
    result = {name: False for name in dsts}
    for line in out.splitlines():
        words = line.split()
        if len(words) == 2 and words[1] in result:
            result[words[1]] = words[0] == "REACH"
    return result


class Reachability:
    """Observed vs expected reachability of every ordered pair."""

    def __init__(self, names, expected, got):
        self.names = names
        self.expected = expected
        self.got = got

    @property
    def mismatches(self):
        return [(s, d) for (s, d), want in self.expected.items() if self.got.get((s, d)) != want]

    @property
    def ok(self):
        return not self.mismatches

    def summary(self):
        reach = sum(1 for v in self.got.values() if v)
        text = "%d pairs: %d reach, %d do not" % (len(self.got), reach, len(self.got) - reach)
        if self.ok:
            return text + ", all as expected"
        lines = ["%s -> %s: %s" % (s, d, "no reply, expected to reach" if self.expected[(s, d)]
                                   else "reached, expected no reply") for s, d in self.mismatches]
        return "%s; %d NOT as expected:\n  %s" % (text, len(lines), "\n  ".join(lines))

    def table(self):
        """A matrix: rows are sources, columns destinations; `ok` reached,
        `.` no reply, `!` not as expected, `=` not tried (same address)."""
        width = max([len(n) for n in self.names] + [3])
        head = " " * width + " " + " ".join(n[:width].rjust(width) for n in self.names)
        rows = [head]
        for s in self.names:
            cells = []
            for d in self.names:
                if s == d:
                    cell = "-"
                elif (s, d) not in self.expected:
                    cell = "="
                else:
                    cell = ("ok" if self.got.get((s, d)) else ".") + ("" if self.got.get((s, d)) == self.expected[(s, d)] else "!")
                cells.append(cell.rjust(width))
            rows.append(s.ljust(width) + " " + " ".join(cells))
        return "\n".join(rows)

    def __repr__(self):
        return "Reachability(%s)" % self.summary()


__all__ = ["Reachability", "RemoteController", "ScenarioLab", "load_pusher", "ping_round", "wait_network_ready"]
