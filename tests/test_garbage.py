"""Connections that send garbage are closed; switches are unaffected."""

import random
import socket
import struct
import time

import pytest

from flowgate_lab.ovs import bridges_connected

OFP_VERSION = 4
OFPT_HELLO = 0


def _read_until_eof(sock, timeout=10):
    """Read until the peer closes; True on EOF/reset, False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        if not data:
            return True
    return False


def _connect(ctl):
    sock = socket.create_connection((ctl.of_host, ctl.of_port), timeout=5)
    return sock, "%s:%d" % sock.getsockname()


def _hello(xid=1):
    # OFPT_HELLO with a version bitmap element advertising 1.3 only.
    bitmap = struct.pack("!HHI", 1, 8, 1 << OFP_VERSION)
    return struct.pack("!BBHI", OFP_VERSION, OFPT_HELLO, 8 + len(bitmap), xid) + bitmap


def _junk_message(seed):
    """A complete 'message' of seeded random bytes whose header names no
    OpenFlow version and whose length field matches what is sent."""
    rng = random.Random(seed)
    body = bytes(rng.getrandbits(8) for _ in range(rng.randint(8, 200)))
    return struct.pack("!BBHI", 0xA5, rng.getrandbits(8), 8 + len(body), rng.getrandbits(32)) + body


@pytest.fixture
def baseline(linear3):
    ctl, lab = linear3
    since = {sw["dpid_int"]: sw["connected_since"] for sw in ctl.rest.switches()}
    assert len(since) == 3
    yield since
    # Whatever the case sent, the switches never noticed.
    assert bridges_connected(lab.switch_names())
    assert {sw["dpid_int"]: sw["connected_since"] for sw in ctl.rest.switches()} == since
    assert ctl.rest.health()["status"] == "ok"


CASES = {
    # 8-byte header whose length (4) is shorter than the header itself.
    "short_length": struct.pack("!BBHI", OFP_VERSION, OFPT_HELLO, 4, 7),
    # Random bytes framed as a message of an unknown version.
    "random_junk": _junk_message(1234),
    # Not OpenFlow at all.
    "http_request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\0" * 64,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_garbage_before_hello_is_closed(linear3, baseline, case):
    ctl, _ = linear3
    sock, _ = _connect(ctl)
    with sock:
        sock.sendall(CASES[case])
        assert _read_until_eof(sock), "controller kept a connection open after %s" % case


def test_garbage_after_hello_is_closed(linear3, baseline):
    ctl, _ = linear3
    sock, _ = _connect(ctl)
    with sock:
        sock.sendall(_hello())
        # Bad length in the middle of a session: 3 < header size.
        sock.sendall(struct.pack("!BBHI", OFP_VERSION, 2, 3, 99) + b"\xff" * 32)
        assert _read_until_eof(sock), "controller kept a session open after a bad length"


def test_closed_garbage_connection_is_logged(linear3, baseline):
    ctl, _ = linear3
    sock, local = _connect(ctl)
    with sock:
        sock.sendall(CASES["short_length"])
        assert _read_until_eof(sock)
    # The log must let an operator find the offending peer.
    ctl.wait_for_log(local, timeout=10)


def test_switches_still_forward_after_garbage(linear3, baseline):
    ctl, lab = linear3
    for case in CASES.values():
        sock, _ = _connect(ctl)
        with sock:
            sock.sendall(case)
            _read_until_eof(sock)
    assert lab.pingall().loss_percent == 0
