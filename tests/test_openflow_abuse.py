"""Abuse of the OpenFlow listener by a scripted peer on loopback (issue 19
items 3 and 5): a multipart reply that never ends, and a port storm. Each
test bounds itself in time and prints what it measured.

    FLOWGATE_BIN=target/release/flowgate /usr/bin/python3 -m pytest tests/test_openflow_abuse.py -v -s
"""

import threading
import time
import urllib.request

import pytest

from flowgate_lab.ofpeer import (
    MP_PORT_DESC,
    PORT_ADD,
    OfPeer,
    multipart_reply,
    port,
    port_status,
    rss_kib,
)

pytestmark = pytest.mark.timeout_secs(120)

DPID = 0xAB05E


def health_ok(ctl):
    return ctl.rest.health()["status"] == "ok"


def listed(ctl, dpid, address=None, timeout=10):
    """The switch as GET /switches/{dpid} shows it once it is listed (and
    connected from `address`): the peer's handshake ends at the sync
    barrier, a moment before the controller has taken its answer in."""
    deadline = time.monotonic() + timeout
    while True:
        resp = ctl.rest.request("GET", "/api/v1/switches/%d" % dpid)
        if resp.status == 200 and address in (None, resp.json["address"]):
            return resp.json
        assert time.monotonic() < deadline, "switch %x not listed%s: %r" % (
            dpid, "" if address is None else " from " + address, resp)
        time.sleep(0.1)


def test_an_endless_multipart_reply_is_cut_off_and_its_memory_freed(make_controller):
    ctl = make_controller()
    time.sleep(0.5)
    before = rss_kib(ctl.pid)
    peer = OfPeer("127.0.0.1", ctl.of_port, DPID)
    part = multipart_reply(MP_PORT_DESC, b"".join(port(n) for n in range(1, 1000)), 0, more=True)
    peak = [before]
    parts_sent = [0]

    def flood(xid):
        # PORT_DESC parts marked "more", as fast as the socket takes them,
        # for at most 10 s.
        data = part[:4] + xid.to_bytes(4, "big") + part[8:]
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                peer.send(data)
                parts_sent[0] += 1
        except OSError:
            pass

    def sample():
        while not peer.closed.is_set():
            try:
                peak[0] = max(peak[0], rss_kib(ctl.pid))
            except (OSError, ValueError):
                return  # the controller is gone: the test is over
            time.sleep(0.02)

    peer.on_port_desc = flood
    started = time.monotonic()
    peer.connect()
    threading.Thread(target=sample, daemon=True).start()
    with pytest.raises(ConnectionError):
        peer.handshake(timeout=20)
    cut_after = time.monotonic() - started
    peer.close()
    time.sleep(2)
    after = rss_kib(ctl.pid)
    print(
        "\nendless PORT_DESC: %d parts (%.0f MiB) sent, cut after %.1f s; RSS KiB before %d, peak %d, 2 s after %d"
        % (parts_sent[0], parts_sent[0] * len(part) / 2**20, cut_after, before, peak[0], after)
    )
    assert ctl.wait_for_log("limit exceeded", "multipart reply of more than")
    assert parts_sent[0] * len(part) < 10 * 2**30
    # The reply cap is 32 MiB on the wire; decoded ports take about twice that.
    assert peak[0] - before < 200 * 1024, "RSS grew by %d KiB" % (peak[0] - before)
    assert after - before < 100 * 1024, "RSS stayed %d KiB above" % (after - before)
    # The controller goes on: REST and a well-behaved switch.
    assert health_ok(ctl)
    good = OfPeer("127.0.0.1", ctl.of_port, DPID, ports=[1, 2]).connect().handshake()
    try:
        good.serve_in_background()
        assert listed(ctl, DPID)["dpid_int"] == DPID
    finally:
        good.close()


def _latencies(url, stop, out):
    while not stop.is_set():
        started = time.monotonic()
        with urllib.request.urlopen(url, timeout=30) as resp:
            resp.read()
        out.append(time.monotonic() - started)
        time.sleep(0.01)


