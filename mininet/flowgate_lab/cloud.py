"""Multi-host "cloud" lab for overlays (see /work/shared/LAB.md).

Each cloud host is a network namespace running its own ovsdb-server and
ovs-vswitchd (own run directory), with:
  * `eth0`, a veth into a Linux bridge `br-under` in the underlay namespace;
  * `br-phy` (netdev) holding eth0 and the host's underlay IP, plus an OVS
    route for the underlay subnet (userspace tunnelling needs both);
  * `br-int` (netdev, OpenFlow13, fail_mode=secure), optionally pointed at a
    controller; tunnel ports are the controller's job (or `add_tunnel` here
    for smoke checks). With `br_int=False` the host has no br-int: a
    controller that manages hosts through OVSDB (`set_manager`) creates it;
  * ovsdb-server honours the Manager table, so `set_manager` makes it dial
    a controller's OVSDB listener (`ovs-vsctl set-manager tcp:CTRL:6640`);
  * "VMs": namespaces with a veth into br-int, MTU 1450, tx offload off.
The root namespace reaches the underlay through a management veth
(`<prefix>-mgmt`, address .254), so a controller in the root namespace
listening on that address (or 0.0.0.0) is reachable from every host.

Everything is named with a prefix (default "fgc") and recorded in a
manifest; `Cloud.stop()` removes exactly what was recorded, and a new
Cloud removes the leftovers of a dead earlier run with the same prefix.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from .util import LabError, acquire_lock, lock_wait, pid_alive, run, wait_until

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
MANIFEST_DIR = "/run/flowgate-lab"


def _ns(ns, *argv, timeout=30, check=True):
    return run(["ip", "netns", "exec", ns, *argv], timeout=timeout, check=check)


class CloudHost:
    """One emulated hypervisor: a namespace with its own Open vSwitch."""

    def __init__(self, cloud, index, br_int=True, name=None, underlay_ip=None, dpid=None):
        self.cloud = cloud
        self.with_br_int = br_int
        self.index = index
        self.name = name or "h%d" % index
        self.ns = "%s-%s" % (cloud.prefix, self.name)
        self.dir = os.path.join(cloud.run_dir, self.name)
        self.underlay_ip = underlay_ip or "%s.%d" % (cloud.subnet, 10 + index)
        self.dpid = dpid or 0xC000 + index
        self.vms = {}

    # --- Open vSwitch in the namespace ---------------------------------
    def _env(self):
        return ["env", "OVS_RUNDIR=%s" % self.dir, "OVS_DBDIR=%s" % self.dir, "OVS_LOGDIR=%s" % self.dir]

    def ovs(self, tool, *args, timeout=20, check=True):
        """Run an OVS tool (ovs-vsctl, ovs-ofctl, ovs-appctl, ...) against this
        host's daemons, inside its namespace."""
        extra = []
        if tool == "ovs-vsctl":
            extra = ["--db=unix:%s/db.sock" % self.dir, "--timeout=%d" % timeout]
        elif tool == "ovs-ofctl":
            extra = ["-O", "OpenFlow13"]
        return _ns(self.ns, *self._env(), tool, *extra, *args, timeout=timeout + 5, check=check)

    def vsctl(self, *args, **kw):
        return self.ovs("ovs-vsctl", *args, **kw)

    def ofctl(self, *args, **kw):
        return self.ovs("ovs-ofctl", *args, **kw)

    def appctl(self, *args, **kw):
        return self.ovs("ovs-appctl", *args, **kw)

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        run(["ip", "netns", "add", self.ns])
        self.cloud.record("netns", self.ns)
        _ns(self.ns, "ip", "link", "set", "lo", "up")
        # eth0 here, its peer u-hN in the underlay bridge.
        peer = "u-%s" % self.name
        run(["ip", "link", "add", peer, "netns", self.cloud.under_ns, "type", "veth",
             "peer", "name", "eth0", "netns", self.ns])
        _ns(self.cloud.under_ns, "ip", "link", "set", peer, "master", "br-under", "up")
        _ns(self.cloud.under_ns, "ethtool", "-K", peer, "tx", "off")
        _ns(self.ns, "ethtool", "-K", "eth0", "tx", "off")
        _ns(self.ns, "ip", "link", "set", "eth0", "up")

        run(["ovsdb-tool", "create", os.path.join(self.dir, "conf.db"), SCHEMA])
        _ns(self.ns, *self._env(), "ovsdb-server", os.path.join(self.dir, "conf.db"),
            "--remote=punix:%s/db.sock" % self.dir, "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
            "--pidfile", "--log-file", "--detach", "--no-chdir")
        self.vsctl("--no-wait", "init")
        _ns(self.ns, *self._env(), "ovs-vswitchd", "unix:%s/db.sock" % self.dir,
            "--pidfile", "--log-file", "--detach", "--no-chdir", timeout=60)

        self.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
                   "--", "add-port", "br-phy", "eth0")
        _ns(self.ns, "ip", "addr", "add", "%s/24" % self.underlay_ip, "dev", "br-phy")
        _ns(self.ns, "ip", "link", "set", "br-phy", "up")
        _ns(self.ns, "ethtool", "-K", "br-phy", "tx", "off", check=False)
        # ovs-vswitchd refuses the route until it has opened br-phy with its
        # address, which takes a moment on a busy machine.
        wait_until(self._add_underlay_route, 20, interval=0.2, what="the underlay route on %s" % self.name)

        if not self.with_br_int:
            return self
        self.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev",
                   "protocols=OpenFlow13", "fail_mode=secure",
                   "other-config:datapath-id=%016x" % self.dpid,
                   "other-config:disable-in-band=true")
        _ns(self.ns, "ip", "link", "set", "br-int", "up")
        return self

    def _add_underlay_route(self):
        prefix = "%s.0/24" % self.cloud.subnet
        self.appctl("ovs/route/add", prefix, "br-phy", check=False)
        return prefix in self.appctl("ovs/route/show", check=False)

    def set_manager(self, target):
        """Make this host's ovsdb-server dial `target` (tcp:CTRL:PORT)."""
        self.vsctl("set-manager", target)

    def del_manager(self):
        self.vsctl("del-manager")

    def set_controller(self, target):
        """Point br-int at `target` (e.g. tcp:198.18.0.254:6653)."""
        self.vsctl("set-controller", "br-int", target)

    def br_int_connected(self):
        """True when br-int's controller connection is up."""
        out = self.vsctl("--bare", "--columns=is_connected", "list", "controller")
        return out.split() != [] and all(v == "true" for v in out.split())

    def add_vm(self, vm, ip, mac=None, mtu=1450, iface_id=None, ipv6=()):
        """A namespace `<prefix>-<host>-<vm>` with eth0 (ip in CIDR form, or
        None; IPv6 addresses `ipv6` turn IPv6 on), its peer `vm` a port of
        br-int tagged external_ids:iface-id=<iface_id> (default: vm)."""
        vm_ns = "%s-%s" % (self.ns, vm)
        run(["ip", "netns", "add", vm_ns])
        self.cloud.record("netns", vm_ns)
        run(["ip", "link", "add", vm, "netns", self.ns, "type", "veth", "peer", "name", "eth0", "netns", vm_ns])
        for ns, dev in ((self.ns, vm), (vm_ns, "eth0")):
            _ns(ns, "ip", "link", "set", dev, "mtu", str(mtu))
            _ns(ns, "ethtool", "-K", dev, "tx", "off")
            _ns(ns, "ip", "link", "set", dev, "up")
        if mac:
            _ns(vm_ns, "ip", "link", "set", "eth0", "address", mac)
        _ns(vm_ns, "ip", "link", "set", "lo", "up")
        if ip:
            _ns(vm_ns, "ip", "addr", "add", ip, "dev", "eth0")
        if ipv6:
            for addr in ipv6:
                _ns(vm_ns, "ip", "-6", "addr", "add", addr, "dev", "eth0", "nodad")
        else:
            _ns(vm_ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        self.vsctl("add-port", "br-int", vm, "--", "set", "interface", vm,
                   "external_ids:iface-id=%s" % (iface_id or vm))
        self.vms[vm] = vm_ns
        return vm_ns

    def add_tunnel(self, peer, kind="vxlan"):
        """A tunnel port to `peer` (another CloudHost) with key=flow."""
        name = "%s-%s" % (kind[:2], peer.name)
        self.vsctl("add-port", "br-int", name, "--", "set", "interface", name, "type=%s" % kind,
                   "options:remote_ip=%s" % peer.underlay_ip, "options:local_ip=%s" % self.underlay_ip,
                   "options:key=flow")
        return name

    def stop(self):
        """Stop this host's daemons (by their pidfiles in our run dir)."""
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            pidfile = os.path.join(self.dir, "%s.pid" % daemon)
            try:
                with open(pidfile, encoding="ascii") as fh:
                    pid = int(fh.read().strip())
            except (OSError, ValueError):
                continue
            _kill(pid)


def _link_mac(ns, link):
    """The MAC address of `link` in namespace `ns`."""
    return json.loads(_ns(ns, "ip", "-j", "link", "show", link))[0]["address"]


def _kill(pid, timeout=10):
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pid_alive(pid), timeout, what="pid %d to exit" % pid)
    except LabError:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Cloud:
    """An underlay namespace with a Linux bridge, a management veth from the
    root namespace, and `n_hosts` CloudHosts."""

    def __init__(self, n_hosts=2, prefix="fgc", subnet="198.18.0", run_dir=None, br_int=True, hosts=None):
        """`hosts`, when given, replaces `n_hosts`: a list of CloudHost
        keyword dicts (name, underlay_ip, dpid) in index order."""
        if len(prefix) > 6:
            raise ValueError("prefix too long for interface names: %r" % prefix)
        self.prefix = prefix
        self.subnet = subnet
        self.mgmt_ip = "%s.254" % subnet
        self._own_run_dir = run_dir is None
        self.run_dir = run_dir or tempfile.mkdtemp(prefix="flowgate-cloud-", dir="/tmp")
        self.under_ns = "%s-under" % prefix
        self.mgmt_if = "%s-mgmt" % prefix
        specs = hosts if hosts is not None else [{} for _ in range(n_hosts)]
        self.hosts = [CloudHost(self, i, br_int=br_int, **spec) for i, spec in enumerate(specs, start=1)]
        self.manifest_path = os.path.join(MANIFEST_DIR, "%s.json" % prefix)
        self._locks = []
        self.manifest = {"pid": os.getpid(), "run_dir": self.run_dir, "netns": [], "link": []}

    @classmethod
    def from_scenario(cls, cloud, prefix="fgc", run_dir=None):
        """The cloud of a scenario (`Scenario.cloud`), VMs not yet added
        (`add_vms`): with attach "manager" the hosts have no br-int until a
        controller creates it over OVSDB."""
        return cls(prefix=prefix, subnet=cloud.prefix24, run_dir=run_dir, br_int=cloud.attach == "controller",
                   hosts=[{"name": h.name, "underlay_ip": h.underlay_ip, "dpid": h.dpid} for h in cloud.hosts])

    def add_vms(self, cloud):
        """Add the VMs of a scenario's cloud to the hosts of the same names."""
        by_name = {h.name: h for h in self.hosts}
        for spec in cloud.hosts:
            for vm in spec.vms:
                by_name[spec.name].add_vm(vm.name, vm.ip, mac=vm.mac, mtu=vm.mtu, iface_id=vm.iface_id,
                                          ipv6=vm.ipv6)

    def record(self, kind, name):
        """Remember something we created, persistently, for cleanup."""
        self.manifest[kind].append(name)
        self._save()

    def _save(self):
        with open(self.manifest_path, "w", encoding="utf-8") as fh:
            json.dump(self.manifest, fh)

    def _claim(self):
        # One cloud per prefix and per underlay subnet (the management
        # address lives in the root namespace): wait for a running one.
        try:
            for key in (self.prefix, self.subnet):
                path = os.path.join(MANIFEST_DIR, "cloud-%s.lock" % key)
                self._locks.append(acquire_lock(path, lock_wait()))
            self._claim_names()
        except BaseException:
            self._release_locks()
            raise

    def _claim_names(self):
        os.makedirs(MANIFEST_DIR, exist_ok=True)
        if os.path.exists(self.manifest_path):
            with open(self.manifest_path, encoding="utf-8") as fh:
                old = json.load(fh)
            if pid_alive(old.get("pid", 0)) and old.get("pid") != os.getpid():
                raise LabError("cloud prefix %r is in use by pid %s" % (self.prefix, old["pid"]))
            _remove(old)
        existing = run(["ip", "netns", "list"]).split()
        clash = [n for n in existing if n.startswith(self.prefix + "-")]
        if clash or _link_exists(self.mgmt_if):
            raise LabError("names with prefix %r exist but are not ours: %s" % (self.prefix, clash or self.mgmt_if))
        self._save()  # claim the prefix before creating anything

    def start(self):
        """Create the underlay, the management link and every host."""
        self._claim()
        try:
            run(["ip", "netns", "add", self.under_ns])
            self.record("netns", self.under_ns)
            _ns(self.under_ns, "ip", "link", "set", "lo", "up")
            _ns(self.under_ns, "ip", "link", "add", "br-under", "type", "bridge")
            _ns(self.under_ns, "ip", "link", "set", "br-under", "up")
            _ns(self.under_ns, "ethtool", "-K", "br-under", "tx", "off", check=False)
            run(["ip", "link", "add", self.mgmt_if, "type", "veth", "peer", "name", "mgmt", "netns", self.under_ns])
            self.record("link", self.mgmt_if)
            _ns(self.under_ns, "ip", "link", "set", "mgmt", "master", "br-under", "up")
            _ns(self.under_ns, "ethtool", "-K", "mgmt", "tx", "off")
            run(["ethtool", "-K", self.mgmt_if, "tx", "off"])
            run(["ip", "addr", "add", "%s/24" % self.mgmt_ip, "dev", self.mgmt_if])
            run(["ip", "link", "set", self.mgmt_if, "up"])
            for host in self.hosts:
                host.start()
            self._resolve_underlay()
        except BaseException:
            self.stop()
            raise
        return self

    def _resolve_underlay(self):
        """Give every host's tunnel neighbor cache (`ovs-appctl
        tnl/neigh/show`) every other host's underlay address. OVS's
        userspace datapath drops a packet tunnelled to an endpoint whose MAC
        it has not resolved yet, while it asks (the kernel datapath queues
        it): the first packet between two hosts would be lost, and a test's
        first connection through a tunnel would wait for TCP's retransmit."""
        macs = {h.underlay_ip: _link_mac(h.ns, "br-phy") for h in self.hosts}
        for host in self.hosts:
            for ip, mac in macs.items():
                if ip != host.underlay_ip:
                    host.appctl("tnl/neigh/set", "br-phy", ip, mac)

    def stop(self):
        """Stop every daemon and delete every namespace and link we made."""
        for host in self.hosts:
            host.stop()
        _remove(self.manifest)
        try:
            os.unlink(self.manifest_path)
        except FileNotFoundError:
            pass
        if self._own_run_dir and not os.environ.get("FLOWGATE_LAB_KEEP"):
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self._release_locks()

    def _release_locks(self):
        for lock in self._locks:
            lock.close()
        self._locks = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _link_exists(name):
    return run(["ip", "link", "show", "dev", name], check=False, timeout=10).strip() != ""


