"""LabNet: a Mininet network wired to a controller process, with safe
start-up and teardown. The network is a scenario (a topologies/ file or
a spec such as "linear,3", see scenario.py) or any Mininet Topo.

* Before building, bridges whose names the topology needs are checked: a
  bridge left by an earlier harness run whose process is gone is removed; any
  other bridge with that name belongs to someone else and start-up refuses.
* `stop()` runs `net.stop()` and then removes, by name, only the bridges and
  root-namespace interfaces this network created, if anything is left.
* Every wait has a timeout; every ping runs under `timeout(1)`.
"""

import json
import os
import re
import time
from functools import partial

from mininet.log import setLogLevel
from mininet.net import Mininet

from . import ovs
from .nodes import OWNER_KEY, LabRemoteController, LabSwitch, OffloadHost
from .topos import check_netem, make_topo
from .util import LabError, acquire_lock, lock_wait, pid_alive, run, wait_until


class PingResult:
    """Outcome of an all-pairs ping: which ordered pairs failed."""

    def __init__(self, pairs, failed, retried=()):
        self.pairs = pairs
        self.failed = failed
        # Pairs whose first ping got no reply (reached or not on a retry).
        self.retried = list(retried)

    @property
    def loss_percent(self):
        return 100.0 * len(self.failed) / len(self.pairs) if self.pairs else 0.0

    def __repr__(self):
        fails = ", ".join("%s->%s" % pair for pair in self.failed) or "none"
        retried = ", ".join("%s->%s" % pair for pair in self.retried) or "none"
        return "PingResult(%d pairs, %.0f%% loss, failed: %s, first try lost: %s)" % (
            len(self.pairs),
            self.loss_percent,
            fails,
            retried,
        )


def _link_exists(name):
    return run(["ip", "link", "show", "dev", name], check=False, timeout=10).strip() != ""


