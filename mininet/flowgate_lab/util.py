"""Small process and polling helpers shared by the lab harness.

Everything here has a timeout: the lab runs on small, shared machines and a
hung `ovs-vsctl` or `ping` must turn into a test failure, never a stuck CI job.
"""

import fcntl
import os
import shlex
import socket
import subprocess
import time


class LabError(RuntimeError):
    """A lab step failed (command error, timeout, missing prerequisite)."""


def run(cmd, timeout=30, check=True, input_text=None):
    """Run `cmd` (a list, or a string split with shlex) and return stdout.

    Raises LabError with stderr on a non-zero exit (when `check`) or when the
    command outlives `timeout` seconds.
    """
    argv = shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]
    try:
        proc = subprocess.run(
            argv,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError("timed out after %ss: %s" % (timeout, " ".join(argv))) from exc
    except FileNotFoundError as exc:
        raise LabError("command not found: %s" % argv[0]) from exc
    if check and proc.returncode != 0:
        raise LabError(
            "command failed (rc=%d): %s\nstdout: %s\nstderr: %s"
            % (proc.returncode, " ".join(argv), proc.stdout.strip(), proc.stderr.strip())
        )
    return proc.stdout


def wait_until(predicate, timeout, interval=0.25, what="condition"):
    """Poll `predicate()` until it returns a truthy value; return that value.

    Exceptions raised by the predicate count as "not yet" (the thing being
    polled is often still starting); the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polled code may still be starting
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = " (last error: %r)" % (last_exc,) if last_exc else ""
            raise LabError("timed out after %ss waiting for %s%s" % (timeout, what, detail))
        time.sleep(interval)


def free_port(host="127.0.0.1"):
    """A TCP port that is free right now on `host` (the OS picks it).

    There is a small race between closing the probe socket and the
    controller binding it; ports are picked from the ephemeral range, so a
    collision with another listener is unlikely and shows up as a clear
    start-up failure.
    """
    # The OS may hand the same port to two probes in a row once the first
    # is closed: a controller's OpenFlow and OVSDB ports once came out
    # equal. A port given out by this process is not given again.
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


_GIVEN_PORTS = set()


def tcp_listening(host, port, netns=None):
    """True when a socket listens on host:port (or on the wildcard address)
    in this namespace (or network namespace `netns`). Reads the socket table
    instead of connecting, so the controller does not log a probe
    connection as a failed switch."""
    where = ["ip", "netns", "exec", netns] if netns else []
    out = run(where + ["ss", "-Hltn", "sport = :%d" % port], timeout=10, check=False)
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            local = fields[3].rsplit(":", 1)[0].strip("[]")
            if local in (host, "0.0.0.0", "*", "::"):
                return True
    return False


def pid_alive(pid):
    """True if a process with this PID exists (zombies count as gone)."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except (OSError, IndexError):
        return False


def lock_wait():
    """Seconds to wait for a lab lock ($FLOWGATE_LAB_LOCK_WAIT, default 900)."""
    return float(os.environ.get("FLOWGATE_LAB_LOCK_WAIT", "900"))


def acquire_lock(path, timeout):
    """Take an exclusive flock on `path`, waiting up to `timeout` seconds
    while another lab run (another developer or helper on this machine)
    holds it. Returns the open file: closing it releases the lock, and the
    kernel releases it when the holder dies."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle = open(path, "a+", encoding="ascii")  # noqa: SIM115 - held by the caller
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                raise LabError(
                    "another lab run holds %s for more than %ss "
                    "(set FLOWGATE_LAB_LOCK_WAIT to wait longer)" % (path, timeout)
                ) from None
            time.sleep(1)
