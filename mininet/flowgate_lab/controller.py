"""Run a controller process for the lab: the Flowgate binary (or, while
developing the harness, Open vSwitch's `ovs-testcontroller`).

The harness owns exactly the process it started: it tracks the PID, kills by
PID only, and keeps the log in a per-run directory so tests can grep it.
A controller can be killed with SIGKILL and started again on the same ports
and data directory, which is how restart-without-disruption is tested.
"""

import ctypes
import os
import signal
import subprocess
import shutil
import tempfile

from .rest import RestClient
from .util import LabError, free_port, tcp_listening, wait_until

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_flowgate_bin():
    """The flowgate binary to test: $FLOWGATE_BIN, else the release build."""
    return os.environ.get("FLOWGATE_BIN") or os.path.join(
        REPO_ROOT, "target", "release", "flowgate"
    )


def _die_with_parent():
    """In the child before exec: get SIGKILL when the harness process dies,
    so a harness killed hard never leaves a controller holding its ports."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


class ControllerProcess:
    """A controller child process with a log file, on a free OpenFlow port.

    Subclasses provide `argv()` and `wait_ready()`.
    """

    name = "controller"

    def __init__(self, run_dir=None, of_host="127.0.0.1", of_port=None, listen_host=None):
        self._own_run_dir = run_dir is None
        self.run_dir = run_dir or tempfile.mkdtemp(prefix="flowgate-lab-")
        # The address switches dial; the controller binds listen_host (which
        # may be 0.0.0.0 when switches live in other namespaces).
        self.of_host = of_host
        self.listen_host = listen_host or of_host
        self.of_port = of_port or free_port()
        self.log_path = os.path.join(self.run_dir, "%s.log" % self.name)
        self.proc = None
        self.starts = 0

    @property
    def pid(self):
        """PID of the running process, or None."""
        return self.proc.pid if self.proc is not None else None

    def argv(self):
        """Command line of the controller."""
        raise NotImplementedError

    def wait_ready(self, timeout):
        """Block until the controller accepts switches (and REST, if any)."""
        wait_until(
            lambda: self._check_alive() and tcp_listening(self.of_host, self.of_port),
            timeout,
            what="%s listening on %s:%d" % (self.name, self.of_host, self.of_port),
        )

    def start(self, timeout=30):
        """Start the process (again, after kill/stop) and wait until ready."""
        if self.proc is not None and self.proc.poll() is None:
            raise LabError("%s already running (pid %d)" % (self.name, self.proc.pid))
        self.starts += 1
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write("\n=== flowgate-lab: start #%d: %s\n" % (self.starts, " ".join(self.argv())))
            log.flush()
            # A new session so a Ctrl-C in the terminal of a human running
            # the lab CLI does not reach the controller before teardown does.
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            self.wait_ready(timeout)
        except LabError as exc:
            self.stop()
            raise LabError("%s\n--- %s log tail ---\n%s" % (exc, self.name, self.log_tail())) from exc
        return self

    def _check_alive(self):
        if self.proc.poll() is not None:
            raise LabError("%s exited with status %s" % (self.name, self.proc.returncode))
        return True

    def running(self):
        """True while the started process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL the controller (a crash), reaping it; no cleanup runs."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after `timeout` seconds. Idempotent."""
        if not self.running():
            return
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def restart(self, hard=True, timeout=30):
        """Kill (SIGKILL when `hard`) and start again with the same state."""
        if hard:
            self.kill9()
        else:
            self.stop()
        return self.start(timeout=timeout)

    def log_text(self):
        """Everything the controller logged so far (all starts)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        """The last `lines` lines of the log, for failure messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, *needles, timeout=15):
        """Wait until one log line contains every needle; return that line."""

        def find():
            for line in self.log_text().splitlines():
                if all(n in line for n in needles):
                    return line
            return None

        try:
            return wait_until(find, timeout, what="log line containing %r" % (needles,))
        except LabError as exc:
            raise LabError("%s\n--- log tail ---\n%s" % (exc, self.log_tail())) from exc

    def cleanup(self):
        """Stop the process; copy its log to $FLOWGATE_LAB_ARTIFACTS if set;
        remove the run directory if we created it and the caller did not ask
        to keep it ($FLOWGATE_LAB_KEEP=1)."""
        self.stop()
        artifacts = os.environ.get("FLOWGATE_LAB_ARTIFACTS")
        if artifacts and os.path.exists(self.log_path):
            os.makedirs(artifacts, exist_ok=True)
            dest = os.path.join(artifacts, "%s-%s.log" % (self.name, os.path.basename(self.run_dir)))
            shutil.copyfile(self.log_path, dest)
        if self._own_run_dir and not os.environ.get("FLOWGATE_LAB_KEEP"):
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _help_text(binary):
    """`binary --help`, to adapt to the options a given build offers."""
    try:
        return subprocess.run(
            [binary, "--help"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


class FlowgateController(ControllerProcess):
    """The flowgate binary with a temp data dir, free OpenFlow and REST ports."""

    name = "flowgate"

    def __init__(
        self,
        binary=None,
        run_dir=None,
        of_host="127.0.0.1",
        of_port=None,
        listen_host=None,
        rest_port=None,
        rest_host="127.0.0.1",
        rest_listen_host=None,
        data_dir=None,
        config=None,
        echo_interval=None,
        log_level="info",
        extra_args=(),
    ):
        self.binary = binary or default_flowgate_bin()
        if not os.access(self.binary, os.X_OK):
            raise LabError(
                "flowgate binary not found or not executable: %s "
                "(build it with `cargo build --release --bin flowgate` or set FLOWGATE_BIN)"
                % self.binary
            )
        super().__init__(run_dir=run_dir, of_host=of_host, of_port=of_port, listen_host=listen_host)
        self.rest_port = rest_port or free_port()
        # Newer binaries also listen for OVSDB (default 0.0.0.0:6640); give
        # them a free port next to the OpenFlow listener so tests never
        # collide with a controller someone else runs.
        self.ovsdb_port = free_port() if "--ovsdb-listen" in _help_text(self.binary) else None
        self.data_dir = data_dir or os.path.join(self.run_dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.config = config
        self.echo_interval = echo_interval
        self.log_level = log_level
        self.extra_args = list(extra_args)
        # The address REST clients use; the controller binds rest_listen_host.
        self.rest_host = rest_host
        self.rest_listen_host = rest_listen_host or rest_host
        self.rest = RestClient("http://%s:%d" % (rest_host, self.rest_port))

    def argv(self):
        argv = [
            self.binary,
            "--openflow-listen",
            "%s:%d" % (self.listen_host, self.of_port),
            "--rest-listen",
            "%s:%d" % (self.rest_listen_host, self.rest_port),
            "--data-dir",
            self.data_dir,
            "--log",
            self.log_level,
        ]
        if self.ovsdb_port is not None:
            argv += ["--ovsdb-listen", "%s:%d" % (self.listen_host, self.ovsdb_port)]
        if self.config:
            argv += ["--config", self.config]
        if self.echo_interval is not None:
            argv += ["--echo-interval", str(self.echo_interval)]
        return argv + self.extra_args

    def wait_ready(self, timeout):
        super().wait_ready(timeout)
        wait_until(
            lambda: self._check_alive() and self.rest.health().get("status") == "ok",
            timeout,
            what="flowgate REST health on port %d" % self.rest_port,
        )


class OvsTestController(ControllerProcess):
    """Open vSwitch's reference learning switch (package
    openvswitch-testcontroller), speaking OpenFlow 1.3; used to develop and
    check the harness itself independently of Flowgate."""

    name = "ovs-testcontroller"

    def argv(self):
        return [
            "ovs-testcontroller",
            "-O",
            "OpenFlow13",
            "--log-file=%s" % os.path.join(self.run_dir, "ovs-testcontroller.vlog"),
            "ptcp:%d:%s" % (self.of_port, self.listen_host),
        ]
