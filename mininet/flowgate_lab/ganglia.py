"""Ganglia in the lab (see /work/shared/LAB.md, "Ganglia (works)").

* One gmond per lab host, inside the host's network namespace (a Mininet
  host, or a namespace by name), named as the lab host (`override_hostname`)
  and unicasting its metrics to the collector over a management link
  `gm0` (198.19.250.<n>/24, n = 1, 2, ... in host order). Its configuration
  is Debian's /etc/ganglia/gmond.conf with our globals, cluster and
  channels: the metric modules and collection groups stay as shipped.
* A collector namespace `<prefix>-col` with `lo`, the management bridge
  (198.19.250.254) and nothing else, running a collector gmond (mute: it
  only listens; XML on 127.0.0.1:8649 and 198.19.250.254:8649) and gmetad
  (polls 127.0.0.1:8649 every `step` seconds, XML on 8651/8652 of every
  address of the collector namespace, RRD files under `<run_dir>/rrds`,
  an ordinary directory the root namespace reads).
* With `root_link` (default) a veth `<prefix>-gm` from the root namespace
  (198.19.250.253) to the bridge, so a controller in the root namespace can
  read the collector's XML (`xml_addr`, `gmetad_addr`). Nothing leaves the
  collector, the lab hosts and that link.

Every daemon is started as our child and stopped by its PID. What is
created is recorded in a manifest (/run/flowgate-lab/ganglia-<prefix>.json);
`stop()` removes exactly that, and a new Ganglia with the same prefix
removes the leftovers of a dead earlier run (daemons only when their
command line names that run's directory).

With `new_namespaces=True` the hosts are names of namespaces to create
(`<prefix>-<name>`): that is a lab of its own, so it takes the machine's lab
lock (net.LOCK_PATH). Given Mininet hosts, the LabNet holding them holds it.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from .net import LOCK_PATH
from .util import LabError, acquire_lock, lock_wait, pid_alive, run, wait_until

MANIFEST_DIR = "/run/flowgate-lab"
DEBIAN_GMOND_CONF = "/etc/ganglia/gmond.conf"
SUBNET = "198.19.250"
COLLECTOR_IP = SUBNET + ".254"
ROOT_IP = SUBNET + ".253"
GMOND_PORT = 8649
GMETAD_XML_PORT = 8651
GMETAD_INTERACTIVE_PORT = 8652
# Sections of Debian's gmond.conf that the lab writes itself; the rest
# (modules, collection groups) is kept. Top-level `include` lines are
# dropped, so local additions in /etc/ganglia/conf.d do not change the lab.
OWN_SECTIONS = {"globals", "cluster", "host", "udp_send_channel", "udp_recv_channel", "tcp_accept_channel"}


def shipped_sections(path=DEBIAN_GMOND_CONF):
    """The top-level `name { ... }` sections of a gmond.conf other than the
    ones the lab writes, as text, in file order."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("#", "//")))
    sections, depth, start, name, in_string = [], 0, 0, None, False
    for i, ch in enumerate(text):
        if ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch == "{":
            if depth == 0:
                head = re.search(r"(\w+)\s*$", text[:i])
                if head is None:
                    raise LabError("%s: a block without a name at offset %d" % (path, i))
                name, start = head.group(1), head.start()
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0 and name not in OWN_SECTIONS:
                sections.append(text[start:i + 1])
    return sections


def _gmond_conf(globals_, cluster, channels, sections=()):
    lines = ["globals {"]
    lines += ["  %s = %s" % item for item in globals_.items()]
    lines += ["}", "cluster {", '  name = "%s"' % cluster, '  owner = "flowgate-lab"', "}"]
    lines += ['host {', '  location = "lab"', "}"]
    for kind, options in channels:
        lines.append("%s {" % kind)
        lines += ["  %s = %s" % item for item in options.items()]
        lines.append("}")
    return "\n".join(lines + list(sections)) + "\n"


class GangliaHost:
    """A lab host as Ganglia sees it: its namespace, management address and
    gmond configuration."""

    def __init__(self, ganglia, index, host):
        self.index = index
        if isinstance(host, str):
            self.name = host
            if ganglia.new_namespaces:
                self.netns = "%s-%s" % (ganglia.prefix, host)
            else:
                self.netns = host
            self.ns_path = "/run/netns/%s" % self.netns
            self.ns_target = self.netns  # for `ip link ... netns`
        else:  # a Mininet host: its shell's network namespace
            self.name = host.name
            self.netns = None
            self.ns_path = "/proc/%d/ns/net" % host.pid
            self.ns_target = str(host.pid)
        self.ip = "%s.%d" % (SUBNET, index)
        self.conf = os.path.join(ganglia.run_dir, "gmond-%s.conf" % self.name)

    def cmd(self, *argv):
        """argv run inside this host's network namespace."""
        return ["nsenter", "--net=%s" % self.ns_path, *argv]