def test_a_port_storm_neither_stalls_the_core_nor_grows_past_the_port_limit(make_controller):
    ctl = make_controller()
    peer = OfPeer("127.0.0.1", ctl.of_port, DPID, ports=[1, 2]).connect().handshake()
    peer.serve_in_background()
    try:
        base = "http://127.0.0.1:%d/api/v1" % ctl.rest_port
        wait = time.monotonic() + 10
        while DPID not in {s["dpid_int"] for s in ctl.rest.get("/api/v1/topology")["switches"]}:
            assert time.monotonic() < wait, "switch never in the topology"
            time.sleep(0.1)
        before = rss_kib(ctl.pid)
        stop = threading.Event()
        core, health = [], []
        pollers = [
            threading.Thread(target=_latencies, args=(base + "/topology", stop, core), daemon=True),
            threading.Thread(target=_latencies, args=(base + "/health", stop, health), daemon=True),
        ]
        for t in pollers:
            t.start()
        time.sleep(0.5)
        storm_at = time.monotonic()
        peer.send(b"".join(port_status(PORT_ADD, 100 + i) for i in range(10_000)))
        # Let it settle: the ports become edge ports after the edge delay
        # and discovery probes them at its bounded rate.
        time.sleep(8)
        stop.set()
        for t in pollers:
            t.join(35)
        ports = ctl.rest.switch(DPID)["ports"]
        topo_ports = next(s for s in ctl.rest.get("/api/v1/topology")["switches"] if s["dpid_int"] == DPID)["ports"]
        after = rss_kib(ctl.pid)

        def summary(name, values):
            values = sorted(values)
            return "%s n=%d p50=%.1f ms p99=%.1f ms max=%.1f ms" % (
                name, len(values), 1000 * values[len(values) // 2],
                1000 * values[int(len(values) * 0.99)], 1000 * values[-1],
            )  # fmt: skip

        print("\n10,000 PORT_STATUS adds at %.1f s: %s; %s; ports tracked %d (REST) %d (topology); RSS KiB %d -> %d"
              % (storm_at, summary("GET /topology (core)", core), summary("GET /health", health),
                 len(ports), len(topo_ports), before, after))  # fmt: skip
        assert len(ports) == 4096, "the port limit"
        assert len(topo_ports) == 4096
        assert ctl.wait_for_log("more ports than the limit")
        core.sort()
        health.sort()
        assert core[int(len(core) * 0.99)] < 0.1, "core-backed REST p99 over 100 ms"
        assert health[int(len(health) * 0.99)] < 0.1, "/health p99 over 100 ms"
    finally:
        peer.close()
    # SIGTERM stops it promptly.
    started = time.monotonic()
    ctl.stop(timeout=10)
    took = time.monotonic() - started
    print("SIGTERM to exit: %.2f s (rc %s)" % (took, ctl.proc.returncode))
    assert ctl.proc.returncode == 0 and took < 5


def test_a_connection_that_claims_a_connected_dpid_is_undone_when_it_leaves(make_controller):
    ctl = make_controller()
    real = OfPeer("127.0.0.1", ctl.of_port, DPID, ports=[1, 2]).connect().handshake()
    real.serve_in_background()
    try:
        real_addr = "127.0.0.1:%d" % real.sock.getsockname()[1]
        listed(ctl, DPID, real_addr)
        impostor = OfPeer("127.0.0.1", ctl.of_port, DPID, ports=[7]).connect().handshake()
        impostor.serve_in_background()
        deadline = time.monotonic() + 5
        while ctl.rest.switch(DPID)["address"] == real_addr:
            assert time.monotonic() < deadline, "the newcomer never took over"
            time.sleep(0.1)
        impostor.close()
        # The real switch's connection was kept aside and is restored.
        listed(ctl, DPID, real_addr)
        ports = [p["port_no"] for p in ctl.rest.switch(DPID)["ports"]]
        assert ports == [1, 2], "re-synced from the real switch"
        assert not real.closed.is_set()
        assert ctl.wait_for_log("restoring this one")
    finally:
        real.close()
