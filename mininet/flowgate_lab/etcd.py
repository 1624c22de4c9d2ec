"""An etcd cluster of the lab's own: N members on free ports, data in a
temp directory, each killed and restarted by PID (issue 22's clustering
tests: a member lost, quorum lost and regained).

Members listen for clients on 127.0.0.1 and on any extra local address
given (e.g. the root side of a ControllerNamespace's veth, so a node in
that namespace reaches etcd through its own link); peers talk on loopback.
"""

import os
import shutil
import signal
import subprocess
import tempfile

from .controller import _die_with_parent
from .util import LabError, free_port, wait_until


class EtcdMember:
    """One etcd server of an EtcdCluster."""

    def __init__(self, cluster, index):
        self.cluster = cluster
        self.name = "e%d" % index
        self.client_port = free_port()
        self.peer_url = "http://127.0.0.1:%d" % free_port()
        self.data_dir = os.path.join(cluster.run_dir, self.name)
        self.log_path = os.path.join(cluster.run_dir, "%s.log" % self.name)
        self.proc = None

    def client_urls(self):
        return ",".join("http://%s:%d" % (host, self.client_port) for host in self.cluster.hosts)

    def argv(self):
        return [
            "etcd", "--name", self.name, "--data-dir", self.data_dir,
            "--listen-client-urls", self.client_urls(),
            "--advertise-client-urls", "http://127.0.0.1:%d" % self.client_port,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.cluster.initial_cluster(),
            "--initial-cluster-token", self.cluster.token, "--initial-cluster-state", "new",
        ]

    def start(self):
        """Start (again: same ports and data, it rejoins as the same member)."""
        if self.running():
            raise LabError("etcd member %s already running (pid %d)" % (self.name, self.proc.pid))
        with open(self.log_path, "a", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            )

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, reaped: a crash, nothing flushed."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


class EtcdCluster:
    """`size` etcd members forming one cluster; `endpoints(host)` lists
    their client addresses (for flowgate's --etcd-endpoints, comma-joined)."""

    def __init__(self, size=3, hosts=("127.0.0.1",), run_dir=None):
        for binary in ("etcd", "etcdctl"):
            if shutil.which(binary) is None:
                raise LabError(
                    "`%s` not on PATH: the cluster lab needs etcd 3.4+ (Debian: apt-get install "
                    "etcd-server etcd-client)" % binary
                )
        self.hosts = list(hosts)
        self._own_run_dir = run_dir is None
        self.run_dir = run_dir or tempfile.mkdtemp(prefix="flowgate-etcd-")
        self.token = "flowgate-lab-%d" % os.getpid()
        self.members = [EtcdMember(self, i) for i in range(size)]

    def initial_cluster(self):
        return ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)

    def endpoints(self, host="127.0.0.1"):
        """["host:port", ...] of every member's client listener on `host`."""
        return ["%s:%d" % (host, m.client_port) for m in self.members]

    def start(self, timeout=60):
        """Start every member and wait until the cluster answers writes."""
        for member in self.members:
            member.start()
        self.wait_quorum(timeout)
        return self

    def wait_quorum(self, timeout=60):
        """Wait until a linearizable write succeeds (a leader with a quorum)."""
        wait_until(lambda: self.ctl("put", "/flowgate-lab/probe", "1").returncode == 0, timeout,
                   interval=0.5, what="etcd cluster to accept writes")

    def healthy_members(self):
        """Names of the members whose endpoint reports healthy."""
        out = []
        for member in self.members:
            if member.running() and self.ctl("endpoint", "health", member=member).returncode == 0:
                out.append(member.name)
        return out

    def ctl(self, *args, member=None):
        """etcdctl against every member (or one); CompletedProcess."""
        endpoints = self.endpoints() if member is None else ["127.0.0.1:%d" % member.client_port]
        return subprocess.run(
            ["etcdctl", "--endpoints", ",".join(endpoints), "--command-timeout=3s", *args],
            capture_output=True, text=True, timeout=15, check=False,
            env=dict(os.environ, ETCDCTL_API="3"),
        )

    def stop(self):
        """Kill every member; remove the data unless $FLOWGATE_LAB_KEEP."""
        for member in self.members:
            member.kill()
        if self._own_run_dir and not os.environ.get("FLOWGATE_LAB_KEEP"):
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
