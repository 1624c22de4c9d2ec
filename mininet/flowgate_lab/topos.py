"""Topologies for the lab, named by a short spec string such as
`linear,3`, `tree,2,2`, `mesh,4`, `ring,4`, `single,3`, `fattree,4` or
`diamond`.

Switches are s1..sN (Mininet derives datapath id N from the name), hosts
h1..hM; port numbers follow link order, as in Mininet's own topologies.
`mesh`, `ring`, `fattree` and `diamond` contain loops: they need a
controller that does loop-free flooding (spanning tree / topology module);
plain L2 learning floods forever.
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


class FatTreeTopo(Topo):
    """The k-ary fat-tree (k even): (k/2)^2 core switches, k pods of k/2
    aggregation and k/2 edge switches, k/2 hosts per edge switch; k=4 gives
    20 switches and 16 hosts.

    Numbering (dpid = switch number): cores s1..s(k/2)^2, then pod by pod
    its aggregation switches and then its edge switches. Edge ports 1..k/2
    face hosts and k/2+1..k go up to the pod's aggregation switches in
    order; aggregation ports 1..k/2 face its edge switches, k/2+1..k its
    cores (aggregation switch a of a pod reaches cores a*k/2+1..(a+1)*k/2);
    core port p+1 faces pod p."""

    def build(self, k=4):  # pylint: disable=arguments-differ
        if k < 2 or k % 2:
            raise ValueError("fat-tree k must be even and at least 2")
        half = k // 2
        cores = [self.addSwitch("s%d" % (i + 1)) for i in range(half * half)]
        num = len(cores) + 1
        hnum = 1
        pods = []
        for _ in range(k):
            aggs = [self.addSwitch("s%d" % (num + a)) for a in range(half)]
            edges = [self.addSwitch("s%d" % (num + half + e)) for e in range(half)]
            num += k
            pods.append((aggs, edges))
        # Host links first so that edge ports 1..k/2 are hosts.
        for aggs, edges in pods:
            for edge in edges:
                for _ in range(half):
                    self.addLink(self.addHost("h%d" % hnum), edge)
                    hnum += 1
        for aggs, edges in pods:
            for edge in edges:
                for agg in aggs:
                    self.addLink(edge, agg)
        # Pods in order, so core port p+1 faces pod p.
        for aggs, _ in pods:
            for a, agg in enumerate(aggs):
                for c in range(half):
                    self.addLink(agg, cores[a * half + c])


class DiamondTopo(Topo):
    """Four switches in a diamond (s1 top, s2 and s3 in the middle, s4
    bottom) with cross links s2-s3 and s1-s4, so every pair of switches has
    several paths and there are loops of every length; `hosts` hosts per
    switch."""

    def build(self, hosts=1):  # pylint: disable=arguments-differ
        s = [self.addSwitch("s%d" % i) for i in range(1, 5)]
        hnum = 1
        for sw in s:
            for _ in range(hosts):
                self.addLink(self.addHost("h%d" % hnum), sw)
                hnum += 1
        for a, b in [(0, 1), (0, 2), (1, 3), (2, 3), (1, 2), (0, 3)]:
            self.addLink(s[a], s[b])


TOPOS = {
    "single": lambda k=2: SingleSwitchTopo(k=k),
    "linear": lambda k=2, n=1: LinearTopo(k=k, n=n),
    "tree": lambda depth=2, fanout=2: TreeTopo(depth=depth, fanout=fanout),
    "mesh": lambda n=3, hosts=1: MeshTopo(n=n, hosts=hosts),
    "ring": lambda n=4, hosts=1: RingTopo(n=n, hosts=hosts),
    "fattree": lambda k=4: FatTreeTopo(k=k),
    "diamond": lambda hosts=1: DiamondTopo(hosts=hosts),
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