class LabNet:
    """A topology on LabSwitch/OffloadHost, pointed at `controller`
    (anything with `of_host` and `of_port`, e.g. FlowgateController)."""

    def __init__(self, topo, controller, switch_opts=None, log_level="warning"):
        # A spec ("linear,3"), a scenario file or Scenario, or a Mininet Topo.
        self.topo = make_topo(topo)
        self.scenario = getattr(self.topo, "scenario", None)
        self.controller = controller
        self.switch_opts = switch_opts or {}
        self.log_level = log_level
        self.net = None
        self._created_intfs = []
        self._lock = None

    # --- lifecycle -------------------------------------------------------
    def start(self, connect_timeout=60):
        """Build and start the network, then wait until every switch reports
        is_connected=true in ovsdb."""
        setLogLevel(self.log_level)
        ovs.vsctl("show")  # fails fast when ovsdb-server is not running
        if self.scenario is not None:
            check_netem(self.scenario)
        # Mininet networks use fixed names (s1, h1-eth0, ...): one per machine.
        self._lock = acquire_lock(LOCK_PATH, lock_wait())
        try:
            self._preflight()
            self.net = Mininet(
                topo=self.topo,
                switch=partial(LabSwitch, **self.switch_opts),
                host=OffloadHost,
                controller=None,
                build=False,
                autoSetMacs=True,
                cleanup=False,
            )
            self.net.addController(
                "c0",
                controller=LabRemoteController,
                ip=self.controller.of_host,
                port=self.controller.of_port,
            )
            self.net.build()
            self._created_intfs = [
                intf.name
                for sw in self.net.switches
                for intf in sw.intfList()
                if intf.name != "lo"
            ]
            _quiet_ipv6(self._created_intfs)
            self.net.start()
            self.wait_connected(connect_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_connected(self, timeout=60):
        """Wait until every switch of the topology is connected."""
        names = self.switch_names()
        wait_until(
            lambda: ovs.bridges_connected(names),
            timeout,
            interval=0.5,
            what="switches %s to connect to %s:%d"
            % (",".join(names), self.controller.of_host, self.controller.of_port),
        )

    def stop(self):
        """Stop Mininet and remove whatever it left behind, by name."""
        try:
            if self.net is not None:
                self._interrupt_busy_nodes()
                self.net.stop()
        finally:
            self.net = None
            try:
                self._remove_leftovers()
            finally:
                if self._lock is not None:
                    self._lock.close()  # releases the flock
                    self._lock = None

    def _interrupt_busy_nodes(self):
        """A test interrupted mid-command (time limit, Ctrl-C) leaves a node's
        shell busy, and Mininet refuses to send it more commands: interrupt
        the command and drain its output so net.stop() can proceed."""
        for node in self.net.hosts + self.net.switches + self.net.controllers:
            if node.shell is not None and node.waiting:
                node.sendInt()
                try:
                    wait_until(lambda n=node: n.monitor(timeoutms=200) is not None and not n.waiting,
                               5, what="%s shell to settle" % node.name)
                except LabError:
                    node.waiting = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- names and safety ------------------------------------------------
    def switch_names(self):
        return sorted(self.topo.switches(), key=_natural)

    def host_names(self):
        return sorted(self.topo.hosts(), key=_natural)

    def _preflight(self, timeout=None):
        """Make sure the bridge names are free: remove bridges left by a dead
        harness; wait (up to the lock timeout) while a live harness that
        predates the lock still uses them; refuse bridges not made by us."""
        if timeout is None:
            timeout = lock_wait()
        deadline = time.monotonic() + timeout
        while True:
            busy = []
            existing = set(ovs.bridges())
            for name in self.switch_names():
                if name not in existing:
                    continue
                owner = ovs.bridge_external_ids(name).get(OWNER_KEY)
                if owner is None or not owner.isdigit():
                    raise LabError(
                        "bridge %s already exists and was not created by the lab harness; "
                        "refusing to touch it" % name
                    )
                if pid_alive(int(owner)) and int(owner) != os.getpid():
                    busy.append("%s (pid %s)" % (name, owner))
                else:
                    self._delete_bridge(name)
            if not busy:
                return
            if time.monotonic() >= deadline:
                raise LabError("bridges still in use by another lab run: %s" % ", ".join(busy))
            time.sleep(1)

    def _delete_bridge(self, name):
        ports = ovs.bridge_ports(name)
        ovs.vsctl("--if-exists", "del-br", name)
        for port in ports:
            if re.fullmatch(r"%s-eth\d+" % re.escape(name), port) and _link_exists(port):
                run(["ip", "link", "del", port], check=False, timeout=10)
        if _link_exists(name):
            run(["ip", "link", "del", name], check=False, timeout=10)

    def _remove_leftovers(self):
        """Delete bridges tagged with this process's PID and the
        root-namespace interfaces recorded at build time, if still there."""
        me = str(os.getpid())
        for name in set(self.switch_names()) & set(ovs.bridges()):
            if ovs.bridge_external_ids(name).get(OWNER_KEY) == me:
                self._delete_bridge(name)
        for intf in self._created_intfs:
            if _link_exists(intf):
                run(["ip", "link", "del", intf], check=False, timeout=10)
        self._created_intfs = []

    # --- access ------------------------------------------------------------
    def __getitem__(self, name):
        return self.net[name]

    @property
    def hosts(self):
        return sorted(self.net.hosts, key=lambda h: _natural(h.name))

    @property
    def switches(self):
        return sorted(self.net.switches, key=lambda s: _natural(s.name))

    # --- traffic -----------------------------------------------------------
    def ping(self, src, dst, count=1, wait=3, interval=0.2):
        """Ping from host `src` to host `dst`; return packets received."""
        src = self.net[src] if isinstance(src, str) else src
        dst = self.net[dst] if isinstance(dst, str) else dst
        limit = int(count * interval + wait + 5)
        out = src.cmd(
            "timeout %d ping -n -c %d -i %s -W %d %s" % (limit, count, interval, wait, dst.IP())
        )
        match = re.search(r"(\d+) (?:packets )?received", out)
        return int(match.group(1)) if match else 0

    def iperf(self, src, dst, seconds=3, port=5201):
        """TCP throughput src -> dst in Mbit/s with iperf3 (0.0 when no data
        arrived). The server is one-off and killed by PID afterwards."""
        src = self.net[src] if isinstance(src, str) else src
        dst = self.net[dst] if isinstance(dst, str) else dst
        pid = dst.cmd("iperf3 -s -1 -p %d >/dev/null 2>&1 & echo $!" % port).strip().splitlines()[-1]
        try:
            wait_until(
                lambda: ":%d " % port in dst.cmd("ss -Hltn"),
                10,
                what="iperf3 server on %s" % dst.name,
            )
            out = src.cmd(
                "timeout %d iperf3 -c %s -p %d -t %d -J" % (seconds + 20, dst.IP(), port, seconds)
            )
        finally:
            if pid.isdigit() and pid_alive(int(pid)):
                os.kill(int(pid), 9)
        try:
            doc = json.loads(out[out.index("{") :])
            return doc["end"]["sum_received"]["bits_per_second"] / 1e6
        except (ValueError, KeyError):
            return 0.0

    def pingall(self, attempts=2, wait=3):
        """Ping every ordered pair of hosts once; a pair that fails is tried
        again up to `attempts` times in total (the first packet of a
        reactive controller may legitimately be slow, never lost twice)."""
        pairs = [(a.name, b.name) for a in self.hosts for b in self.hosts if a is not b]
        failed, retried = [], []
        for src, dst in pairs:
            for attempt in range(attempts):
                if self.ping(src, dst, count=1, wait=wait):
                    break
                if attempt == 0:
                    retried.append((src, dst))
            else:
                failed.append((src, dst))
        return PingResult(pairs, failed, retried)


LOCK_PATH = "/run/flowgate-lab/mininet.lock"


def _quiet_ipv6(names):
    """Disable IPv6 on the switch-side veths (they live in the root
    namespace), so the kernel's router solicitations and MLD reports from
    them do not add learned MACs and packet-ins that tests did not cause."""
    for name in names:
        try:
            with open("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % name, "w", encoding="ascii") as knob:
                knob.write("1")
        except OSError:
            pass


def _natural(name):
    """Sort key putting s2 before s10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
