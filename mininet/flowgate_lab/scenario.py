"""Scenario files: a lab network, optionally its policies and the
reachability they should give, described once in YAML (topologies/*.yaml).

    name: campus                       # default: the file name
    openflow: "1.3"                    # default version of every switch
    generate: fattree k=4              # a regular shape (one line) ...
    switches: [{name: s1, dpid: 1}]    # ... and/or explicit nodes
    hosts: [{name: h1, switch: s1, ip: 10.0.0.1/24}]
    links: [[s1, s2], {ends: ["s2:3", s3], bw: 100}]
    cloud: {hosts: [{name: hv1, vms: [{name: vm1, ip: 10.0.0.1/24}]}]}
    policies: {firewall/rules: [...]}  # tools/flowgate-push's format
    expect: {reachable: all}

The full schema is in topologies/README.md. This module is pure (no
Mininet, no root): `load(path)` parses and validates a file into a
`Scenario`, `from_spec("tree,2,3")` makes one from a `--topo` shorthand.
Every error names the file, the YAML line and the field
(`campus.yaml:12: hosts[1].mac: ...`), and all errors are reported at once.
"""

import difflib
import fnmatch
import inspect
import ipaddress
import os
import re
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------
# Errors.


class ScenarioError(ValueError):
    """A file that cannot be used; `errors` holds (line, field, message)."""

    def __init__(self, path, errors):
        self.path = path
        self.errors = list(errors)
        super().__init__(str(self))

    def __str__(self):
        where = self.path or "<scenario>"
        return "\n".join(
            "%s%s: %s%s" % (where, ":%d" % line if line else "", fld + ": " if fld else "", msg)
            for line, fld, msg in self.errors
        )


class _Invalid(Exception):
    """Raised by a field parser; the caller adds field name and line."""


# ---------------------------------------------------------------------------
# YAML with line numbers. tools/flowgate-push has the same loader (it runs
# without this package); test_scenario_files.py checks that they agree.


class Map(dict):
    """A YAML mapping that remembers its line and each key's line."""

    line = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines = {}

    def line_of(self, key):
        return self.key_lines.get(key, self.line)


class Seq(list):
    """A YAML sequence that remembers its line and each item's line."""

    line = None

    def __init__(self, *args):
        super().__init__(*args)
        self.item_lines = []

    def line_of(self, index):
        return self.item_lines[index] if index < len(self.item_lines) else self.line


def _yaml_loader():
    import yaml  # pylint: disable=import-outside-toplevel

    class Loader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
        """SafeLoader with line numbers, duplicate keys refused, and no
        YAML 1.1 base-60 numbers (52:54:00:12:34:56 stays a MAC)."""

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:int",
        re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
        list("-+0123456789"),
    )
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
                   r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
        list("-+0123456789."),
    )

    def construct_map(loader, node):
        loader.flatten_mapping(node)
        out = Map()
        out.line = node.start_mark.line + 1
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if key in out:
                raise yaml.constructor.ConstructorError(
                    None, None, "duplicate key %r (first on line %d)" % (key, out.key_lines[key]),
                    key_node.start_mark,
                )
            out[key] = loader.construct_object(value_node, deep=True)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out

    def construct_seq(loader, node):
        out = Seq(loader.construct_object(child, deep=True) for child in node.value)
        out.line = node.start_mark.line + 1
        out.item_lines = [child.start_mark.line + 1 for child in node.value]
        return out

    Loader.add_constructor("tag:yaml.org,2002:map", construct_map)
    Loader.add_constructor("tag:yaml.org,2002:seq", construct_seq)
    return Loader, yaml.YAMLError


def parse_yaml(text, path=None):
    """The document in `text` as Map/Seq/scalars; ScenarioError with the
    line and column of a syntax error."""
    try:
        loader, yaml_error = _yaml_loader()
    except ImportError:
        raise ScenarioError(path, [(None, None, "PyYAML is missing (apt-get install python3-yaml)")]) from None
    try:
        return __import__("yaml").load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except yaml_error as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        context_mark = getattr(err, "context_mark", None)
        if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
            context += " at line %d" % (context_mark.line + 1)
        msg = "invalid YAML: %s%s" % (problem, " (%s)" % context if context else "")
        if mark is not None:
            msg += " at column %d" % (mark.column + 1)
        raise ScenarioError(path, [(mark.line + 1 if mark else None, None, msg)]) from None


# ---------------------------------------------------------------------------
# The model.


@dataclass
class Switch:
    name: str
    dpid: int
    openflow: tuple = None  # ("1.3",), ("1.0", "1.3"); None: the lab's default
    line: int = None
    generated: bool = False

    @property
    def protocols(self):
        """Open vSwitch `protocols` value (OpenFlow10,OpenFlow13) or None."""
        if not self.openflow:
            return None
        return ",".join("OpenFlow1%s" % v.split(".")[1] for v in self.openflow)


@dataclass
class Host:
    name: str
    ip: str = None  # CIDR; None: Mininet assigns 10.0.0.N/8 (see auto_ip)
    mac: str = None  # None: Mininet assigns 00:00:00:00:00:N
    ipv6: list = field(default_factory=list)  # CIDRs
    line: int = None
    generated: bool = False
    auto_ip: str = None  # what Mininet will assign, for checks and reachability

    @property
    def address(self):
        """The IPv4 address (no prefix) the host will have."""
        return (self.ip or self.auto_ip).split("/")[0]


@dataclass
class Link:
    a: str
    a_port: int
    b: str
    b_port: int
    params: dict = field(default_factory=dict)  # TCLink: bw, delay, jitter, loss, max_queue_size
    line: int = None


