"""Mininet topologies of the lab, built from scenarios (scenario.py): a
file in topologies/, or a short spec string such as `linear,3`,
`tree,2,2`, `mesh,4`, `ring,4`, `single,3`, `fattree,4` or `diamond`
(the generators' shorthands).

Switches keep the scenario's names and dpids, hosts its addresses (or
Mininet's 10.0.0.N/8 when it gives none), and every link its port
numbers; a link with bandwidth, delay or loss is a Mininet TCLink
(LabTCLink).
`mesh`, `ring`, `fattree` and `diamond` contain loops: they need a
controller that does loop-free flooding (spanning tree / topology module);
plain L2 learning floods forever.
"""

import os

from mininet.topo import Topo

from . import scenario as scn
from .nodes import LabTCLink
from .util import LabError, run


class ScenarioTopo(Topo):
    """The Mininet side of a Scenario: its switches, hosts and links (cloud
    hosts are built by cloud.py)."""

    def build(self, sc):  # pylint: disable=arguments-differ
        self.scenario = sc
        for sw in sc.switches:
            opts = {"dpid": "%016x" % sw.dpid}
            if sw.protocols:
                opts["protocols"] = sw.protocols
            self.addSwitch(sw.name, **opts)
        for host in sc.hosts:
            opts = {}
            if host.ip:
                opts["ip"] = host.ip
            if host.mac:
                opts["mac"] = host.mac
            if host.ipv6:
                opts["ipv6_addrs"] = list(host.ipv6)
            self.addHost(host.name, **opts)
        for link in sc.links:
            opts = dict(link.params)
            if opts:
                opts["cls"] = LabTCLink
            self.addLink(link.a, link.b, port1=link.a_port, port2=link.b_port, **opts)


def make_topo(what):
    """A Mininet Topo from a spec ("tree,2,3"), a scenario file path, a
    Scenario, or a Topo (returned as it is)."""
    if isinstance(what, Topo):
        return what
    if isinstance(what, str):
        what = scn.load(what) if scn.is_scenario_path(what) else scn.from_spec(what)
    return ScenarioTopo(what)


_NETEM = None


def check_netem(sc):
    """Raise LabError when links of `sc` need netem (delay, jitter, loss,
    queue size) and this kernel has no netem qdisc: Mininet would only log
    an error and build the link without them."""
    global _NETEM  # pylint: disable=global-statement
    needs = [link for link in sc.links if any(k in link.params for k in scn.NETEM_FIELDS)]
    if not needs:
        return
    if _NETEM is None:
        ns = "fgl-netem-%d" % os.getpid()
        run(["ip", "netns", "add", ns], check=False)
        try:
            out = run(["ip", "netns", "exec", ns, "sh", "-c",
                       "tc qdisc add dev lo root netem delay 1ms 2>&1 && echo NETEM_OK"], check=False)
            _NETEM = "NETEM_OK" in out
        finally:
            run(["ip", "netns", "del", ns], check=False)
    if not _NETEM:
        link = needs[0]
        raise LabError(
            "%s:%s: link %s-%s asks for %s, but this kernel has no netem qdisc (sch_netem); "
            "only bw works here" % (sc.path or sc.name, link.line, link.a, link.b,
                                   ", ".join(k for k in scn.NETEM_FIELDS if k in link.params))
        )
