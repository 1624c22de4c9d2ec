"""OpenFlow over TLS end to end with Open vSwitch (issue 19 item 8): a
bridge whose controller target is `ssl:127.0.0.1:PORT` (`ovs-vsctl
set-ssl` with a certificate of the lab's CA) connects; with dpid binding,
a bridge presenting the same certificate for another dpid does not, and
plain OpenFlow on the TLS port gets nowhere. Certificates are made with
openssl for the run. Takes the lab lock (it changes Open vSwitch's SSL
settings and adds bridges), and removes what it added.

    FLOWGATE_BIN=target/release/flowgate /usr/bin/python3 -m pytest tests/test_openflow_tls.py -v -s
"""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from flowgate_lab.net import LOCK_PATH
from flowgate_lab.util import acquire_lock, free_port, lock_wait

# The lab lock may be held by another run for a while (FLOWGATE_LAB_LOCK_WAIT).
pytestmark = pytest.mark.timeout_secs(1200)

GOOD, OTHER = 0xABC, 0xABD
BRIDGES = {"fgtls0": GOOD, "fgtls1": OTHER}


def sh(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=check).stdout.strip()


def make_pki(d):
    """A CA, the controller's certificate and the switch's (CN naming
    dpid GOOD), P-256 keys."""

    def req(name, subject, ext, ca=True):
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-subj", subject, "-keyout", str(d / (name + ".key")), "-out", str(d / (name + ".csr")))
        (d / (name + ".ext")).write_text(ext)
        sh("openssl", "x509", "-req", "-in", str(d / (name + ".csr")), "-CA", str(d / "ca.pem"),
           "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", str(d / (name + ".ext")),
           "-out", str(d / (name + ".pem")))

    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-days", "2", "-subj", "/CN=flowgate lab CA", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    # Flowgate is a server (OpenFlow, OVSDB listeners) and a client (ssl:
    # targets); the host's certificate names no address, as ovs-pki's.
    req("controller", "/CN=flowgate", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    req("switch", "/CN=s1 %016x" % GOOD, "extendedKeyUsage=clientAuth\n")
    req("host", "/CN=host", "extendedKeyUsage=serverAuth,clientAuth\n")


def connected(bridge):
    uuid = sh("ovs-vsctl", "get", "bridge", bridge, "controller").strip("[]")
    return bool(uuid) and sh("ovs-vsctl", "get", "controller", uuid, "is_connected") == "true"


def dpids(ctl):
    return {int(s["dpid"].replace(":", ""), 16) for s in ctl.rest.request("GET", "/api/v1/switches").json}


@pytest.fixture
def lab_lock():
    lock = acquire_lock(LOCK_PATH, lock_wait())
    try:
        yield
    finally:
        lock.close()


def test_switches_connect_over_tls_with_their_certificate(make_controller, tmp_path, lab_lock):
    make_pki(tmp_path)
    config = tmp_path / "flowgate.toml"
    config.write_text(
        '[openflow]\ntls_cert = "%s"\ntls_key = "%s"\ntls_ca = "%s"\ntls_bind_dpid = true\n'
        % (tmp_path / "controller.pem", tmp_path / "controller.key", tmp_path / "ca.pem")
    )
    ctl = make_controller(config=str(config))
    previous_ssl = sh("ovs-vsctl", "get-ssl")
    assert not previous_ssl, "Open vSwitch has SSL settings already (%s): not ours to change" % previous_ssl
    try:
        sh("ovs-vsctl", "set-ssl", str(tmp_path / "switch.key"), str(tmp_path / "switch.pem"),
           str(tmp_path / "ca.pem"))
        for bridge, dpid in BRIDGES.items():
            sh("ovs-vsctl", "--may-exist", "add-br", bridge, "--", "set", "bridge", bridge,
               "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure",
               "other-config:datapath-id=%016x" % dpid)
            sh("ovs-vsctl", "set-controller", bridge, "ssl:127.0.0.1:%d" % ctl.of_port)
        started = time.monotonic()
        while time.monotonic() - started < 30 and not (connected("fgtls0") and GOOD in dpids(ctl)):
            time.sleep(0.2)
        took = time.monotonic() - started
        print("\nbridge fgtls0 (dpid %x) connected over TLS in %.1f s" % (GOOD, took))
        assert connected("fgtls0") and GOOD in dpids(ctl)
        # The other bridge presents the same certificate for dpid OTHER.
        time.sleep(3)
        assert OTHER not in dpids(ctl)
        assert ctl.wait_for_log("claims a dpid its certificate does not name", "%016x" % OTHER)
        # Plain OpenFlow on the TLS port: a HELLO gets no HELLO back.
        with socket.create_connection(("127.0.0.1", ctl.of_port), timeout=3) as plain:
            plain.sendall(bytes([4, 0, 0, 8, 0, 0, 0, 1]))
            try:
                answer = plain.recv(8)
            except socket.timeout:
                answer = b""
            assert answer[:2] != bytes([4, 0]), answer
        assert GOOD in dpids(ctl) and ctl.rest.health()["status"] == "ok"
    finally:
        for bridge in BRIDGES:
            sh("ovs-vsctl", "--if-exists", "del-br", bridge, check=False)
        sh("ovs-vsctl", "del-ssl", check=False)


def test_a_host_dials_in_over_tls(make_controller, tmp_path):
    """A private ovsdb-server (its own database and socket, so the
    machine's Open vSwitch is untouched) with `set-manager ssl:...` and the
    host's certificate shows up as a chassis; one without TLS does not; and
Flowgate reaches a host listening with `pssl:` through an `ssl:` target."""
    make_pki(tmp_path)
    config = tmp_path / "flowgate.toml"
    config.write_text(
        '[ovsdb]\ntls_cert = "%s"\ntls_key = "%s"\ntls_ca = "%s"\n'
        % (tmp_path / "controller.pem", tmp_path / "controller.key", tmp_path / "ca.pem")
    )
    ctl = make_controller(config=str(config))
    servers = []
    try:
        pssl = free_port()
        for name, tls in (("tls", True), ("plain", False), ("pssl", True)):
            d = tmp_path / name
            d.mkdir()
            sh("ovsdb-tool", "create", str(d / "conf.db"), "/usr/share/openvswitch/vswitch.ovsschema")
            argv = ["ovsdb-server", str(d / "conf.db"), "--remote=punix:%s" % (d / "db.sock"),
                    "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                    "--pidfile=%s" % (d / "pid"), "--log-file=%s" % (d / "log"), "--detach", "--no-chdir"]
            cert = "host" if name == "pssl" else "switch"
            if tls:
                argv += ["--private-key=%s" % (tmp_path / (cert + ".key")),
                         "--certificate=%s" % (tmp_path / (cert + ".pem")),
                         "--ca-cert=%s" % (tmp_path / "ca.pem")]
            if name == "pssl":
                argv += ["--remote=pssl:%d:127.0.0.1" % pssl]
            sh(*argv)
            servers.append(d / "pid")
            db = "--db=unix:%s" % (d / "db.sock")
            sh("ovs-vsctl", db, "--no-wait", "init")
            sh("ovs-vsctl", db, "--no-wait", "set", "Open_vSwitch", ".",
               "external_ids:system-id=fg-%s-host" % name)
            if name != "pssl":
                sh("ovs-vsctl", db, "--no-wait", "set-manager",
                   "%s:127.0.0.1:%d" % ("ssl" if tls else "tcp", ctl.ovsdb_port))
        started = time.monotonic()

        def chassis():
            return json_ids(ctl.rest.request("GET", "/api/v1/chassis").json)

        while time.monotonic() - started < 30 and "fg-tls-host" not in chassis():
            time.sleep(0.2)
        print("\nhost fg-tls-host dialled in over TLS in %.1f s; chassis %s"
              % (time.monotonic() - started, sorted(chassis())))
        assert "fg-tls-host" in chassis()
        time.sleep(2)
        assert "fg-plain-host" not in chassis()
        assert ctl.wait_for_log("OVSDB TLS handshake failed")
        # Flowgate dials a host listening with pssl: (ssl: target).
        resp = ctl.rest.request("POST", "/api/v1/chassis/connections", {"target": "ssl:127.0.0.1:%d" % pssl})
        assert resp.status == 201, resp.text
        started = time.monotonic()
        while time.monotonic() - started < 30 and "fg-pssl-host" not in chassis():
            time.sleep(0.2)
        print("Flowgate reached host fg-pssl-host at an ssl: target in %.1f s" % (time.monotonic() - started))
        assert "fg-pssl-host" in chassis()
    finally:
        for pid in servers:
            try:
                os.kill(int(pid.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass


def json_ids(answer):
    """Chassis ids in GET /chassis's answer, whatever its exact shape."""
    text = json.dumps(answer)
    return {word for word in ("fg-tls-host", "fg-plain-host", "fg-pssl-host") if word in text}
