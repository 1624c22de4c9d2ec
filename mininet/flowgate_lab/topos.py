"""Topologies for the lab, named by a short spec string such as
`linear,3`, `tree,2,2`, `mesh,4`, `ring,4` or `single,3`.

Switches are s1..sN (Mininet derives datapath id N from the name), hosts
h1..hM; port numbers follow link order, as in Mininet's own topologies.
`mesh` and `ring` contain loops: they need a controller that does loop-free
flooding (spanning tree / topology module); plain L2 learning floods forever.
"""

from mininet.topo import LinearTopo, SingleSwitchTopo, Topo
from mininet.topolib import TreeTopo


class MeshTopo(Topo):
    """n switches, every pair linked (loops), `hosts` hosts per switch."""

    def build(self, n=3, hosts=1):  # pylint: disable=arguments-differ
        switches = [self.addSwitch("s%d" % i) for i in range(1, n + 1)]
        hnum = 1
        for sw in switches:
            for _ in range(hosts):
                self.addLink(self.addHost("h%d" % hnum), sw)
                hnum += 1
        for i, a in enumerate(switches):
            for b in switches[i + 1 :]:
                self.addLink(a, b)


class RingTopo(Topo):
    """n switches in a ring (one loop), `hosts` hosts per switch."""

    def build(self, n=4, hosts=1):  # pylint: disable=arguments-differ
        switches = [self.addSwitch("s%d" % i) for i in range(1, n + 1)]
        hnum = 1
        for sw in switches:
            for _ in range(hosts):
                self.addLink(self.addHost("h%d" % hnum), sw)
                hnum += 1
        for i, sw in enumerate(switches):
            if n > 2 or i == 0:
                self.addLink(sw, switches[(i + 1) % n])


TOPOS = {
    "single": lambda k=2: SingleSwitchTopo(k=k),
    "linear": lambda k=2, n=1: LinearTopo(k=k, n=n),
    "tree": lambda depth=2, fanout=2: TreeTopo(depth=depth, fanout=fanout),
    "mesh": lambda n=3, hosts=1: MeshTopo(n=n, hosts=hosts),
    "ring": lambda n=4, hosts=1: RingTopo(n=n, hosts=hosts),
}


def make_topo(spec):
    """Build a Topo from `name[,int...]`, e.g. "linear,3" or "tree,2,3"."""
    name, *args = [part.strip() for part in spec.split(",")]
    if name not in TOPOS:
        raise ValueError("unknown topology %r (known: %s)" % (name, ", ".join(sorted(TOPOS))))
    try:
        ints = [int(a) for a in args]
    except ValueError as exc:
        raise ValueError("topology arguments must be integers: %r" % spec) from exc
    return TOPOS[name](*ints)