def _remove(manifest):
    """Delete what a manifest lists: daemons by pidfile, namespaces, links."""
    run_dir = manifest.get("run_dir")
    if run_dir and os.path.isdir(run_dir):
        for entry in sorted(os.listdir(run_dir)):
            for daemon in ("ovs-vswitchd", "ovsdb-server"):
                pidfile = os.path.join(run_dir, entry, "%s.pid" % daemon)
                if os.path.exists(pidfile):
                    try:
                        with open(pidfile, encoding="ascii") as fh:
                            _kill(int(fh.read().strip()))
                    except (OSError, ValueError):
                        pass
    # VM namespaces were recorded after their host's: delete in reverse.
    for ns in reversed(manifest.get("netns", [])):
        run(["ip", "netns", "del", ns], check=False)
    for link in manifest.get("link", []):
        if _link_exists(link):
            run(["ip", "link", "del", link], check=False)


def ping_ns(ns, ip, count=3, wait=3):
    """Packets received by `ping` from namespace `ns` to `ip`."""
    out = _ns(ns, "timeout", str(count + wait + 5), "ping", "-n", "-c", str(count), "-i", "0.2",
              "-W", str(wait), ip, check=False, timeout=count + wait + 10)
    for line in out.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


class Capture:
    """`tcpdump` in namespace `ns` (None: the root namespace) on `iface`
    with a BPF filter `bpf`,
    started by `start()` (waits until it listens) and read by `stop()`,
    which returns tcpdump's output lines (`-e -nn`; an encapsulated packet
    such as VXLAN prints its inner frame on a second line). Killed by PID."""

    def __init__(self, ns, iface, bpf=""):
        self.ns, self.iface, self.bpf = ns, iface, bpf
        self.proc = None
        self.out = tempfile.NamedTemporaryFile(prefix="flowgate-cap-", suffix=".txt", delete=False)
        self.err = tempfile.NamedTemporaryFile(prefix="flowgate-cap-", suffix=".err", delete=False)

    def start(self):
        netns = ["ip", "netns", "exec", self.ns] if self.ns else []
        argv = netns + ["tcpdump", "-i", self.iface, "-nn", "-l", "-U", "-e"]
        self.proc = subprocess.Popen(argv + self.bpf.split(), stdout=self.out, stderr=self.err)
        wait_until(lambda: "listening on" in _read(self.err.name) or self.proc.poll() is not None, 10,
                   what="tcpdump on %s/%s" % (self.ns, self.iface))
        if self.proc.poll() is not None:
            raise LabError("tcpdump failed: %s" % _read(self.err.name))
        return self

    def stop(self):
        """Stop capturing; tcpdump's output lines."""
        if self.proc is not None and self.proc.poll() is None:
            time.sleep(0.3)  # let the last packets be written
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        lines = [line for line in _read(self.out.name).splitlines() if line.strip()]
        for f in (self.out, self.err):
            f.close()
            if os.path.exists(f.name):
                os.unlink(f.name)
        self.proc = None
        return lines

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc is not None:
            self.stop()


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


