"""State in etcd (`--store etcd`): a rule written through REST survives a
kill -9 of the controller, its keys are in etcd under /flowgate/, writes
answer 503 naming the cause while etcd is down (reads of the controller's
state still answer), and work again once etcd is back, with nothing
acknowledged lost.

Loopback only: an etcd of this test's own (etcd from PATH, free ports, a
temp data dir, stopped by PID) and the controller; no Mininet network.
"""

import os
import shutil
import signal
import subprocess

import pytest

from flowgate_lab import wait_until
from flowgate_lab.util import free_port

RULES = "/api/v1/firewall/rules"


def rule(rule_id):
    return {
        "id": rule_id,
        "priority": 10,
        "action": "deny",
        "match": {"ip_proto": "udp", "dst_port": 9000 + rule_id},
    }


class Etcd:
    """One etcd server on loopback; start() again reuses ports and data."""

    def __init__(self, run_dir):
        for binary in ("etcd", "etcdctl"):
            if shutil.which(binary) is None:
                pytest.fail(
                    "`%s` not on PATH: this test needs etcd 3.4+ (Debian: apt-get install "
                    "etcd-server etcd-client; tools/test-all.sh installs them)" % binary,
                    pytrace=False,
                )
        self.dir = str(run_dir)
        self.endpoint = "127.0.0.1:%d" % free_port()
        self.peer = "http://127.0.0.1:%d" % free_port()
        self.proc = None

    def start(self):
        client = "http://" + self.endpoint
        with open(os.path.join(self.dir, "etcd.log"), "a", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                [
                    "etcd", "--name", "e2e", "--data-dir", os.path.join(self.dir, "data"),
                    "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--listen-peer-urls", self.peer, "--initial-advertise-peer-urls", self.peer,
                    "--initial-cluster", "e2e=" + self.peer,
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(lambda: self.ctl("endpoint", "health").returncode == 0, 30, what="etcd healthy")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def ctl(self, *args):
        return subprocess.run(
            ["etcdctl", "--endpoints", self.endpoint, "--command-timeout=3s", *args],
            capture_output=True, text=True, timeout=15, check=False,
            env=dict(os.environ, ETCDCTL_API="3"),
        )


@pytest.fixture
def etcd(tmp_path):
    server = Etcd(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def listed_ids(ctl):
    resp = ctl.rest.request("GET", RULES)
    assert resp.status == 200, resp
    return sorted(r["id"] for r in resp.json)


def test_state_in_etcd_survives_restart_and_outage(etcd, make_controller):
    ctl = make_controller(
        extra_args=["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-timeout-ms", "1500"]
    )
    resp = ctl.rest.request("POST", RULES, rule(7))
    assert resp.status in (200, 201), resp

    ctl.kill9()
    ctl.start()
    assert listed_ids(ctl) == [7]

    keys = etcd.ctl("get", "--prefix", "/flowgate/", "--keys-only")
    assert keys.returncode == 0, keys.stderr
    assert "/flowgate/firewall/rules/" in keys.stdout, keys.stdout

    # etcd gone: a write is refused with 503 naming the cause; the
    # controller's state still answers reads.
    etcd.kill()
    resp = ctl.rest.request("POST", RULES, rule(8))
    assert resp.status == 503, resp
    assert resp.json["error"] == "unavailable", resp.json
    assert etcd.endpoint in resp.json["reason"], resp.json
    assert listed_ids(ctl) == [7]
    assert ctl.rest.health()["status"] == "ok"

    # etcd back: writes work again (the client reconnects by itself).
    etcd.start()
    wait_until(
        lambda: ctl.rest.request("POST", RULES, rule(8)).status in (200, 201),
        30,
        what="a write to succeed once etcd is back",
    )
    # Nothing acknowledged was lost, and the refused write did not linger.
    ctl.kill9()
    ctl.start()
    assert listed_ids(ctl) == [7, 8]


def test_start_fails_clearly_without_etcd(make_controller):
    nowhere = "127.0.0.1:%d" % free_port()
    with pytest.raises(Exception) as failed:
        make_controller(extra_args=["--store", "etcd", "--etcd-endpoints", nowhere, "--etcd-timeout-ms", "500"])
    text = str(failed.value)
    assert "exited" in text and "opening the etcd store" in text and nowhere in text, text