@dataclass
class Vm:
    name: str
    iface_id: str
    ip: str = None  # CIDR
    mac: str = None
    ipv6: list = field(default_factory=list)
    mtu: int = 1450
    line: int = None

    @property
    def address(self):
        return self.ip.split("/")[0] if self.ip else None


@dataclass
class CloudHost:
    name: str
    index: int
    underlay_ip: str
    dpid: int
    vms: list = field(default_factory=list)
    line: int = None


@dataclass
class Cloud:
    subnet: str  # "198.18.0.0/24"
    attach: str = "manager"  # or "controller"
    hosts: list = field(default_factory=list)

    @property
    def prefix24(self):
        """The first three octets, as lab's Cloud(subnet=...) wants them."""
        return self.subnet.split("/")[0].rsplit(".", 1)[0]


@dataclass
class Scenario:
    name: str
    path: str = None
    description: str = ""
    switches: list = field(default_factory=list)
    hosts: list = field(default_factory=list)
    links: list = field(default_factory=list)  # in Mininet addLink order, ports resolved
    cloud: Cloud = None
    policies: dict = field(default_factory=dict)  # kind -> list | mapping, pusher format
    reachable: object = "all"  # "all" | "none" | list of (sources, destinations) name lists
    generator: str = None  # "fattree k=4", for display

    def switch(self, name):
        return next((s for s in self.switches if s.name == name), None)

    def host(self, name):
        return next((h for h in self.hosts if h.name == name), None)

    def vms(self):
        """(CloudHost, Vm) for every VM."""
        return [(ch, vm) for ch in (self.cloud.hosts if self.cloud else []) for vm in ch.vms]

    def endpoints(self):
        """{name: IPv4 address} of every host and VM that has one, in order."""
        out = {h.name: h.address for h in self.hosts}
        out.update((vm.name, vm.address) for _, vm in self.vms() if vm.address)
        return out

    def expected(self):
        """{(src, dst): True when src must reach dst} for every ordered pair
        of endpoints, except pairs with the same address (a ping would
        answer itself)."""
        eps = self.endpoints()
        pairs = {(a, b): self.reachable == "all" for a in eps for b in eps if a != b and eps[a] != eps[b]}
        if isinstance(self.reachable, list):
            for sources, dests in self.reachable:
                for a in sources:
                    for b in dests:
                        if (a, b) in pairs:
                            pairs[(a, b)] = True
        return pairs


# ---------------------------------------------------------------------------
# Generators of the regular shapes. Node names, link order and port numbers
# are exactly those of the classic Mininet topologies (LinearTopo, TreeTopo,
# SingleSwitchTopo) and of the lab's own shapes: switches s1..sN (dpid N),
# hosts h1..hM, a node's ports numbered in the order its links are added
# (switches from 1, hosts from 0).


class _Wiring:
    """Nodes and links in order, ports allocated like Mininet's Topo."""

    def __init__(self):
        self.switches, self.hosts, self.links = [], [], []
        self.ports = {}  # node -> set of used port numbers
        self.kind = {}  # node -> "switch" | "host"
        self.misattached = set()  # hosts whose attachment was refused (reported already)

    def switch(self, name):
        self.switches.append(name)
        self.kind[name] = "switch"
        self.ports[name] = set()
        return name

    def host(self, name):
        self.hosts.append(name)
        self.kind[name] = "host"
        self.ports[name] = set()
        return name

    def next_port(self, node):
        port = 1 if self.kind[node] == "switch" else 0
        while port in self.ports[node]:
            port += 1
        return port

    def link(self, a, b, a_port=None, b_port=None, params=None, line=None):
        a_port = self.next_port(a) if a_port is None else a_port
        self.ports[a].add(a_port)
        b_port = self.next_port(b) if b_port is None else b_port
        self.ports[b].add(b_port)
        self.links.append(Link(a, a_port, b, b_port, dict(params or {}), line))


def gen_single(w, k=2):
    """One switch s1 with hosts h1..hk."""
    _at_least("k", k, 1)
    s1 = w.switch("s1")
    for i in range(1, k + 1):
        w.link(w.host("h%d" % i), s1)


def gen_linear(w, k=2, n=1):
    """k switches in a line, n hosts on each (h1.. for n=1, else h<j>s<i>)."""
    _at_least("k", k, 1)
    _at_least("n", n, 1)
    last = None
    for i in range(1, k + 1):
        sw = w.switch("s%d" % i)
        for j in range(1, n + 1):
            w.link(w.host("h%d" % i if n == 1 else "h%ds%d" % (j, i)), sw)
        if last:
            w.link(sw, last)
        last = sw


def gen_tree(w, depth=2, fanout=2):
    """A tree of switches `depth` levels deep, `fanout` children each;
    hosts at the leaves."""
    _at_least("depth", depth, 1)
    _at_least("fanout", fanout, 1)
    count = {"s": 1, "h": 1}

    def subtree(level):
        if level == 0:
            name = w.host("h%d" % count["h"])
            count["h"] += 1
            return name
        node = w.switch("s%d" % count["s"])
        count["s"] += 1
        for _ in range(fanout):
            w.link(node, subtree(level - 1))
        return node

    subtree(depth)


def _hosts_on_each(w, switches, hosts):
    num = 1
    for sw in switches:
        for _ in range(hosts):
            w.link(w.host("h%d" % num), sw)
            num += 1


def gen_mesh(w, n=3, hosts=1):
    """n switches, every pair linked; `hosts` hosts per switch."""
    _at_least("n", n, 2)
    _at_least("hosts", hosts, 0)
    switches = [w.switch("s%d" % i) for i in range(1, n + 1)]
    _hosts_on_each(w, switches, hosts)
    for i, a in enumerate(switches):
        for b in switches[i + 1 :]:
            w.link(a, b)


