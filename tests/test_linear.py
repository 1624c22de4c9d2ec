"""linear,3 against flowgate: connection, REST inventory, forwarding,
flow ownership and port statistics."""

import pytest

from flowgate_lab import dpid_str, dump_flows, wait_until
from flowgate_lab.checks import wait_rest_switches
from flowgate_lab.ovs import bridges_connected

OWNERS = {"core", "forwarding", "overlay", "firewall", "loadbalancer", "qos", "hostaware", "topology"}


def _data_ports(sw):
    """REST ports of a switch without the LOCAL port."""
    return [p for p in sw["ports"] if not p.get("local") and p["port_no"] < 0xFFFFFF00]


def test_all_switches_connect(linear3):
    ctl, lab = linear3
    assert bridges_connected(lab.switch_names())
    health = wait_until(
        lambda: (lambda h: h if h["switches"] == 3 else None)(ctl.rest.health()),
        30,
        what="health to report 3 switches",
    )
    assert health["status"] == "ok"
    assert isinstance(health["uptime_secs"], int) and health["uptime_secs"] >= 0


def test_rest_lists_switches_and_ports(linear3):
    ctl, lab = linear3
    switches = wait_rest_switches(ctl, [1, 2, 3])
    assert len(switches) == 3, switches
    by_dpid = {sw["dpid_int"]: sw for sw in switches}
    for node in lab.switches:
        dpid = int(node.dpid, 16)
        sw = by_dpid[dpid]
        assert sw["dpid"] == dpid_str(dpid)
        assert sw["version"] == "1.3"
        assert sw["n_tables"] >= 6, "the pipeline needs tables 0..5"
        assert sw["address"].startswith("127.0.0.1"), sw["address"]
        assert sw["connected_since"]
        expected = {
            node.ports[intf]: (intf.name, intf.MAC()) for intf in node.intfList() if intf.name != "lo"
        }
        got = {p["port_no"]: (p["name"], p["hw_addr"].lower()) for p in _data_ports(sw)}
        assert got == expected, "ports of %s" % node.name
        for port in _data_ports(sw):
            assert port["link_up"] is True and port["admin_up"] is True, port


@pytest.mark.parametrize("form", ["{n}", "{hex}", "{colon}"])
def test_switch_by_dpid_forms(linear3, form):
    ctl, _ = linear3
    wait_rest_switches(ctl, [2])
    ident = form.format(n=2, hex="0x2", colon=dpid_str(2))
    sw = ctl.rest.switch(ident)
    assert sw["dpid_int"] == 2 and sw["dpid"] == dpid_str(2)
    assert sorted(p["name"] for p in _data_ports(sw)) == ["s2-eth1", "s2-eth2", "s2-eth3"]


def test_pingall(linear3):
    _, lab = linear3
    result = lab.pingall()
    assert result.loss_percent == 0, result


def test_flows_have_owners_and_match_the_switch(linear3):
    ctl, lab = linear3
    assert lab.pingall().loss_percent == 0
    for node in lab.switches:
        dpid = int(node.dpid, 16)
        flows = ctl.rest.flows(dpid)
        assert flows, "no flows reported for %s" % node.name
        for flow in flows:
            assert flow["owner"] in OWNERS or flow["owner"] is None, flow
            assert flow["cookie"].startswith("0x"), flow
            for field in ("table_id", "priority", "match", "instructions", "packet_count", "byte_count", "duration_sec"):
                assert field in flow, (field, flow)
        owners = {f["owner"] for f in flows}
        assert "core" in owners, "pipeline skeleton missing on %s: %s" % (node.name, owners)
        assert len({f["table_id"] for f in flows}) > 1, "expected a multi-table pipeline"
        # REST's view must be the switch's view (cookies are the identity).
        rest_cookies = sorted(int(f["cookie"], 16) for f in flows if f["owner"])
        ovs_cookies = sorted(f.cookie for f in dump_flows(node.name) if f.owner)
        if rest_cookies != ovs_cookies:
            # Learned flows may come and go between the two reads: re-read once.
            rest_cookies = sorted(int(f["cookie"], 16) for f in ctl.rest.flows(dpid) if f["owner"])
            ovs_cookies = sorted(f.cookie for f in dump_flows(node.name) if f.owner)
        assert rest_cookies == ovs_cookies, node.name
    # After an all-pairs ping every switch on the path learned something.
    learned = [f for f in ctl.rest.flows(1) if f["owner"] == "forwarding"]
    assert learned, "no forwarding-owned flows on s1 after pingall"


def test_port_stats_increase_with_traffic(linear3):
    ctl, lab = linear3

    def stats(dpid):
        return {p["name"]: p["stats"] for p in ctl.rest.ports(dpid) if p.get("name")}

    before = stats(1)
    for name in ("s1-eth1", "s1-eth2"):
        for key in ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes"):
            assert isinstance(before[name][key], int), (name, key, before[name])
    count = 30
    assert lab.ping("h1", "h3", count=count, interval=0.05) == count

    def grown():
        now = stats(1)
        return (
            now["s1-eth1"]["rx_packets"] - before["s1-eth1"]["rx_packets"] >= count
            and now["s1-eth1"]["tx_packets"] - before["s1-eth1"]["tx_packets"] >= count
            and now["s1-eth2"]["tx_packets"] - before["s1-eth2"]["tx_packets"] >= count
            and now["s1-eth1"]["rx_bytes"] > before["s1-eth1"]["rx_bytes"]
        )

    wait_until(grown, 30, interval=1, what="s1 port counters to grow by %d packets" % count)


def test_tcp_crosses_the_network(linear3):
    _, lab = linear3
    mbps = lab.iperf("h1", "h3", seconds=3)
    assert mbps > 10, "TCP h1->h3: %.1f Mbit/s" % mbps