def iperf_ns(client_ns, server_ns, server_ip, seconds=3, port=5201):
    """TCP throughput client -> server (both namespaces) in Mbit/s with
    iperf3; 0.0 when no data arrived. The one-off server is killed by PID."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (":%d " % port) in _ns(server_ns, "ss", "-Hltn"), 10,
                   what="iperf3 server in %s" % server_ns)
        out = _ns(client_ns, "timeout", str(seconds + 20), "iperf3", "-c", server_ip, "-p", str(port),
                  "-t", str(seconds), "-J", check=False, timeout=seconds + 30)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)
    try:
        doc = json.loads(out[out.index("{"):])
        return doc["end"]["sum_received"]["bits_per_second"] / 1e6
    except (ValueError, KeyError):
        return 0.0


def smoke(n_hosts=2, kind="vxlan"):
    """Build a cloud, check the underlay, the management path and a manual
    overlay (tunnel ports + NORMAL flows, no controller), then tear down.
    Returns a dict of what was measured; raises LabError on a failure."""
    result = {}
    with Cloud(n_hosts=n_hosts) as cloud:
        a, b = cloud.hosts[0], cloud.hosts[1]
        result["underlay_ping"] = ping_ns(a.ns, b.underlay_ip)
        result["mgmt_ping"] = ping_ns(a.ns, cloud.mgmt_ip)
        for i, host in enumerate(cloud.hosts, start=1):
            host.add_vm("vm1", "10.10.0.%d/24" % i)
            for peer in cloud.hosts:
                if peer is not host:
                    host.add_tunnel(peer, kind)
            host.ofctl("add-flow", "br-int", "priority=0,actions=NORMAL")
        result["overlay_ping"] = ping_ns(a.vms["vm1"], "10.10.0.2")
        # Large packets must fit the tunnel (MTU 1450 inside).
        out = _ns(a.vms["vm1"], "timeout", "10", "ping", "-n", "-c", "2", "-s", "1400", "-M", "do",
                  "10.10.0.2", check=False, timeout=15)
        result["overlay_big_ping_ok"] = " 0% packet loss" in out
    failed = [k for k, v in result.items() if not v]
    if failed:
        raise LabError("cloud smoke failed: %s (%s)" % (", ".join(failed), result))
    return result