def gen_ring(w, n=4, hosts=1):
    """n switches in a ring (one loop); `hosts` hosts per switch."""
    _at_least("n", n, 2)
    _at_least("hosts", hosts, 0)
    switches = [w.switch("s%d" % i) for i in range(1, n + 1)]
    _hosts_on_each(w, switches, hosts)
    for i, sw in enumerate(switches):
        if n > 2 or i == 0:
            w.link(sw, switches[(i + 1) % n])


def gen_fattree(w, k=4):
    """The k-ary fat-tree (k even): (k/2)^2 cores s1.., then pod by pod its
    k/2 aggregation and k/2 edge switches, k/2 hosts per edge switch.
    Edge ports 1..k/2 face hosts, k/2+1..k the pod's aggregation switches;
    aggregation ports 1..k/2 face edges, the rest cores (aggregation a of a
    pod reaches cores a*k/2+1..(a+1)*k/2); core port p+1 faces pod p.
    k=4: 20 switches, 16 hosts; k=8: 80 switches, 128 hosts."""
    if k < 2 or k % 2:
        raise _Invalid("k must be even and at least 2, not %d" % k)
    half = k // 2
    cores = [w.switch("s%d" % (i + 1)) for i in range(half * half)]
    num, pods = len(cores) + 1, []
    for _ in range(k):
        aggs = [w.switch("s%d" % (num + a)) for a in range(half)]
        edges = [w.switch("s%d" % (num + half + e)) for e in range(half)]
        num += k
        pods.append((aggs, edges))
    hnum = 1
    for _, edges in pods:
        for edge in edges:
            for _ in range(half):
                w.link(w.host("h%d" % hnum), edge)
                hnum += 1
    for aggs, edges in pods:
        for edge in edges:
            for agg in aggs:
                w.link(edge, agg)
    for aggs, _ in pods:
        for a, agg in enumerate(aggs):
            for c in range(half):
                w.link(agg, cores[a * half + c])


def gen_diamond(w, hosts=1):
    """s1 top, s2 and s3 in the middle, s4 bottom, plus the cross links
    s2-s3 and s1-s4 (loops of every length); `hosts` hosts per switch."""
    _at_least("hosts", hosts, 0)
    s = [w.switch("s%d" % i) for i in range(1, 5)]
    _hosts_on_each(w, s, hosts)
    for a, b in [(0, 1), (0, 2), (1, 3), (2, 3), (1, 2), (0, 3)]:
        w.link(s[a], s[b])


GENERATORS = {
    "single": gen_single,
    "linear": gen_linear,
    "tree": gen_tree,
    "mesh": gen_mesh,
    "ring": gen_ring,
    "fattree": gen_fattree,
    "diamond": gen_diamond,
}


def _at_least(name, value, low):
    if value < low:
        raise _Invalid("%s must be at least %d, not %d" % (name, low, value))


def generator_params(shape):
    """Parameter names of a generator, in positional order."""
    return list(inspect.signature(GENERATORS[shape]).parameters)[1:]


def parse_generator(text):
    """`fattree k=8`, `fattree 8`, `tree,2,3`, `linear k=3 n=2` ->
    (shape, {param: int})."""
    words = [w for w in re.split(r"[\s,]+", str(text).strip()) if w]
    if not words:
        raise _Invalid("empty; expected e.g. `fattree k=4` (shapes: %s)" % ", ".join(GENERATORS))
    shape, args = words[0], words[1:]
    if shape not in GENERATORS:
        raise _Invalid("unknown shape %r%s (shapes: %s)" % (shape, _did_you_mean(shape, GENERATORS), ", ".join(GENERATORS)))
    names = generator_params(shape)
    params, keyword = {}, False
    for i, arg in enumerate(args):
        key, eq, value = arg.partition("=")
        if eq:
            keyword = True
        else:
            if i >= len(names) or keyword:
                raise _Invalid("%s takes at most %d values in order (%s), then key=value"
                               % (shape, len(names), " ".join(names)))
            key, value = names[i], arg
        if key in params:
            raise _Invalid("%s: %s is given twice" % (shape, key))
        params[key] = value
    return shape, _generator_values(shape, params)


def _generator_values(shape, params):
    names = generator_params(shape)
    out = {}
    for key, value in params.items():
        if key not in names:
            raise _Invalid("%s has no parameter %r%s (it takes %s)" % (shape, key, _did_you_mean(key, names), ", ".join(names)))
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            raise _Invalid("%s: %s must be a whole number, not %r" % (shape, key, value))
        out[key] = int(value)
    return out


# ---------------------------------------------------------------------------
# Field parsers: each returns the normalized value or raises _Invalid.

NAME_RX = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MAC_RX = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
KIND_RX = re.compile(r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9_-]+)*$")
DURATION_RX = re.compile(r"^\d+(\.\d+)?(us|ms|s)$")
OPENFLOW_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5")


def _node_name(value, max_len, what):
    if not isinstance(value, str) or not NAME_RX.match(value):
        raise _Invalid("%r is not a valid %s name (a letter, then letters, digits or _)" % (value, what))
    if len(value) > max_len:
        raise _Invalid("%r is too long: at most %d characters (%s)" % (value, max_len, _LEN_REASON[what]))
    return value


_LEN_REASON = {
    "switch": "its interfaces are named <name>-eth<port>, 15 at most",
    "host": "its interfaces are named <name>-eth<port>, 15 at most",
    "cloud host": "its underlay interface is u-<name>",
    "VM": "it names the VM's interface on br-int",
}


