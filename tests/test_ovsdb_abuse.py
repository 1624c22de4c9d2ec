"""Abuse of the OVSDB listener by scripted peers on loopback (issue 19
item 4): huge messages, and more connections than a host needs. Each test
bounds itself in time and prints what it measured.

    FLOWGATE_BIN=target/release/flowgate /usr/bin/python3 -m pytest tests/test_ovsdb_abuse.py -v -s
"""

import select
import socket
import threading
import time

import pytest

from flowgate_lab.ofpeer import rss_kib

pytestmark = pytest.mark.timeout_secs(120)

CHUNK = 64 * 1024


def closed_within(sock, seconds):
    """Whether the controller closed `sock` within `seconds` (reading and
    dropping what it sends, its monitor request)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def closed_of(socks, seconds):
    """Which of `socks` the controller closed within `seconds`, watched
    at once."""
    closed = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        live = [s for s in socks if s not in closed]
        readable, _, _ = select.select(live, [], [], 0.05)
        for s in readable:
            try:
                if s.recv(65536) == b"":
                    closed.add(s)
            except OSError:
                closed.add(s)
    return closed


def test_huge_messages_are_refused_and_their_memory_freed(make_controller):
    ctl = make_controller()
    time.sleep(0.5)
    before = rss_kib(ctl.pid)
    peak = [before]
    done = threading.Event()
    results = []

    def flood():
        # One 8 MiB message (a JSON object that never closes in time),
        # 64 KiB per send, as fast as the socket takes it.
        sock = socket.create_connection(("127.0.0.1", ctl.ovsdb_port), timeout=10)
        started = time.monotonic()
        sent = 0
        try:
            sock.sendall(b'{"id":"x","result":["')
            while sent < 8 * 2**20:
                sock.sendall(b"a" * CHUNK)
                sent += CHUNK
            sock.sendall(b'"]}')
        except OSError:
            pass
        cut = closed_within(sock, 10)
        results.append((sent, time.monotonic() - started, cut))
        sock.close()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(ctl.pid))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    floods = [threading.Thread(target=flood) for _ in range(3)]
    for t in floods:
        t.start()
    for t in floods:
        t.join(60)
    done.set()
    time.sleep(1)
    after = rss_kib(ctl.pid)
    print(
        "\n3 x 8 MiB OVSDB messages at once: %s (bytes sent, seconds to close, closed); "
        "RSS KiB before %d, peak %d, 1 s after %d" % (results, before, peak[0], after)
    )
    assert len(results) == 3 and all(cut for _, _, cut in results), results
    # Each cut off at the 4 MiB message limit, not after 8.
    assert all(sent < 8 * 2**20 or took < 5 for sent, took, _ in results), results
    assert ctl.wait_for_log("OVSDB message over 4194304 bytes")
    assert peak[0] - before < 64 * 1024, "RSS grew by %d KiB" % (peak[0] - before)
    assert after - before < 32 * 1024, "RSS stayed %d KiB above" % (after - before)
    assert ctl.rest.health()["status"] == "ok"


def test_connections_over_the_limits_are_closed_and_silent_ones_time_out(make_controller, tmp_path):
    config = tmp_path / "flowgate.toml"
    config.write_text("[ovsdb]\nmax_connections_per_address = 4\nhandshake_timeout = 2\n")
    ctl = make_controller(config=str(config))
    time.sleep(0.5)
    socks = [socket.create_connection(("127.0.0.1", ctl.ovsdb_port), timeout=5) for _ in range(50)]
    gone = closed_of(socks, 0.5)
    open_now = [s for s in socks if s not in gone]
    print("\n50 connections from one address: %d kept" % len(open_now))
    assert len(open_now) == 4
    assert ctl.wait_for_log("OVSDB connection limit reached")
    # None of them shows a database: closed after the handshake time.
    started = time.monotonic()
    assert all(closed_within(s, 5) for s in open_now)
    print("silent connections closed %.1f s later" % (time.monotonic() - started))
    for s in socks:
        s.close()
    # The places are free again.
    time.sleep(0.5)
    again = socket.create_connection(("127.0.0.1", ctl.ovsdb_port), timeout=5)
    assert not closed_within(again, 0.5)
    again.close()
    assert ctl.rest.health()["status"] == "ok"
