"""The REST listener under 2,000 hostile connections (issue 19 item 2),
against the real binary on loopback: idle connections, slowloris headers
(a byte every 2 s) and bodies trickled a byte every 2 s, from 40 addresses
of 127.0.0.0/8 (50 each, under the per-client share of 64). Meanwhile a
well-behaved client asks GET /health on fresh connections: its p99 stays
under 50 ms, and idle connections are closed at the header timeout (10 s
after each was opened).

    FLOWGATE_BIN=target/release/flowgate /usr/bin/python3 -m pytest tests/test_rest_abuse.py -v -s
"""

import resource
import socket
import threading
import time
import urllib.request

import pytest

from flowgate_lab.ofpeer import rss_kib

pytestmark = pytest.mark.timeout_secs(120)

HOSTILE = 2000
ADDRESSES = 40
HEADER_TIMEOUT = 10  # the controller's default [rest] header_timeout


def _open(rest_port, n):
    source = "127.9.0.%d" % (n % ADDRESSES + 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", rest_port))
    sock.setblocking(False)
    return sock


def _trickle(socks, stop):
    """One byte to every slow connection every 2 s."""
    while not stop.wait(2):
        for sock in socks:
            try:
                sock.send(b"a")
            except OSError:
                pass


def _closed(sock):
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_health_stays_fast_under_two_thousand_hostile_connections(make_controller):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < HOSTILE + 500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, HOSTILE + 1000), hard))
    ctl = make_controller()
    health = "http://127.0.0.1:%d/api/v1/health" % ctl.rest_port
    before = rss_kib(ctl.pid)
    idle, slow = [], []
    stop = threading.Event()
    try:
        opened_at = time.monotonic()
        for n in range(HOSTILE):
            sock = _open(ctl.rest_port, n)
            kind = n % 4
            if kind == 0 or kind == 1:
                idle.append(sock)
            elif kind == 2:
                sock.send(b"GET /api/v1/health HTTP/1.1\r\nHost: flowgate\r\n")
                slow.append(sock)
            else:
                sock.send(b"POST /api/v1/firewall/rules HTTP/1.1\r\nHost: flowgate\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
                slow.append(sock)
        opened = time.monotonic() - opened_at
        threading.Thread(target=_trickle, args=(slow, stop), daemon=True).start()
        during = rss_kib(ctl.pid)

        latencies = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            started = time.monotonic()
            with urllib.request.urlopen(health, timeout=10) as resp:
                assert resp.status == 200
                resp.read()
            latencies.append(time.monotonic() - started)
            time.sleep(0.02)
        latencies.sort()
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[int(len(latencies) * 0.99)]

        # Idle connections are closed at the header timeout (counted from
        # when each was opened; they took `opened` seconds to open).
        closed = set()
        deadline = opened_at + opened + HEADER_TIMEOUT + 5
        while len(closed) < len(idle) and time.monotonic() < deadline:
            closed.update(i for i, sock in enumerate(idle) if i not in closed and _closed(sock))
            time.sleep(0.2)
        idle_closed = len(closed)
        all_closed_after = time.monotonic() - opened_at
        print(
            "\n%d hostile connections (%d idle, %d slow) from %d addresses opened in %.1f s; "
            "GET /health n=%d p50=%.1f ms p99=%.1f ms max=%.1f ms; idle closed %d/%d, the last %.1f s after the first opened; "
            "RSS KiB %d -> %d"
            % (HOSTILE, len(idle), len(slow), ADDRESSES, opened, len(latencies), 1000 * p50, 1000 * p99,
               1000 * latencies[-1], idle_closed, len(idle), all_closed_after, before, during)
        )
        assert p99 < 0.05, "GET /health p99 %.1f ms under hostile connections" % (1000 * p99)
        assert idle_closed == len(idle), "idle connections outlived the header timeout"
    finally:
        stop.set()
        for sock in idle + slow:
            sock.close()
    # The controller goes on.
    with urllib.request.urlopen(health, timeout=5) as resp:
        assert resp.status == 200
