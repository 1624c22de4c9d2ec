"""Helpers for tests of Flowgate's topology discovery and forwarding:
expected links of a Mininet topology, waiting until the controller has
discovered them, host attachment points, counters that reveal a storm."""

import re

from .ovs import dump_flows
from .util import wait_until

# Fast discovery for tests: a round every 2 s, ports edge after 2 s.
TEST_CONFIG = "[topology]\nlldp_interval = 2\nedge_delay = 2\n"


def switch_links(lab):
    """Switch-to-switch links of a started LabNet as a set of frozensets
    {(dpid, port), (dpid, port)}."""
    links = set()
    for link in lab.net.links:
        a, b = link.intf1, link.intf2
        if a.node in lab.net.switches and b.node in lab.net.switches:
            links.add(
                frozenset(
                    [
                        (int(a.node.dpid, 16), a.node.ports[a]),
                        (int(b.node.dpid, 16), b.node.ports[b]),
                    ]
                )
            )
    return links


def attachment(lab, host):
    """(dpid, port) of the switch port `host` (a name) is wired to."""
    intf = lab[host].defaultIntf()
    for link in lab.net.links:
        for mine, other in ((link.intf1, link.intf2), (link.intf2, link.intf1)):
            if mine is intf:
                return int(other.node.dpid, 16), other.node.ports[other]
    raise AssertionError("%s is not wired to a switch" % host)


def discovered_links(doc):
    """Undirected links of a GET /topology document, as switch_links()."""
    return {
        frozenset(
            [
                (int(link["src"]["dpid"].replace(":", ""), 16), link["src"]["port"]),
                (int(link["dst"]["dpid"].replace(":", ""), 16), link["dst"]["port"]),
            ]
        )
        for link in doc["links"]
    }


def wait_topology(ctl, lab, timeout=120):
    """Wait until GET /topology lists every switch as ready and exactly the
    topology's switch links, each in both directions; return the document."""
    want = switch_links(lab)
    dpids = {int(s.dpid, 16) for s in lab.switches}

    def done():
        doc = ctl.rest.get("/api/v1/topology")
        ready = {s["dpid_int"] for s in doc["switches"] if s["ready"]}
        both_ways = len(doc["links"]) == 2 * len(want)
        if ready == dpids and discovered_links(doc) == want and both_ways:
            return doc
        return None

    return wait_until(done, timeout, interval=1, what="controller to discover %d links" % len(want))


def metric(ctl, name):
    """Value of an unlabelled Prometheus metric from GET /metrics."""
    text = ctl.rest.request("GET", "/metrics").text
    match = re.search(r"^%s (\d+(?:\.\d+)?)$" % re.escape(name), text, re.M)
    return float(match.group(1)) if match else 0.0


def flood_packets(lab):
    """Packets matched by Flowgate's flood table (6) on every switch."""
    return sum(f.n_packets for sw in lab.switch_names() for f in dump_flows(sw) if f.table == 6)


def hosts_by_mac(ctl):
    """GET /hosts as {mac: host}."""
    return {h["mac"]: h for h in ctl.rest.get("/api/v1/hosts")}


def switch_name(dpid_text):
    """Lab switch name of a REST dpid: 00:..:0c -> s12."""
    return "s%d" % int(dpid_text.replace(":", ""), 16)


__all__ = [
    "TEST_CONFIG",
    "attachment",
    "discovered_links",
    "flood_packets",
    "hosts_by_mac",
    "metric",
    "switch_links",
    "switch_name",
    "wait_topology",
]
