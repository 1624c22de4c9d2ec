"""A controller in its own network namespace, reached through one veth, so
a test can cut that node off (switches, etcd, REST) without touching the
others: issue 22's partitioned node.

    ns = ControllerNamespace("fgpart", "198.19.0").start()
    ctl = NamespacedFlowgate(ns, extra_args=[...]).start()
    ns.cut(); ...; ns.restore()

The root namespace holds `<name>-r` with `<subnet>.1/30`, the namespace
`eth0` with `<subnet>.2/30`. Switches (OVS in the root namespace) dial the
controller at `<subnet>.2`; anything the controller must reach in the
root namespace (etcd) has to listen on `<subnet>.1` as well. `cut()` sets
`eth0` down inside the namespace only; the controller's REST also answers
inside the namespace on 127.0.0.1 (`rest_inside`), which still works while
the link is cut.
"""

import json
import os

from .controller import FlowgateController
from .rest import RestResponse
from .util import LabError, acquire_lock, lock_wait, run, tcp_listening, wait_until

LOCK_DIR = "/run/flowgate-lab"


class ControllerNamespace:
    """A network namespace with one veth to the root namespace."""

    def __init__(self, name="fgpart", subnet="198.19.0"):
        if len(name) > 13:
            raise ValueError("namespace name too long for its veth's name: %r" % name)
        self.name = name
        self.root_if = "%s-r" % name
        self.root_ip = "%s.1" % subnet
        self.ns_ip = "%s.2" % subnet
        self._lock = None

    def exec_argv(self, *argv):
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv, timeout=30, check=True):
        return run(self.exec_argv(*argv), timeout=timeout, check=check)

    def start(self):
        """Create it; leftovers of a dead run with this name are removed
        (the lock proves no live run owns them)."""
        self._lock = acquire_lock(os.path.join(LOCK_DIR, "netns-%s.lock" % self.name), lock_wait())
        try:
            self._remove()
            run(["ip", "netns", "add", self.name])
            run(["ip", "link", "add", self.root_if, "type", "veth", "peer", "name", "eth0",
                 "netns", self.name])
            run(["ip", "addr", "add", "%s/30" % self.root_ip, "dev", self.root_if])
            run(["ip", "link", "set", self.root_if, "up"])
            self.run("ip", "link", "set", "lo", "up")
            self.run("ip", "addr", "add", "%s/30" % self.ns_ip, "dev", "eth0")
            self.run("ip", "link", "set", "eth0", "up")
        except BaseException:
            self.stop()
            raise
        return self

    def cut(self):
        """The partition: the namespace's only link goes down (inside)."""
        self.run("ip", "link", "set", "eth0", "down")

    def restore(self):
        """The link back up (its address and routes come back with it)."""
        self.run("ip", "link", "set", "eth0", "up")
        wait_until(lambda: "0% packet loss" in self.run("ping", "-c", "1", "-W", "1", self.root_ip,
                                                         check=False),
                   15, what="%s to reach the root namespace again" % self.name)

    def _remove(self):
        if self.name in run(["ip", "netns", "list"], check=False).split():
            run(["ip", "netns", "del", self.name], check=False)
        if run(["ip", "link", "show", "dev", self.root_if], check=False).strip():
            run(["ip", "link", "del", self.root_if], check=False)

    def stop(self):
        """Delete the namespace and its veth (stop its processes first)."""
        try:
            self._remove()
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class NamespacedFlowgate(FlowgateController):
    """The flowgate binary run inside a ControllerNamespace: switches and
    REST clients reach it at the namespace's address; its listeners bind
    the namespace's wildcard address (so 127.0.0.1 there works too)."""

    def __init__(self, namespace, **kwargs):
        self.namespace = namespace
        super().__init__(of_host=namespace.ns_ip, listen_host="0.0.0.0", rest_host=namespace.ns_ip,
                         rest_listen_host="0.0.0.0", **kwargs)

    def argv(self):
        # `ip netns exec` execs the binary: the PID is flowgate's own.
        return self.namespace.exec_argv(*super().argv())

    def wait_ready(self, timeout):
        wait_until(
            lambda: self._check_alive() and tcp_listening(self.of_host, self.of_port, netns=self.namespace.name),
            timeout,
            what="%s listening on %s:%d in %s" % (self.name, self.of_host, self.of_port, self.namespace.name),
        )
        wait_until(
            lambda: self._check_alive() and self.rest.health().get("status") == "ok",
            timeout,
            what="flowgate REST health at %s:%d" % (self.rest_host, self.rest_port),
        )

    def rest_inside(self, method, path, body=None):
        """A REST call made inside the namespace (works while it is cut off)."""
        argv = ["curl", "-s", "-m", "10", "-X", method, "-w", "\n%{http_code}",
                "http://127.0.0.1:%d%s" % (self.rest_port, path)]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        out = self.namespace.run(*argv, timeout=20, check=False)
        text, _, status = out.rpartition("\n")
        if not status.strip().isdigit():
            raise LabError("curl in %s: no answer from %s" % (self.namespace.name, path))
        return RestResponse(int(status), text)