class Ganglia:
    """gmond on each of `hosts`, a collector gmond and gmetad (see the module
    docs). `hosts`: Mininet hosts, names of existing namespaces, or names of
    namespaces to create (`new_namespaces=True`). `step`: gmetad's polling
    interval, the RRD files' step."""

    def __init__(self, hosts, cluster="flowgate", step=10, prefix="fgg", run_dir=None, new_namespaces=False,
                 root_link=True):
        if len(prefix) > 8:
            raise ValueError("prefix too long for interface names: %r" % prefix)
        if not 0 < len(hosts) < 253:
            raise ValueError("between 1 and 252 hosts, not %d" % len(hosts))
        self.cluster = cluster
        self.step = step
        self.prefix = prefix
        self.new_namespaces = new_namespaces
        self.root_link = root_link
        self._own_run_dir = run_dir is None
        self.run_dir = run_dir or tempfile.mkdtemp(prefix="flowgate-ganglia-", dir="/tmp")
        self.rrd_root = os.path.join(self.run_dir, "rrds")
        self.col_ns = "%s-col" % prefix
        self.root_if = "%s-gm" % prefix
        self.hosts = {}
        for index, host in enumerate(hosts, start=1):
            gh = GangliaHost(self, index, host)
            self.hosts[gh.name] = gh
        self.manifest_path = os.path.join(MANIFEST_DIR, "ganglia-%s.json" % prefix)
        self.manifest = {"pid": os.getpid(), "run_dir": self.run_dir, "own_run_dir": self._own_run_dir,
                         "netns": [], "link": [], "daemons": []}
        self._locks = []
        self._procs = {}  # role -> Popen
        self._logs = []

    # --- addresses ---------------------------------------------------------
    @property
    def xml_addr(self):
        """(ip, port) of the collector gmond's XML, from the root namespace."""
        return (COLLECTOR_IP, GMOND_PORT)

    @property
    def gmetad_addr(self):
        """(ip, port) of gmetad's XML, from the root namespace."""
        return (COLLECTOR_IP, GMETAD_XML_PORT)

    def rrd_path(self, host, metric):
        """`<rrd_rootdir>/<cluster>/<host>/<metric>.rrd`."""
        return os.path.join(self.rrd_root, self.cluster, host, "%s.rrd" % metric)

    # --- lifecycle ---------------------------------------------------------
    def start(self):
        """Management network, collector gmond, gmetad, one gmond per host."""
        self._claim()
        try:
            os.makedirs(self.rrd_root, exist_ok=True)
            self._network()
            self._write_confs()
            self._spawn("collector", ["ip", "netns", "exec", self.col_ns, "gmond", "-f", "-c",
                                      os.path.join(self.run_dir, "gmond-collector.conf")])
            wait_until(lambda: self._col_listening(GMOND_PORT), 20, what="the collector gmond to listen")
            for host in self.hosts.values():
                self._spawn("gmond-%s" % host.name, host.cmd("gmond", "-f", "-c", host.conf))
            self.start_gmetad()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stop every daemon we started (by PID), delete what we created."""
        for role in list(self._procs):
            self._terminate(role)
        _remove(self.manifest)
        try:
            os.unlink(self.manifest_path)
        except FileNotFoundError:
            pass
        for log in self._logs:
            log.close()
        self._logs = []
        if self._own_run_dir and not os.environ.get("FLOWGATE_LAB_KEEP"):
            shutil.rmtree(self.run_dir, ignore_errors=True)
        for lock in self._locks:
            lock.close()
        self._locks = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stop_gmetad(self):
        """Stop gmetad (the RRD files stop updating)."""
        self._terminate("gmetad")

    def start_gmetad(self):
        """Start gmetad, and wait until it serves its XML."""
        self._spawn("gmetad", ["ip", "netns", "exec", self.col_ns, "gmetad", "-d", "1", "-c",
                               os.path.join(self.run_dir, "gmetad.conf")])
        wait_until(lambda: self._col_listening(GMETAD_XML_PORT), 20, what="gmetad to listen")

    def gmond_pids(self):
        """{role: pid} of the daemons running now (collector, gmond-<host>, gmetad)."""
        return {role: proc.pid for role, proc in self._procs.items() if proc.poll() is None}

    # --- metrics -----------------------------------------------------------
    def gmetric(self, host, name, value, type="float", units="", tmax=60, dmax=0):  # noqa: A002 - gmetric's word
        """Send metric `name` = `value` from inside `host` (to its collector,
        as that host)."""
        h = self.hosts[host]
        run(h.cmd("gmetric", "-c", h.conf, "-n", name, "-v", str(value), "-t", type, "-u", units,
                  "-x", str(tmax), "-d", str(dmax), "-S", "%s:%s" % (h.ip, h.name)), timeout=10)

    def xml(self, addr=None, timeout=10):
        """The XML document served at `addr` (default: the collector gmond),
        read from the root namespace (needs `root_link`)."""
        with socket.create_connection(addr or self.xml_addr, timeout=timeout) as sock:
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return b"".join(chunks).decode("latin-1")
                chunks.append(chunk)

    def last_update(self, host, metric):
        """Seconds since the epoch of the file's last update (`rrdtool last`)."""
        return int(run(["rrdtool", "last", self.rrd_path(host, metric)], timeout=10).strip())

    def last_value(self, host, metric):
        """The value of the file's last update (`rrdtool lastupdate`)."""
        out = run(["rrdtool", "lastupdate", self.rrd_path(host, metric)], timeout=10)
        return float(out.strip().splitlines()[-1].split(":", 1)[1].split()[0])

    def wait_rrd(self, host, metric, timeout=60, after=None):
        """Wait until `host`'s file for `metric` exists (and, with `after`,
        was updated after that epoch second); its path."""
        path = self.rrd_path(host, metric)

        def ready():
            return os.path.exists(path) and (after is None or self.last_update(host, metric) > after)

        wait_until(ready, timeout, interval=0.5, what="%s (updated after %s)" % (path, after))
        return path

    # --- internals ---------------------------------------------------------
    def _claim(self):
        os.makedirs(MANIFEST_DIR, exist_ok=True)
        try:
            if self.new_namespaces:
                self._locks.append(acquire_lock(LOCK_PATH, lock_wait()))
            self._locks.append(acquire_lock(os.path.join(MANIFEST_DIR, "ganglia-%s.lock" % self.prefix),
                                            lock_wait()))
            self._claim_names()
        except BaseException:
            for lock in self._locks:
                lock.close()
            self._locks = []
            raise

    def _claim_names(self):
        if os.path.exists(self.manifest_path):
            with open(self.manifest_path, encoding="utf-8") as fh:
                old = json.load(fh)
            if pid_alive(old.get("pid", 0)) and old.get("pid") != os.getpid():
                raise LabError("ganglia prefix %r is in use by pid %s" % (self.prefix, old["pid"]))
            _remove(old)
        existing = run(["ip", "netns", "list"]).split()
        clash = [n for n in existing if n.startswith(self.prefix + "-")]
        if clash or (self.root_link and _link_exists(self.root_if)):
            raise LabError("names with prefix %r exist but are not ours: %s" % (self.prefix, clash or self.root_if))
        self._save()

    def _record(self, kind, value):
        self.manifest[kind].append(value)
        self._save()

    def _save(self):
        with open(self.manifest_path, "w", encoding="utf-8") as fh:
            json.dump(self.manifest, fh)

    def _network(self):
        col = self.col_ns
        run(["ip", "netns", "add", col])
        self._record("netns", col)
        _ns(col, "ip", "link", "set", "lo", "up")
        _ns(col, "ip", "link", "add", "gbr", "type", "bridge")
        _ns(col, "ip", "addr", "add", "%s/24" % COLLECTOR_IP, "dev", "gbr")
        _ns(col, "ip", "link", "set", "gbr", "up")
        if self.root_link:
            run(["ip", "link", "add", self.root_if, "type", "veth", "peer", "name", "root", "netns", col])
            self._record("link", self.root_if)
            _ns(col, "ip", "link", "set", "root", "master", "gbr", "up")
            run(["ip", "addr", "add", "%s/24" % ROOT_IP, "dev", self.root_if])
            run(["ip", "link", "set", self.root_if, "up"])
        for host in self.hosts.values():
            if self.new_namespaces:
                run(["ip", "netns", "add", host.netns])
                self._record("netns", host.netns)
                _ns(host.netns, "ip", "link", "set", "lo", "up")
            # The peer lives in the collector namespace: deleting that
            # namespace removes gm0 from the host too.
            port = "p%d" % host.index
            run(["ip", "link", "add", port, "netns", col, "type", "veth",
                 "peer", "name", "gm0", "netns", host.ns_target])
            _ns(col, "ip", "link", "set", port, "master", "gbr", "up")
            run(host.cmd("ip", "addr", "add", "%s/24" % host.ip, "dev", "gm0"))
            run(host.cmd("ip", "link", "set", "gm0", "up"))
        # The bridge forwards once its ports are up; the hosts' gmonds send
        # from their first second.
        wait_until(lambda: all(_ping(h) for h in self.hosts.values()), 20,
                   what="the management network")

    def _write_confs(self):
        base = {"setuid": "no", "daemonize": "no", "debug_level": 0, "max_udp_msg_len": 1472,
                "host_dmax": 0, "cleanup_threshold": 300, "gexec": "no"}
        sections = shipped_sections()
        for host in self.hosts.values():
            globals_ = dict(base, mute="no", deaf="yes", send_metadata_interval=self.step,
                            override_hostname='"%s"' % host.name, override_ip='"%s"' % host.ip)
            channels = [("udp_send_channel", {"host": COLLECTOR_IP, "port": GMOND_PORT, "ttl": 1})]
            _write(host.conf, _gmond_conf(globals_, self.cluster, channels, sections))
        # The collector only listens: no metrics of its own namespace.
        globals_ = dict(base, mute="yes", deaf="no", send_metadata_interval=0)
        channels = [("udp_recv_channel", {"bind": COLLECTOR_IP, "port": GMOND_PORT}),
                    ("tcp_accept_channel", {"bind": "127.0.0.1", "port": GMOND_PORT}),
                    ("tcp_accept_channel", {"bind": COLLECTOR_IP, "port": GMOND_PORT})]
        _write(os.path.join(self.run_dir, "gmond-collector.conf"),
               _gmond_conf(globals_, self.cluster, channels, sections))
        trusted = "127.0.0.1 %s" % ROOT_IP if self.root_link else "127.0.0.1"
        _write(os.path.join(self.run_dir, "gmetad.conf"), "\n".join([
            'data_source "%s" %d 127.0.0.1:%d' % (self.cluster, self.step, GMOND_PORT),
            'gridname "flowgate-lab"',
            'rrd_rootdir "%s"' % self.rrd_root,
            "setuid off",
            "xml_port %d" % GMETAD_XML_PORT,
            "interactive_port %d" % GMETAD_INTERACTIVE_PORT,
            "trusted_hosts %s" % trusted,
            "case_sensitive_hostnames 1",
            "server_threads 2",
        ]) + "\n")

    def _spawn(self, role, argv):
        log = open(os.path.join(self.run_dir, "%s.log" % role), "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        # `ip netns exec` and nsenter exec the daemon: the PID is the daemon's.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self._procs[role] = proc
        self._record("daemons", proc.pid)
        time.sleep(0.2)
        if proc.poll() is not None:
            raise LabError("%s exited at start (rc=%s): %s" % (role, proc.returncode, self._log_tail(role)))

    def _terminate(self, role):
        proc = self._procs.pop(role, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.pid in self.manifest["daemons"]:
            self.manifest["daemons"].remove(proc.pid)
            self._save()

    def _col_listening(self, port):
        out = _ns(self.col_ns, "ss", "-Hltn", "sport = :%d" % port, check=False)
        return out.strip() != ""

    def _log_tail(self, role, lines=20):
        path = os.path.join(self.run_dir, "%s.log" % role)
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return ""


def _ns(ns, *argv, timeout=30, check=True):
    return run(["ip", "netns", "exec", ns, *argv], timeout=timeout, check=check)


def _ping(host):
    out = run(host.cmd("ping", "-n", "-c", "1", "-W", "1", COLLECTOR_IP), timeout=10, check=False)
    return " 0% packet loss" in out


def _write(path, text):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _link_exists(name):
    return run(["ip", "link", "show", "dev", name], check=False, timeout=10).strip() != ""


def _ours(pid, run_dir):
    """True when `pid` runs a command naming `run_dir` (our daemons' configs
    live there), so a recycled PID is never killed."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            return run_dir.encode() in fh.read()
    except OSError:
        return False


def _remove(manifest):
    """Delete what a manifest lists: daemons by PID, namespaces, links."""
    run_dir = manifest.get("run_dir", "")
    for pid in manifest.get("daemons", []):
        if run_dir and pid_alive(pid) and _ours(pid, run_dir):
            os.kill(pid, signal.SIGTERM)
            try:
                wait_until(lambda p=pid: not pid_alive(p), 10, what="pid %d to exit" % pid)
            except LabError:
                os.kill(pid, signal.SIGKILL)
    for ns in reversed(manifest.get("netns", [])):
        run(["ip", "netns", "del", ns], check=False)
    for link in manifest.get("link", []):
        if _link_exists(link):
            run(["ip", "link", "del", link], check=False)
    if run_dir and manifest.get("own_run_dir") and manifest.get("pid") != os.getpid():
        # A dead run's files (its RRDs: 630 KB each with gmetad's archives).
        shutil.rmtree(run_dir, ignore_errors=True)