def _dpid(value):
    if isinstance(value, bool):
        raise _Invalid("%r is not a datapath id" % value)
    if isinstance(value, int):
        num = value
    elif isinstance(value, str) and re.fullmatch(r"0[xX][0-9a-fA-F]+", value):
        num = int(value, 16)
    elif isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){7}", value):
        num = int(value.replace(":", ""), 16)
    elif isinstance(value, str) and value.isdigit():
        num = int(value)
    else:
        raise _Invalid("%r is not a datapath id: use a number (1), hex (0x1) or 00:00:00:00:00:00:00:01" % (value,))
    if not 0 < num < 1 << 64:
        raise _Invalid("%r is out of range (1..2^64-1)" % (value,))
    return num


def _openflow(value):
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, float):
            v = "%.1f" % v
        text = str(v).strip()
        text = {"OpenFlow1%s" % x[-1]: x for x in OPENFLOW_VERSIONS}.get(text, text)
        if text not in OPENFLOW_VERSIONS:
            raise _Invalid("%r is not an OpenFlow version (%s)" % (v, ", ".join(OPENFLOW_VERSIONS)))
        if text not in out:
            out.append(text)
    if not out:
        raise _Invalid("give at least one version")
    return tuple(sorted(out))


def _mac(value):
    if not isinstance(value, str) or not MAC_RX.match(value):
        raise _Invalid("%r is not a MAC address (aa:bb:cc:dd:ee:ff)" % (value,))
    if int(value[:2], 16) & 1:
        raise _Invalid("%s is a multicast address" % value)
    return value.lower()


def _ipv4_iface(value, default_prefix=24):
    if not isinstance(value, str):
        raise _Invalid("%r is not an IPv4 address" % (value,))
    text = value if "/" in value else "%s/%d" % (value, default_prefix)
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise _Invalid("%r is not an IPv4 address or address/prefix" % value) from None
    if iface.ip == iface.network.network_address and iface.network.prefixlen < 31:
        raise _Invalid("%s is the network address of %s" % (iface.ip, iface.network))
    if iface.ip == iface.network.broadcast_address and iface.network.prefixlen < 31:
        raise _Invalid("%s is the broadcast address of %s" % (iface.ip, iface.network))
    return str(iface)


def _ipv6_ifaces(value):
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if not isinstance(v, str):
            raise _Invalid("%r is not an IPv6 address" % (v,))
        try:
            out.append(str(ipaddress.IPv6Interface(v if "/" in v else v + "/64")))
        except ValueError:
            raise _Invalid("%r is not an IPv6 address or address/prefix" % v) from None
    return out


