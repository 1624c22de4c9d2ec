"""Open vSwitch helpers: parse `ovs-ofctl -O OpenFlow13 dump-flows`, ask
ovsdb which bridges are connected to their controller.

`ovs-ofctl` is always called with `-O OpenFlow13` (Mininet's `dpctl()`
does not pass it, and bridges restricted to OpenFlow13 refuse OpenFlow10).
"""

import json

from .util import run

# Owner ids in the cookie's high 16 bits; mirrors controller/src/cookie.rs
# (the on-switch format: ids are only ever appended there).
COOKIE_OWNERS = {
    0xF001: "core",
    0xF002: "forwarding",
    0xF003: "overlay",
    0xF004: "firewall",
    0xF005: "loadbalancer",
    0xF006: "qos",
    0xF007: "hostaware",
    0xF008: "topology",
}
OWNER_SHIFT = 48

# Keys of a dump-flows line that describe the entry rather than its match.
_STAT_KEYS = {
    "cookie",
    "duration",
    "table",
    "n_packets",
    "n_bytes",
    "idle_timeout",
    "hard_timeout",
    "idle_age",
    "hard_age",
    "importance",
    "priority",
}
_FLAG_WORDS = {"send_flow_rem", "check_overlap", "reset_counts", "no_packet_counts", "no_byte_counts"}


def cookie_owner(cookie):
    """Name of the Flowgate module owning a flow with this cookie, or None."""
    return COOKIE_OWNERS.get(cookie >> OWNER_SHIFT)


class Flow:
    """One flow entry from dump-flows."""

    def __init__(self, line):
        self.line = line.strip()
        head, sep, actions = self.line.partition(" actions=")
        if not sep:
            raise ValueError("not a flow line: %r" % line)
        self.actions = actions.strip()
        self.cookie = 0
        self.duration = 0.0
        self.table = 0
        self.n_packets = 0
        self.n_bytes = 0
        self.priority = 32768  # OpenFlow default, omitted by ovs-ofctl
        self.idle_timeout = 0
        self.hard_timeout = 0
        self.flags = set()
        self.match = {}
        # Stats are ", "-separated, flag words end with a space, the match is
        # ","-separated with no spaces (port names are off: --no-names).
        for token in head.replace(",", " ").split():
            key, has_value, value = token.partition("=")
            if key in _STAT_KEYS and has_value:
                self._set_stat(key, value)
            elif key in _FLAG_WORDS and not has_value:
                self.flags.add(key)
            else:
                # Bare words (arp, ip, tcp, ...) are shorthand matches.
                self.match[key] = value if has_value else True

    def _set_stat(self, key, value):
        if key == "cookie":
            self.cookie = int(value, 16)
        elif key == "duration":
            self.duration = float(value.rstrip("s"))
        elif key in ("idle_age", "hard_age"):
            setattr(self, key, int(value))
        else:
            setattr(self, key, int(value, 0))

    @property
    def owner(self):
        """Flowgate module owning this flow (from its cookie), or None."""
        return cookie_owner(self.cookie)

    @property
    def key(self):
        """Identity of the entry in its table: table, priority and match
        (what OpenFlow's strict modify/delete use)."""
        return (self.table, self.priority, tuple(sorted((k, str(v)) for k, v in self.match.items())))

    def __repr__(self):
        return "Flow(%s)" % self.line


def parse_dump_flows(text):
    """All flows in the output of `ovs-ofctl dump-flows` (header lines skipped)."""
    return [Flow(line) for line in text.splitlines() if " actions=" in line]


def dump_flows(bridge, extra=(), timeout=15):
    """Flows of `bridge` over OpenFlow 1.3, with port numbers (not names)."""
    out = run(["ovs-ofctl", "-O", "OpenFlow13", "--no-names", "dump-flows", bridge, *extra], timeout=timeout)
    return parse_dump_flows(out)


def vsctl(*args, timeout=15, check=True):
    """Run `ovs-vsctl` with a timeout; return stdout."""
    return run(["ovs-vsctl", "--timeout=%d" % timeout, *args], timeout=timeout + 5, check=check)


def _uuids(cell):
    """UUIDs in an ovsdb JSON cell: ["uuid", u] or ["set", [["uuid", u], ...]]."""
    if isinstance(cell, list) and cell and cell[0] == "uuid":
        return [cell[1]]
    if isinstance(cell, list) and cell and cell[0] == "set":
        return [u for _, u in cell[1]]
    return []


def _table(name, columns, *args):
    out = vsctl("--format=json", "--columns=" + ",".join(columns), "list", name, *args)
    doc = json.loads(out)
    return [dict(zip(doc["headings"], row)) for row in doc["data"]]


def bridges():
    """Names of all bridges in the local ovsdb."""
    return [name for name in vsctl("list-br").split()]


def bridge_connection(bridge):
    """{target: is_connected} for the controllers of one bridge."""
    rows = _table("bridge", ["controller"], bridge)
    ctl_uuids = _uuids(rows[0]["controller"]) if rows else []
    result = {}
    for row in _table("controller", ["_uuid", "target", "is_connected"]):
        if _uuids(row["_uuid"])[0] in ctl_uuids:
            result[row["target"]] = row["is_connected"] is True
    return result


def bridges_connected(names):
    """True when every bridge in `names` has all its controllers connected."""
    for name in names:
        conn = bridge_connection(name)
        if not conn or not all(conn.values()):
            return False
    return True


def bridge_external_ids(bridge):
    """external_ids of a bridge as a dict."""
    rows = _table("bridge", ["external_ids"], bridge)
    if not rows:
        return {}
    cell = rows[0]["external_ids"]
    return dict(cell[1]) if isinstance(cell, list) and cell[0] == "map" else {}


def bridge_ports(bridge):
    """Port names of `bridge`."""
    return vsctl("list-ports", bridge).split()


def revalidated(timeout=15):
    """Waits until ovs-vswitchd's revalidators have brought its datapath
    flow cache in line with its OpenFlow tables.

    A barrier reply says the tables changed; the cached datapath flows of
    packets already seen are revalidated by OVS's own threads a moment
    later (OVS's test suite calls `revalidator/wait` after flow changes
    for the same reason). A check that a packet obeys a flow installed
    just now waits for this, and checks the table itself without waiting.
    """
    run(["ovs-appctl", "revalidator/wait"], timeout=timeout)
