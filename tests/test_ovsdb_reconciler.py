"""The OVSDB reconciler end to end: two emulated cloud hosts whose Open
vSwitch only points at Flowgate (`ovs-vsctl set-manager`). Flowgate keeps
their rows as the overlay declares them: a tunnel port an operator deletes
comes back; after a restart, a tagged row nobody declares any more (a
previous run's orphan) goes, rows of the previous version's marking are
adopted in place, and the operator's own rows stay."""

import ipaddress

import pytest

from flowgate_lab import wait_until
from flowgate_lab.cloud import Cloud

from conftest import new_controller, release_controller

GRACE = 3  # seconds (--overlay-host-grace)
OWNER = "overlay"


def tunnel_name(ip):
    return "fgt-%08x" % int(ipaddress.IPv4Address(ip))


def tunnel(host, peer):
    """The name of `host`'s tunnel port to `peer`."""
    return tunnel_name(peer.underlay_ip)


def row_uuid(host, table, name):
    return host.vsctl("--bare", "--columns=_uuid", "find", table, "name=%s" % name).strip() or None


def external_id(host, table, name, key):
    out = host.vsctl("get", table, name, "external_ids:%s" % key, check=False)
    return out.strip().strip('"') or None


def tunnels_ready(ctl, n_hosts):
    hosts = ctl.rest.get("/api/v1/chassis") or []
    return len(hosts) == n_hosts and all(
        h["connected"] and len([t for t in h["tunnels"] if (t["ofport"] or -1) > 0]) == n_hosts - 1 for h in hosts
    )


@pytest.fixture(scope="module")
def lab():
    cloud = Cloud(n_hosts=2, prefix="fgr", subnet="198.19.7", br_int=False)
    cloud.start()
    ctl = None
    try:
        ctl = new_controller(of_host=cloud.mgmt_ip, extra_args=["--overlay-host-grace", str(GRACE)])
        assert ctl.ovsdb_port, "this flowgate build has no OVSDB listener"
        for host in cloud.hosts:
            host.set_manager("tcp:%s:%d" % (cloud.mgmt_ip, ctl.ovsdb_port))
        wait_until(lambda: tunnels_ready(ctl, 2), 60, interval=0.5, what="br-int and tunnels on both hosts")
        yield cloud, ctl
    finally:
        if ctl is not None:
            release_controller(ctl)
        cloud.stop()


@pytest.mark.timeout_secs(120)
def test_rows_are_tagged_with_their_owner_and_key(lab):
    cloud, _ = lab
    h1, h2 = cloud.hosts
    name = tunnel(h1, h2)
    for table in ("port", "interface"):
        assert external_id(h1, table, name, "flowgate-owner") == OWNER
        assert external_id(h1, table, name, "flowgate-key") == name
    assert external_id(h1, "bridge", "br-int", "flowgate-owner") == OWNER, "created for the overlay"


@pytest.mark.timeout_secs(120)
def test_a_tunnel_port_deleted_by_hand_is_recreated(lab):
    cloud, ctl = lab
    h1, h2 = cloud.hosts
    name = tunnel(h1, h2)
    old = row_uuid(h1, "port", name)
    assert old
    h1.vsctl("del-port", "br-int", name)
    wait_until(lambda: row_uuid(h1, "port", name) not in (None, old), 15, what="%s recreated on h1" % name)
    assert external_id(h1, "port", name, "flowgate-owner") == OWNER
    assert external_id(h1, "interface", name, "flowgate-peer") is not None
    wait_until(lambda: tunnels_ready(ctl, 2), 30, what="the recreated tunnel up")


@pytest.mark.timeout_secs(180)
def test_after_a_restart_orphans_go_and_everything_else_stays(lab):
    cloud, ctl = lab
    h1, h2 = cloud.hosts
    ctl.kill9()
    # While Flowgate is down: a tunnel a previous run created to a host
    # that never comes back, an operator's tunnel, and a tunnel marked as
    # the previous Flowgate version did (flowgate-peer only).
    orphan = tunnel_name("198.19.7.99")
    tags = ["external_ids:flowgate-owner=%s" % OWNER, "external_ids:flowgate-key=%s" % orphan,
            "external_ids:flowgate-peer=ghost"]
    h1.vsctl("add-port", "br-int", orphan,
             "--", "set", "interface", orphan, "type=vxlan", "options:remote_ip=198.19.7.99", "options:key=flow",
             *tags, "--", "set", "port", orphan, *tags)
    h1.vsctl("add-port", "br-int", "optun0",
             "--", "set", "interface", "optun0", "type=vxlan", "options:remote_ip=198.19.7.98", "options:key=flow")
    legacy = tunnel(h2, h1)
    for table in ("port", "interface"):
        h2.vsctl("remove", table, legacy, "external_ids", "flowgate-owner", "flowgate-key")
    assert external_id(h2, "port", legacy, "flowgate-owner") is None
    kept = {(h.name, t): row_uuid(h, t, tunnel(h, p)) for h, p in ((h1, h2), (h2, h1)) for t in ("port", "interface")}
    try:
        ctl.start()
        wait_until(lambda: row_uuid(h1, "port", orphan) is None, GRACE + 30, what="the orphan tunnel removed")
        wait_until(lambda: external_id(h2, "port", legacy, "flowgate-owner") == OWNER, 30,
                   what="the previous version's tunnel tagged")
        assert external_id(h2, "interface", legacy, "flowgate-key") == legacy
        # Adopted in place, not recreated; the operator's port untouched.
        now = {(h.name, t): row_uuid(h, t, tunnel(h, p)) for h, p in ((h1, h2), (h2, h1)) for t in ("port", "interface")}
        assert now == kept
        assert row_uuid(h1, "port", "optun0") is not None
        wait_until(lambda: tunnels_ready(ctl, 2), 30, what="tunnels up after the restart")
    finally:
        h1.vsctl("--if-exists", "del-port", "br-int", "optun0")