def _positive_number(value, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _Invalid("%r must be a positive number" % (value,))
    if high is not None and value > high:
        raise _Invalid("%r is more than %s" % (value, high))
    return value


def _duration(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return "%gms" % value
    if isinstance(value, str) and DURATION_RX.match(value.strip()):
        return value.strip()
    raise _Invalid("%r is not a duration (5ms, 100us, 0.5s or a number of ms)" % (value,))


def _loss(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise _Invalid("%r must be a percentage (0..100)" % (value,))
    return value


def _port(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 0xFF00:
        raise _Invalid("%r is not a port number (1..65279)" % (value,))
    return value


def _count(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid("%r must be a whole number of packets" % (value,))
    return value


def _text(value):
    if not isinstance(value, str):
        raise _Invalid("%r must be text" % (value,))
    return value


LINK_FIELDS = {
    "bw": lambda v: _positive_number(v, 10000),  # Mbit/s (HTB)
    "delay": _duration,  # netem
    "jitter": _duration,  # netem
    "loss": _loss,  # percent, netem
    "max_queue_size": lambda v: _count(v),  # packets, netem
}
NETEM_FIELDS = ("delay", "jitter", "loss", "max_queue_size")


def _did_you_mean(word, options):
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return " (did you mean %s?)" % close[0] if close else ""


# ---------------------------------------------------------------------------
# Validation.


class _Ctx:
    """Collects errors with their field path and line."""

    def __init__(self):
        self.errors = []

    def error(self, line, fld, msg):
        self.errors.append((line, fld, msg))

    def fields(self, obj, path, allowed, required=(), line=None):
        """Check `obj` is a mapping with only `allowed` keys and every
        `required` one; return it (or None when it is not a mapping)."""
        if not isinstance(obj, dict):
            self.error(line or getattr(obj, "line", None), path, "expected a mapping, not %s" % _what(obj))
            return None
        for key in obj:
            if key not in allowed:
                self.error(_line(obj, key), _join(path, key), "unknown field%s (fields: %s)"
                           % (_did_you_mean(key, allowed), ", ".join(allowed)))
        for key in required:
            if key not in obj:
                self.error(getattr(obj, "line", line), path, "%s is required" % key)
        return obj

    def value(self, obj, key, path, parser, default=None):
        """obj[key] through `parser`, or `default` when absent/invalid."""
        if key not in obj:
            return default
        try:
            return parser(obj[key])
        except _Invalid as err:
            self.error(_line(obj, key), _join(path, key), str(err))
            return default

    def seq(self, obj, key, path):
        """obj[key] as a list of (index, item, line, item path)."""
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(_line(obj, key), _join(path, key), "expected a list, not %s" % _what(value))
            return []
        return [(i, item, _item_line(value, i), "%s[%d]" % (_join(path, key), i)) for i, item in enumerate(value)]


def _join(path, key):
    return "%s.%s" % (path, key) if path else str(key)


def _line(obj, key):
    return obj.line_of(key) if isinstance(obj, Map) else None


def _item_line(seq, i):
    return seq.line_of(i) if isinstance(seq, Seq) else None


def _what(value):
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return "%r" % (value,)


TOP_FIELDS = ("name", "description", "openflow", "generate", "switches", "hosts", "links", "cloud", "policies", "expect")
SWITCH_FIELDS = ("name", "dpid", "openflow")
HOST_FIELDS = ("name", "switch", "port", "ip", "mac", "ipv6") + tuple(LINK_FIELDS)
LINK_ITEM_FIELDS = ("ends",) + tuple(LINK_FIELDS)
CLOUD_FIELDS = ("underlay", "attach", "hosts")
CLOUD_HOST_FIELDS = ("name", "underlay", "dpid", "vms")
VM_FIELDS = ("name", "iface_id", "ip", "mac", "ipv6", "mtu")
EXPECT_FIELDS = ("reachable",)
GENERATE_FIELDS = ("shape", "link")


def load(path):
    """Parse and validate a scenario file."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise ScenarioError(path, [(None, None, "cannot read: %s" % err.strerror)]) from None
    return loads(text, path)


def loads(text, path=None):
    """Parse and validate scenario text (`path` names it in errors)."""
    doc = parse_yaml(text, path)
    if doc is None:
        doc = Map()
    ctx = _Ctx()
    if ctx.fields(doc, "", TOP_FIELDS, line=1) is None:
        raise ScenarioError(path, ctx.errors)
    name = ctx.value(doc, "name", "", _text)
    if name is None:
        name = os.path.splitext(os.path.basename(path))[0] if path else "scenario"
    sc = Scenario(name=name, path=path, description=ctx.value(doc, "description", "", _text, ""))
    default_of = ctx.value(doc, "openflow", "", _openflow)
    wiring, generated = _generate(ctx, doc, sc)
    _switches(ctx, doc, sc, wiring, generated, default_of)
    _hosts(ctx, doc, sc, wiring, generated)
    _links(ctx, doc, sc, wiring)
    _finish_wiring(ctx, sc, wiring, generated)
    if "cloud" in doc:
        sc.cloud = _cloud(ctx, doc["cloud"], _line(doc, "cloud"))
    _unique_names(ctx, sc)
    if "policies" in doc:
        sc.policies = _policies(ctx, doc["policies"], _line(doc, "policies"), sc)
    if "expect" in doc:
        sc.reachable = _expect(ctx, doc["expect"], _line(doc, "expect"), sc)
    _check_ambiguous(ctx, sc, _line(doc, "expect"))
    if ctx.errors:
        raise ScenarioError(path, sorted(ctx.errors, key=lambda e: (e[0] or 0)))
    return sc


def from_spec(spec):
    """A Scenario from a `--topo` shorthand such as "tree,2,3"."""
    return loads("generate: %s\n" % spec, None) if spec else loads("", None)


def _generate(ctx, doc, sc):
    wiring = _Wiring()
    if "generate" not in doc:
        return wiring, False
    value, line = doc["generate"], _line(doc, "generate")
    try:
        if isinstance(value, dict):
            ctx.fields(value, "generate", GENERATE_FIELDS + tuple(p for g in GENERATORS for p in generator_params(g)),
                       required=("shape",))
            shape, params = parse_generator(value.get("shape", ""))
            params.update(_generator_values(shape, {k: v for k, v in value.items() if k not in GENERATE_FIELDS}))
            link_params = {}
            if "link" in value:
                link = ctx.fields(value["link"], "generate.link", tuple(LINK_FIELDS), line=_line(value, "link"))
                for key in link or ():
                    if key in LINK_FIELDS:
                        link_params[key] = ctx.value(link, key, "generate.link", LINK_FIELDS[key])
        else:
            shape, params = parse_generator(value)
            link_params = {}
        GENERATORS[shape](wiring, **params)
    except _Invalid as err:
        ctx.error(line, "generate", str(err))
        return _Wiring(), False
    sc.generator = ("%s %s" % (shape, " ".join("%s=%d" % kv for kv in params.items()))).strip()
    for link in wiring.links:
        if wiring.kind[link.a] == "switch" and wiring.kind[link.b] == "switch":
            link.params.update(link_params)
        link.line = line
    for name in wiring.switches:
        sc.switches.append(Switch(name, int(re.search(r"\d+", name).group()), line=line, generated=True))
    for name in wiring.hosts:
        sc.hosts.append(Host(name, line=line, generated=True))
    return wiring, True


def _switches(ctx, doc, sc, wiring, generated, default_of):
    for _, item, line, path in ctx.seq(doc, "switches", ""):
        if ctx.fields(item, path, SWITCH_FIELDS, required=("name",), line=line) is None or "name" not in item:
            continue
        name = ctx.value(item, "name", path, lambda v: _node_name(v, 10, "switch"))
        if name is None:
            continue
        existing = sc.switch(name)
        if existing is not None and not existing.generated:
            ctx.error(_line(item, "name"), _join(path, "name"), "switch %s is defined twice (also line %s)" % (name, existing.line))
            continue
        dpid = ctx.value(item, "dpid", path, _dpid)
        if dpid is None and "dpid" not in item:
            digits = re.search(r"\d+", name)
            if existing is not None:
                dpid = existing.dpid
            elif digits and int(digits.group()) > 0:
                dpid = int(digits.group())
            else:
                ctx.error(_line(item, "name"), path, "dpid is required: the name %r has no number to take it from" % name)
        openflow = ctx.value(item, "openflow", path, _openflow)
        if existing is not None:  # refines a generated switch
            existing.dpid = dpid if dpid is not None else existing.dpid
            existing.openflow = openflow or existing.openflow
            existing.line = line
            existing.generated = False
            continue
        sc.switches.append(Switch(name, dpid or 0, openflow, line))
        wiring.switch(name)
    for sw in sc.switches:
        if sw.openflow is None:
            sw.openflow = default_of
    seen = {}
    for sw in sc.switches:
        if sw.dpid and sw.dpid in seen:
            ctx.error(sw.line, "switches", "%s and %s have the same dpid %#x" % (seen[sw.dpid].name, sw.name, sw.dpid))
        seen.setdefault(sw.dpid, sw)


def _hosts(ctx, doc, sc, wiring, generated):
    for _, item, line, path in ctx.seq(doc, "hosts", ""):
        if ctx.fields(item, path, HOST_FIELDS, required=("name",), line=line) is None or "name" not in item:
            continue
        name = ctx.value(item, "name", path, lambda v: _node_name(v, 10, "host"))
        if name is None:
            continue
        existing = sc.host(name)
        if existing is not None and not existing.generated:
            ctx.error(_line(item, "name"), _join(path, "name"), "host %s is defined twice (also line %s)" % (name, existing.line))
            continue
        ip = ctx.value(item, "ip", path, _ipv4_iface)
        mac = ctx.value(item, "mac", path, _mac)
        ipv6 = ctx.value(item, "ipv6", path, _ipv6_ifaces, [])
        params = {k: ctx.value(item, k, path, LINK_FIELDS[k]) for k in LINK_FIELDS if k in item}
        if existing is not None:  # refines a generated host
            for key in ("switch", "port") + tuple(LINK_FIELDS):
                if key in item:
                    ctx.error(_line(item, key), _join(path, key),
                              "%s comes from `generate`; only ip, mac and ipv6 can be set here" % name)
            existing.ip, existing.mac = ip or existing.ip, mac or existing.mac
            existing.ipv6, existing.line, existing.generated = ipv6 or existing.ipv6, line, False
            continue
        host = Host(name, ip, mac, ipv6, line)
        sc.hosts.append(host)
        wiring.host(name)
        if "switch" in item:
            switch = item["switch"]
            if not isinstance(switch, str) or switch not in wiring.kind or wiring.kind[switch] != "switch":
                ctx.error(_line(item, "switch"), _join(path, "switch"),
                          "no switch named %r%s" % (switch, _did_you_mean(switch, wiring.switches)))
                wiring.misattached.add(name)
                continue
            port = ctx.value(item, "port", path, _port)
            if port is not None and port in wiring.ports[switch]:
                ctx.error(_line(item, "port"), _join(path, "port"), "port %d of %s is already in use" % (port, switch))
                wiring.misattached.add(name)
                continue
            wiring.link(name, switch, None, port, params, line)
        elif "port" in item or params:
            ctx.error(line, path, "port and link settings need a switch")


def _endpoint(value):
    """`s1` or `s1:3` -> (node, port or None)."""
    if not isinstance(value, str):
        raise _Invalid("%r is not a link end (node or node:port)" % (value,))
    node, sep, port = value.partition(":")
    if sep:
        if not port.isdigit():
            raise _Invalid("%r: the port after ':' must be a number" % value)
        return node, int(port)
    return node, None


def _links(ctx, doc, sc, wiring):
    for _, item, line, path in ctx.seq(doc, "links", ""):
        params = {}
        if isinstance(item, list):
            ends, ends_path, ends_line = item, path, line
        elif ctx.fields(item, path, LINK_ITEM_FIELDS, required=("ends",), line=line) is not None and "ends" in item:
            ends, ends_path, ends_line = item["ends"], _join(path, "ends"), _line(item, "ends")
            params = {k: ctx.value(item, k, path, LINK_FIELDS[k]) for k in LINK_FIELDS if k in item}
        else:
            continue
        if not isinstance(ends, list) or len(ends) != 2:
            ctx.error(ends_line, ends_path, "a link has two ends, e.g. [s1, s2] or [\"s1:3\", s2]")
            continue
        resolved = []
        for i, end in enumerate(ends):
            where = "%s[%d]" % (ends_path, i)
            try:
                node, port = _endpoint(end)
            except _Invalid as err:
                ctx.error(ends_line, where, str(err))
                break
            if node not in wiring.kind:
                ctx.error(ends_line, where, "no switch or host named %r%s"
                          % (node, _did_you_mean(node, list(wiring.kind))))
                break
            if port is not None and (port in wiring.ports[node] or (port == 0 and wiring.kind[node] == "switch")):
                ctx.error(ends_line, where, "port %d of %s is %s" % (port, node, "in use" if port else "not a port"))
                break
            resolved.append((node, port))
        else:
            (a, a_port), (b, b_port) = resolved
            if a == b:
                ctx.error(ends_line, ends_path, "a link needs two different nodes")
                continue
            wiring.link(a, b, a_port, b_port, params, line)


def _finish_wiring(ctx, sc, wiring, generated):
    sc.links = wiring.links
    linked = {n for link in wiring.links for n in (link.a, link.b)}
    for host in sc.hosts:
        if host.name not in linked and host.name not in wiring.misattached:
            ctx.error(host.line, "hosts", "host %s is not connected: give it a switch" % host.name)
    # What Mininet will assign: 10.0.0.N/8 and 00:..:N by the host's
    # position in name order, whether or not the host has its own.
    order = sorted(sc.hosts, key=lambda h: natural(h.name))
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    for i, host in enumerate(order, start=1):
        host.auto_ip = "%s/8" % ipaddress.IPv4Address(base + i)
    seen = {}
    for host in sc.hosts:
        addr = host.address
        if addr in seen:
            ctx.error(host.line, "hosts", "%s and %s both have the address %s%s" % (
                seen[addr].name, host.name, addr,
                "" if host.ip and seen[addr].ip else " (Mininet gives hosts without ip 10.0.0.<position>)"))
        seen.setdefault(addr, host)
    macs = {}
    for host in sc.hosts:
        if host.mac:
            if host.mac in macs:
                ctx.error(host.line, "hosts", "%s and %s both have the MAC %s" % (macs[host.mac], host.name, host.mac))
            macs.setdefault(host.mac, host.name)


def _cloud(ctx, obj, line):
    if ctx.fields(obj, "cloud", CLOUD_FIELDS, required=("hosts",), line=line) is None:
        return None

    def subnet(value):
        try:
            net = ipaddress.IPv4Network(value)
        except (ValueError, TypeError):
            raise _Invalid("%r is not an IPv4 network" % (value,)) from None
        if net.prefixlen != 24:
            raise _Invalid("the lab's underlay is a /24, not /%d" % net.prefixlen)
        return str(net)

    def attach(value):
        if value not in ("manager", "controller"):
            raise _Invalid("%r: manager (Flowgate provisions br-int and tunnels over OVSDB) or controller "
                           "(the lab creates br-int and points it at Flowgate)" % (value,))
        return value

    cloud = Cloud(subnet=ctx.value(obj, "underlay", "cloud", subnet, "198.18.0.0/24"),
                  attach=ctx.value(obj, "attach", "cloud", attach, "manager"))
    net = ipaddress.IPv4Network(cloud.subnet)
    underlays = {}
    for index, item, item_line, path in ctx.seq(obj, "hosts", "cloud"):
        if ctx.fields(item, path, CLOUD_HOST_FIELDS, required=("name",), line=item_line) is None:
            continue
        name = ctx.value(item, "name", path, lambda v: _node_name(v, 12, "cloud host"))
        if name is None:
            continue
        if any(h.name == name for h in cloud.hosts):
            ctx.error(_line(item, "name"), _join(path, "name"), "cloud host %s is defined twice" % name)
            continue

        def underlay(value):
            try:
                addr = ipaddress.IPv4Address(value)
            except (ValueError, TypeError):
                raise _Invalid("%r is not an IPv4 address" % (value,)) from None
            if addr not in net or addr in (net.network_address, net.broadcast_address, net.network_address + 254):
                raise _Invalid("%s is not a host address of %s other than .254 (the management address)" % (addr, net))
            return str(addr)

        under = ctx.value(item, "underlay", path, underlay, str(net.network_address + 11 + index))
        if under in underlays:
            ctx.error(_line(item, "underlay") if "underlay" in item else item_line, _join(path, "underlay"),
                      "%s is also the underlay address of %s" % (under, underlays[under]))
        underlays.setdefault(under, name)
        if "dpid" in item and cloud.attach != "controller":
            ctx.error(_line(item, "dpid"), _join(path, "dpid"),
                      "only with attach: controller (with a manager, Flowgate creates br-int)")
        dpid = ctx.value(item, "dpid", path, _dpid, 0xC001 + index)
        host = CloudHost(name, index + 1, under, dpid, line=item_line)
        for _, vm_item, vm_line, vm_path in ctx.seq(item, "vms", path):
            vm = _vm(ctx, vm_item, vm_line, vm_path)
            if vm is not None:
                if any(v.name == vm.name for v in host.vms):
                    ctx.error(vm_line, _join(vm_path, "name"), "VM %s is defined twice on %s" % (vm.name, name))
                    continue
                host.vms.append(vm)
        cloud.hosts.append(host)
    if not cloud.hosts:
        ctx.error(line, "cloud.hosts", "at least one cloud host")
    ids = {}
    for host in cloud.hosts:
        for vm in host.vms:
            if vm.iface_id in ids:
                ctx.error(vm.line, "cloud", "VMs %s and %s have the same iface_id %r" % (ids[vm.iface_id], vm.name, vm.iface_id))
            ids.setdefault(vm.iface_id, vm.name)
    return cloud


def _vm(ctx, item, line, path):
    if ctx.fields(item, path, VM_FIELDS, required=("name",), line=line) is None or "name" not in item:
        return None
    name = ctx.value(item, "name", path, lambda v: _node_name(v, 15, "VM"))
    if name is None:
        return None
    if name in ("eth0", "lo", "br-int", "br-phy"):
        ctx.error(_line(item, "name"), _join(path, "name"), "%r is taken by the cloud host itself" % name)

    def mtu(value):
        if isinstance(value, bool) or not isinstance(value, int) or not 576 <= value <= 1450:
            raise _Invalid("%r: 576..1450 (the VXLAN overhead must fit the underlay's 1500)" % (value,))
        return value

    return Vm(
        name=name,
        iface_id=ctx.value(item, "iface_id", path, _text, name),
        ip=ctx.value(item, "ip", path, _ipv4_iface),
        mac=ctx.value(item, "mac", path, _mac),
        ipv6=ctx.value(item, "ipv6", path, _ipv6_ifaces, []),
        mtu=ctx.value(item, "mtu", path, mtu, 1450),
        line=line,
    )


def _unique_names(ctx, sc):
    owner = {}
    for kind, name, line in ([("switch", s.name, s.line) for s in sc.switches]
                             + [("host", h.name, h.line) for h in sc.hosts]
                             + [("VM", vm.name, vm.line) for _, vm in sc.vms()]):
        if name in owner and owner[name][0] != kind:
            ctx.error(line, None, "%s %s has the name of a %s: names of switches, hosts and VMs must differ"
                      % (kind, name, owner[name][0]))
        elif name in owner and kind == "VM":
            ctx.error(line, None, "VM %s: the name is used on two cloud hosts; VM names must be unique" % name)
        owner.setdefault(name, (kind, line))


def _policies(ctx, obj, line, sc):
    """The pusher's format: kind -> list of items (a collection) or one
    mapping (a singleton). Kinds are whatever the controller's OpenAPI
    document offers (tools/flowgate-push kinds), so new modules' kinds need
    no change here; only their shape is checked, plus references to this
    file's VMs and switch ports in `ports` items."""
    if not isinstance(obj, dict):
        ctx.error(line, "policies", "expected a mapping of kinds (firewall/rules, networks, ...) to resources")
        return {}
    for kind, content in obj.items():
        path = "policies.%s" % kind
        if not isinstance(kind, str) or not KIND_RX.match(kind):
            ctx.error(_line(obj, kind), path, "not a resource kind (a REST path under /api/v1, e.g. firewall/rules)")
            continue
        if isinstance(content, list):
            for i, item in enumerate(content):
                if not isinstance(item, dict):
                    ctx.error(_item_line(content, i), "%s[%d]" % (path, i), "expected a mapping, not %s" % _what(item))
            if kind == "ports" or re.fullmatch(r"networks/[^/]+/ports", kind):
                _check_ports(ctx, content, path, sc)
        elif not isinstance(content, dict):
            ctx.error(_line(obj, kind), path, "expected a list (a collection) or a mapping (a singleton)")
    return obj


def _check_ports(ctx, items, path, sc):
    iface_ids = {vm.iface_id for _, vm in sc.vms()}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        where = "%s[%d]" % (path, i)
        if "iface_id" in item and sc.cloud is not None and item["iface_id"] not in iface_ids:
            ctx.error(_line(item, "iface_id"), where + ".iface_id", "no VM of this file has iface_id %r%s"
                      % (item["iface_id"], _did_you_mean(item["iface_id"], iface_ids)))
        binding = item.get("switch")
        if isinstance(binding, dict) and sc.switches:
            try:
                dpid = _dpid(binding.get("dpid"))
            except _Invalid:
                continue
            sw = next((s for s in sc.switches if s.dpid == dpid), None)
            port = binding.get("port")
            if sw is None:
                ctx.error(_line(binding, "dpid"), where + ".switch.dpid", "no switch of this file has dpid %#x" % dpid)
                continue
            names = {"%s-eth%d" % (sw.name, p) for link in sc.links
                     for node, p in ((link.a, link.a_port), (link.b, link.b_port)) if node == sw.name}
            if isinstance(port, str) and port not in names:
                ctx.error(_line(binding, "port"), where + ".switch.port", "%s has no port %r (it has %s)"
                          % (sw.name, port, ", ".join(sorted(names, key=natural))))


def _names(ctx, value, line, path, known):
    """A name, glob pattern or list of them -> list of endpoint names."""
    values = value if isinstance(value, list) else [value]
    out = []
    for i, v in enumerate(values):
        where = "%s[%d]" % (path, i) if isinstance(value, list) else path
        if not isinstance(v, str):
            ctx.error(line, where, "%r is not a host or VM name" % (v,))
            continue
        matched = [n for n in known if fnmatch.fnmatchcase(n, v)]
        if not matched:
            ctx.error(line, where, "%r names no host or VM with an IPv4 address%s" % (v, _did_you_mean(v, known)))
        out.extend(n for n in matched if n not in out)
    return out


def _expect(ctx, obj, line, sc):
    if ctx.fields(obj, "expect", EXPECT_FIELDS, line=line) is None:
        return "all"
    value = obj.get("reachable", "all")
    rline = _line(obj, "reachable")
    if value in ("all", "none"):
        return value
    if not isinstance(value, list):
        ctx.error(rline, "expect.reachable", "all, none, or a list of {group: [...]} / {from: ..., to: ...}")
        return "all"
    known = list(sc.endpoints())
    rules = []
    for i, item in enumerate(value):
        path, iline = "expect.reachable[%d]" % i, _item_line(value, i)
        if ctx.fields(item, path, ("group", "from", "to"), line=iline) is None:
            continue
        if "group" in item and ("from" in item or "to" in item) or not ("group" in item or ("from" in item and "to" in item)):
            ctx.error(iline, path, "either group: [names] (every pair within) or from: and to: (every pair across)")
            continue
        if "group" in item:
            group = _names(ctx, item["group"], _line(item, "group"), path + ".group", known)
            rules.append((group, group))
        else:
            rules.append((_names(ctx, item["from"], _line(item, "from"), path + ".from", known),
                          _names(ctx, item["to"], _line(item, "to"), path + ".to", known)))
    return rules


def _check_ambiguous(ctx, sc, line):
    """Reachability is tested by pinging addresses: two endpoints with the
    same address must be expected alike from every source."""
    by_addr = {}
    for name, addr in sc.endpoints().items():
        by_addr.setdefault(addr, []).append(name)
    expected = sc.expected()
    for addr, names in by_addr.items():
        for src in sc.endpoints():
            wants = {expected.get((src, n)) for n in names if n != src}
            if len(wants) > 1:
                ctx.error(line, "expect", "%s share the address %s but %s should reach only some of them: "
                          "a ping cannot tell them apart" % (" and ".join(names), addr, src))
                break


def natural(name):
    """Sort key putting s2 before s10 (Mininet's order)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name))]


def is_scenario_path(text):
    """Whether a --topo/LabNet argument names a file rather than a shorthand."""
    return isinstance(text, str) and (text.endswith((".yaml", ".yml")) or os.sep in text)
