// The dashboard's logic, free of the DOM and the network: the graph model
// built from the REST documents and kept current by bus events, a force
// layout, cookie decoding, SSE framing, event filters, rates and plot
// scales. app.mjs does the rendering and the I/O; this module is what
// `node --test controller/src/api/dashboard/test/logic.test.mjs` checks.

// ---------------------------------------------------------------- cookies

/** Cookie owners (controller/src/cookie.rs, ARCHITECTURE.md "Cookie scheme"). */
export const OWNERS = {
  0xf001: "core",
  0xf002: "forwarding",
  0xf003: "overlay",
  0xf004: "firewall",
  0xf005: "loadbalancer",
  0xf006: "qos",
  0xf007: "hostaware",
  0xf008: "topology",
};

const OVERLAY_KINDS = {
  1: "gate",
  2: "port",
  3: "tunnel",
  4: "host",
  5: "ARP responder",
  6: "tenant miss",
  7: "flood",
  8: "fabric",
  9: "ND responder",
};

const LB_KINDS = {
  1: "VIP",
  2: "member",
  3: "shared",
  4: "probe trap",
  5: "affinity pin",
  6: "ND",
  7: "affinity miss",
  8: "leastconn counting",
};

const FIREWALL_OWN = {
  1: "ARP pass",
  2: "LLDP pass",
  133: "ND pass (RS)",
  134: "ND pass (RA)",
  135: "ND pass (NS)",
  136: "ND pass (NA)",
  0x100: "conntrack IPv4",
  0x101: "conntrack IPv6",
  0x200: "default deny",
};

const TOPOLOGY_TRAPS = { 1: "LLDP trap", 2: "ARP copy", 3: "NS copy", 4: "NA copy", 5: "miss copy" };

/** A 48-bit number as a MAC address. */
export function macOf(n) {
  const hex = BigInt(n).toString(16).padStart(12, "0");
  return hex.match(/../g).join(":");
}

/**
 * Decodes a flow cookie (`0xf002000000000001`, a number or a BigInt) into
 * its owner module and what the object part names.
 * Returns {owner, ownerId, object (BigInt), label}; owner is null for a
 * cookie no Flowgate module wrote.
 */
export function decodeCookie(cookie) {
  let value;
  try {
    value = BigInt(cookie);
  } catch {
    return { owner: null, ownerId: null, object: 0n, label: "unreadable cookie " + cookie };
  }
  value = BigInt.asUintN(64, value);
  const ownerId = Number(value >> 48n);
  const object = value & 0xffffffffffffn;
  const owner = OWNERS[ownerId] ?? null;
  if (owner === null) {
    const label = value === 0n ? "no cookie (foreign)" : "foreign cookie 0x" + value.toString(16);
    return { owner, ownerId, object, label };
  }
  const top = Number(object >> 40n);
  const kind = Number(object >> 32n);
  const low32 = Number(object & 0xffffffffn);
  let label;
  switch (owner) {
    case "core":
      label = "table-miss entry of table " + Number(object);
      break;
    case "forwarding":
      if (top === 0x01 && (object & 0xfffffffff0n) === 0n) label = "miss entry " + Number(object & 0xfn);
      else if (top === 0x03) label = "ARP trap, port " + low32;
      else if (top === 0x04) label = "flood, in_port " + low32;
      else label = "host " + macOf(object);
      break;
    case "overlay":
      label = (OVERLAY_KINDS[kind] ?? "kind " + kind) + ", VNI " + low32;
      break;
    case "firewall":
      if (kind === 0) label = "rule " + low32;
      else if (kind === 1) label = FIREWALL_OWN[low32] ?? "own entry " + low32;
      else label = "object 0x" + object.toString(16);
      break;
    case "loadbalancer":
      label = (LB_KINDS[kind] ?? "kind " + kind) + ", VIP index " + low32;
      break;
    case "qos":
      label = "policy " + low32;
      break;
    case "topology":
      if (top === 0x01 && (object & 0xfffffffff0n) === 0n)
        label = TOPOLOGY_TRAPS[Number(object & 0xfn)] ?? "trap " + Number(object & 0xfn);
      else if (top === 0x03) label = "link port " + low32;
      else label = "host " + macOf(object);
      break;
    default:
      label = "object 0x" + object.toString(16);
  }
  return { owner, ownerId, object, label };
}

/**
 * Flows of a switch grouped by owner module: [{owner, flows}] in a fixed
 * order (Flowgate modules by name, then foreign flows), each flow with its
 * decoded cookie as `decoded`; flows sorted by table, then priority down.
 */
export function groupFlowsByOwner(flows) {
  const groups = new Map();
  for (const flow of flows) {
    const decoded = decodeCookie(flow.cookie);
    const owner = decoded.owner ?? "foreign";
    if (!groups.has(owner)) groups.set(owner, []);
    groups.get(owner).push({ ...flow, decoded });
  }
  const order = [...groups.keys()].sort((a, b) => {
    if (a === "foreign") return 1;
    if (b === "foreign") return -1;
    return a.localeCompare(b);
  });
  return order.map((owner) => ({
    owner,
    flows: groups.get(owner).sort((x, y) => x.table_id - y.table_id || y.priority - x.priority),
  }));
}

// ------------------------------------------------------------ the graph

/** `00:00:00:00:00:00:00:0c` → 12 (a Number; dpids above 2^53 lose digits, labels only). */
export function dpidInt(dpid) {
  return Number.parseInt(String(dpid).replaceAll(":", ""), 16);
}

/** A short name for a switch: `s12` for small dpids (Mininet's names), else the dpid's tail. */
export function switchLabel(dpid) {
  const n = dpidInt(dpid);
  if (Number.isFinite(n) && n < 10000) return "s" + n;
  return "…" + String(dpid).slice(-5);
}

function endpoint(dpid, port) {
  return dpid + "/" + port;
}

/** The key of an undirected link between two switch ports. */
export function linkKey(aDpid, aPort, bDpid, bPort) {
  const a = endpoint(aDpid, aPort);
  const b = endpoint(bDpid, bPort);
  return a < b ? a + "|" + b : b + "|" + a;
}

/** An empty graph model. */
export function emptyGraph() {
  return { switches: new Map(), hosts: new Map(), links: new Map() };
}

/**
 * The graph from `GET /topology` and `GET /hosts`, keeping what `previous`
 * knew: links it saw that are no longer reported stay, marked down (a cut
 * link disappears from the topology document; the dashboard shows it red
 * until it returns or the operator forgets it).
 */
export function buildGraph(topology, hosts, previous = emptyGraph()) {
  const graph = emptyGraph();
  for (const sw of topology.switches ?? []) {
    graph.switches.set(sw.dpid, {
      id: sw.dpid,
      kind: "switch",
      label: switchLabel(sw.dpid),
      ready: !!sw.ready,
      up: true,
      ports: sw.ports ?? [],
    });
  }
  for (const link of topology.links ?? []) {
    const key = linkKey(link.src.dpid, link.src.port, link.dst.dpid, link.dst.port);
    const known = graph.links.get(key);
    if (known) {
      known.tree = known.tree || !!link.tree;
      known.directions += 1;
      continue;
    }
    const [a, b] = key.split("|").map((e) => {
      const i = e.lastIndexOf("/");
      return { dpid: e.slice(0, i), port: Number(e.slice(i + 1)) };
    });
    graph.links.set(key, { key, a, b, up: true, tree: !!link.tree, directions: 1 });
  }
  for (const [key, link] of previous.links) {
    if (graph.links.has(key)) continue;
    if (graph.switches.has(link.a.dpid) && graph.switches.has(link.b.dpid)) {
      graph.links.set(key, { ...link, up: false, tree: false, directions: 0 });
    }
  }
  for (const host of hosts ?? []) {
    graph.hosts.set(host.mac, hostNode(host));
  }
  return graph;
}

function hostNode(host) {
  const ip = (host.ipv4 ?? [])[0] ?? (host.ipv6 ?? [])[0];
  return {
    id: host.mac,
    kind: "host",
    label: ip ?? host.mac.slice(-8),
    mac: host.mac,
    ipv4: host.ipv4 ?? [],
    ipv6: host.ipv6 ?? [],
    vlan: host.vlan ?? null,
    dpid: host.dpid,
    port: host.port,
  };
}

/** Counts for the header: switches, undirected links (up / down), hosts. */
export function graphCounts(graph) {
  let up = 0;
  let down = 0;
  for (const link of graph.links.values()) (link.up ? up++ : down++);
  return { switches: graph.switches.size, links: up, linksDown: down, hosts: graph.hosts.size };
}

/**
 * Applies one bus event (the JSON of an SSE message) to the graph in
 * place. Returns {changed, refresh}: whether anything drawn changed, and
 * whether the REST documents should be fetched again (new switch, a host
 * whose addresses are not in the event).
 */
export function applyEvent(graph, ev) {
  switch (ev.type) {
    case "link": {
      const key = linkKey(ev.src_dpid, ev.src_port, ev.dst_dpid, ev.dst_port);
      const link = graph.links.get(key);
      if (!link) {
        if (!ev.up) return { changed: false, refresh: false };
        const [a, b] = [
          { dpid: ev.src_dpid, port: ev.src_port },
          { dpid: ev.dst_dpid, port: ev.dst_port },
        ].sort((x, y) => (endpoint(x.dpid, x.port) < endpoint(y.dpid, y.port) ? -1 : 1));
        graph.links.set(key, { key, a, b, up: true, tree: false, directions: 1 });
        return { changed: true, refresh: true };
      }
      const was = link.up;
      link.up = !!ev.up;
      return { changed: was !== link.up, refresh: !!ev.up };
    }
    case "port": {
      if (ev.change !== "down" && ev.change !== "deleted") return { changed: false, refresh: false };
      let changed = false;
      for (const link of graph.links.values()) {
        const touches =
          (link.a.dpid === ev.dpid && link.a.port === ev.port) ||
          (link.b.dpid === ev.dpid && link.b.port === ev.port);
        if (touches && link.up) {
          link.up = false;
          changed = true;
        }
      }
      return { changed, refresh: false };
    }
    case "host": {
      if (ev.change === "gone") {
        return { changed: graph.hosts.delete(ev.mac), refresh: false };
      }
      const known = graph.hosts.get(ev.mac);
      if (known) {
        const moved = known.dpid !== ev.dpid || known.port !== ev.port;
        known.dpid = ev.dpid;
        known.port = ev.port;
        return { changed: moved, refresh: false };
      }
      graph.hosts.set(ev.mac, hostNode({ mac: ev.mac, dpid: ev.dpid, port: ev.port }));
      return { changed: true, refresh: true };
    }
    case "switch_up": {
      const sw = graph.switches.get(ev.dpid);
      if (sw) sw.up = true;
      return { changed: true, refresh: true };
    }
    case "switch_down": {
      const sw = graph.switches.get(ev.dpid);
      if (!sw) return { changed: false, refresh: false };
      sw.up = false;
      for (const link of graph.links.values()) {
        if (link.a.dpid === ev.dpid || link.b.dpid === ev.dpid) link.up = false;
      }
      return { changed: true, refresh: false };
    }
    default:
      return { changed: false, refresh: false };
  }
}

/** Drops links that are down (the operator's "forget"). */
export function forgetDownLinks(graph) {
  for (const [key, link] of graph.links) if (!link.up) graph.links.delete(key);
}

/** Nodes and edges for drawing: switches, hosts (attached to a known switch), links. */
export function drawable(graph) {
  const nodes = [...graph.switches.values(), ...[...graph.hosts.values()].filter((h) => graph.switches.has(h.dpid))];
  const edges = [];
  for (const link of graph.links.values()) {
    edges.push({ key: link.key, source: link.a.dpid, target: link.b.dpid, kind: "link", link });
  }
  for (const host of graph.hosts.values()) {
    if (graph.switches.has(host.dpid)) {
      edges.push({ key: "host|" + host.mac, source: host.mac, target: host.dpid, kind: "host", host });
    }
  }
  return { nodes, edges };
}

// ----------------------------------------------------------- the layout

/** A small deterministic hash of a string in [0, 1). */
export function unitHash(text) {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) / 4294967296;
}

/**
 * Fruchterman–Reingold force layout. `nodes`: [{id}], `edges`:
 * [{source, target}]; `positions`: Map id → {x, y} of an earlier layout
 * (kept as the start, so an update moves the picture little). New nodes
 * start next to a placed neighbour, else on a circle by the hash of their
 * id: the same input always gives the same picture. Returns a new Map id
 * → {x, y}, in a square of side `size` around (0, 0).
 */
export function forceLayout(nodes, edges, positions = new Map(), options = {}) {
  const size = options.size ?? 1000;
  const iterations = options.iterations ?? (positions.size ? 80 : 300);
  const n = nodes.length;
  const out = new Map();
  if (n === 0) return out;
  const index = new Map(nodes.map((node, i) => [node.id, i]));
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  const neighbours = nodes.map(() => []);
  const pairs = [];
  for (const e of edges) {
    const s = index.get(e.source);
    const t = index.get(e.target);
    if (s === undefined || t === undefined || s === t) continue;
    pairs.push([s, t]);
    neighbours[s].push(t);
    neighbours[t].push(s);
  }
  const placed = new Uint8Array(n);
  nodes.forEach((node, i) => {
    const p = positions.get(node.id);
    if (p) {
      x[i] = p.x;
      y[i] = p.y;
      placed[i] = 1;
    }
  });
  nodes.forEach((node, i) => {
    if (placed[i]) return;
    const angle = unitHash(node.id) * 2 * Math.PI;
    const near = neighbours[i].find((j) => placed[j]);
    if (near !== undefined) {
      x[i] = x[near] + 30 * Math.cos(angle);
      y[i] = y[near] + 30 * Math.sin(angle);
    } else {
      const r = (size / 3) * (0.5 + unitHash(node.id + "r") / 2);
      x[i] = r * Math.cos(angle);
      y[i] = r * Math.sin(angle);
    }
    placed[i] = 1;
  });
  const k = layoutSpacing(n, size);
  let temperature = positions.size ? size / 20 : size / 5;
  const cooling = temperature / (iterations + 1);
  const dx = new Float64Array(n);
  const dy = new Float64Array(n);
  for (let it = 0; it < iterations; it++) {
    dx.fill(0);
    dy.fill(0);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        let ddx = x[i] - x[j];
        let ddy = y[i] - y[j];
        let d2 = ddx * ddx + ddy * ddy;
        if (d2 < 0.01) {
          // Coincident nodes: push apart along a fixed, index-derived direction.
          ddx = 0.1 * Math.cos(i + j);
          ddy = 0.1 * Math.sin(i + j);
          d2 = 0.01;
        }
        const f = (k * k) / d2;
        dx[i] += ddx * f;
        dy[i] += ddy * f;
        dx[j] -= ddx * f;
        dy[j] -= ddy * f;
      }
    }
    for (const [s, t] of pairs) {
      const ddx = x[s] - x[t];
      const ddy = y[s] - y[t];
      const d = Math.sqrt(ddx * ddx + ddy * ddy) || 0.01;
      const f = d / k;
      dx[s] -= ddx * f;
      dy[s] -= ddy * f;
      dx[t] += ddx * f;
      dy[t] += ddy * f;
    }
    for (let i = 0; i < n; i++) {
      // Gravity keeps disconnected parts on the page.
      dx[i] -= x[i] * 0.02 * (k / 10);
      dy[i] -= y[i] * 0.02 * (k / 10);
      const d = Math.sqrt(dx[i] * dx[i] + dy[i] * dy[i]) || 1;
      const step = Math.min(d, temperature);
      x[i] += (dx[i] / d) * step;
      y[i] += (dy[i] / d) * step;
    }
    temperature = Math.max(temperature - cooling, 1);
  }
  // Nodes with the same neighbours (a fat-tree's cores) end up close:
  // push apart every pair nearer than the minimum separation.
  const minSep = k * MIN_SEPARATION;
  for (let pass = 0; pass < 60; pass++) {
    let moved = false;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        let ddx = x[i] - x[j];
        let ddy = y[i] - y[j];
        let d = Math.sqrt(ddx * ddx + ddy * ddy);
        if (d >= minSep) continue;
        if (d < 0.01) {
          ddx = Math.cos(i + j);
          ddy = Math.sin(i + j);
          d = 1;
        }
        const push = (minSep - d) / 2 / d;
        x[i] += ddx * push;
        y[i] += ddy * push;
        x[j] -= ddx * push;
        y[j] -= ddy * push;
        moved = true;
      }
    }
    if (!moved) break;
  }
  nodes.forEach((node, i) => out.set(node.id, { x: x[i], y: y[i] }));
  return out;
}

/** A layout's no-overlap distance, as a fraction of its spacing. */
export const MIN_SEPARATION = 0.8;

/** The ideal edge length of a layout of `count` nodes in a square of side `size`. */
export function layoutSpacing(count, size = 1000) {
  return Math.sqrt((size * size) / Math.max(count, 1)) * 0.6;
}

/** The SVG viewBox that shows every position with `margin` around. */
export function viewBox(positions, margin = 40) {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const { x, y } of positions.values()) {
    minX = Math.min(minX, x);
    minY = Math.min(minY, y);
    maxX = Math.max(maxX, x);
    maxY = Math.max(maxY, y);
  }
  if (!Number.isFinite(minX)) return { x: -100, y: -100, width: 200, height: 200 };
  const width = Math.max(maxX - minX, 100) + 2 * margin;
  const height = Math.max(maxY - minY, 100) + 2 * margin;
  return { x: (minX + maxX) / 2 - width / 2, y: (minY + maxY) / 2 - height / 2, width, height };
}

// ------------------------------------------------------------ counters

/** Per-second rate between two counter readings (0 after a reset). */
export function rate(previous, current, seconds) {
  if (previous === undefined || previous === null || !(seconds > 0)) return null;
  const delta = current - previous;
  return delta < 0 ? 0 : delta / seconds;
}

/**
 * Link load in bit/s from two samples of port counters:
 * `samples` Map "dpid/port" → {time (ms), tx_bytes, rx_bytes}. A link's
 * load is the larger of what its two ends transmitted.
 */
export function linkLoads(graph, before, after) {
  const loads = new Map();
  for (const link of graph.links.values()) {
    let best = null;
    for (const end of [link.a, link.b]) {
      const key = endpoint(end.dpid, end.port);
      const p = before.get(key);
      const c = after.get(key);
      if (!p || !c) continue;
      const r = rate(p.tx_bytes, c.tx_bytes, (c.time - p.time) / 1000);
      if (r !== null) best = Math.max(best ?? 0, r * 8);
    }
    if (best !== null) loads.set(link.key, best);
  }
  return loads;
}

/**
 * Appends to `history` (Map "dpid/port" → [{time (ms), rx, tx}] in bit/s)
 * the rates between two samples of port counters (as linkLoads takes
 * them), dropping points older than `keepMs` before the newest. Returns
 * `history`.
 */
export function recordPortRates(history, before, after, keepMs = 3600000) {
  for (const [key, c] of after) {
    const p = before.get(key);
    if (!p) continue;
    const seconds = (c.time - p.time) / 1000;
    const rx = rate(p.rx_bytes, c.rx_bytes, seconds);
    const tx = rate(p.tx_bytes, c.tx_bytes, seconds);
    if (rx === null || tx === null) continue;
    if (!history.has(key)) history.set(key, []);
    const points = history.get(key);
    points.push({ time: c.time, rx: rx * 8, tx: tx * 8 });
    while (points.length && points[0].time < c.time - keepMs) points.shift();
  }
  return history;
}

/** One field of rate points as plot points ({time (RFC 3339), value}). */
export function ratePoints(points, field) {
  return (points ?? []).map((p) => ({ time: new Date(p.time).toISOString(), value: p[field] }));
}

/** An SVG path through points with the scales of plotScales. */
export function seriesPath(points, sc) {
  return points
    .map((p, i) => `${i ? "L" : "M"}${sc.x(Date.parse(p.time)).toFixed(1)},${sc.y(p.value).toFixed(1)}`)
    .join(" ");
}

/** Stroke width for a load in bit/s (1 Gbit/s and up: the widest). */
export function loadWidth(bps) {
  if (!bps || bps < 1000) return 2;
  return Math.min(2 + Math.log10(bps / 1000) * 1.5, 11);
}

/** `1234567` → `1.23 M`; with a unit suffix. */
export function human(value, unit = "") {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const abs = Math.abs(value);
  const steps = [
    [1e12, "T"],
    [1e9, "G"],
    [1e6, "M"],
    [1e3, "k"],
  ];
  for (const [scale, prefix] of steps) {
    if (abs >= scale) return (value / scale).toFixed(abs / scale >= 100 ? 0 : 2) + " " + prefix + unit;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(abs >= 100 ? 0 : 2);
  return unit ? text + " " + unit : text;
}

// -------------------------------------------------------- SSE framing

/**
 * Splits Server-Sent Events text (HTML Living Standard §9.2.6) into
 * messages: returns {messages: [{event, data, id}], rest} where `rest` is
 * an incomplete tail to prepend to the next chunk. Comments (keep-alives)
 * are skipped.
 */
export function parseSse(text) {
  const messages = [];
  const normalized = text.replace(/\r\n?/g, "\n");
  const blocks = normalized.split("\n\n");
  const rest = blocks.pop();
  for (const block of blocks) {
    let event = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
    if (data.length) messages.push({ event, data: data.join("\n"), id });
  }
  return { messages, rest };
}

// ------------------------------------------------------------ events

/** One line of text for a bus event. */
export function describeEvent(ev) {
  switch (ev.type) {
    case "switch_up":
      return `switch ${switchLabel(ev.dpid)} (${ev.dpid}) connected, OpenFlow 0x0${ev.version}`;
    case "switch_down":
      return `switch ${switchLabel(ev.dpid)} (${ev.dpid}) disconnected`;
    case "port":
      return `port ${switchLabel(ev.dpid)}:${ev.port} (${ev.name}) ${ev.change}`;
    case "link":
      return `link ${switchLabel(ev.src_dpid)}:${ev.src_port} → ${switchLabel(ev.dst_dpid)}:${ev.dst_port} ${ev.up ? "up" : "down"}`;
    case "host":
      return `host ${ev.mac} ${ev.change} at ${switchLabel(ev.dpid)}:${ev.port}`;
    case "resource":
      return `${ev.module} ${ev.kind} ${ev.id} ${ev.action} (by ${ev.origin})`;
    case "rejected":
      return `${switchLabel(ev.dpid)} refused ${ev.owner}'s change: ${ev.error}`;
    case "module":
      return `${ev.module} ${ev.kind}: ${ev.message}`;
    default:
      return JSON.stringify(ev);
  }
}

/** The topic of a bus event, as the REST filter names it. */
export function topicOf(ev) {
  if (ev.type === "switch_up" || ev.type === "switch_down") return "switch";
  return ev.type;
}

/** Whether an event passes the Events view's filter {topics: Set, text}. */
export function eventMatches(ev, filter) {
  if (filter.topics && filter.topics.size && !filter.topics.has(topicOf(ev))) return false;
  const text = (filter.text ?? "").trim().toLowerCase();
  if (!text) return true;
  const haystack = (describeEvent(ev) + " " + JSON.stringify(ev)).toLowerCase();
  return text.split(/\s+/).every((word) => haystack.includes(word));
}

/** Whether an event is a warning (red in the log). */
export function isWarning(ev) {
  return (
    ev.type === "rejected" ||
    (ev.type === "module" && ev.level === "WARN") ||
    (ev.type === "link" && !ev.up) ||
    ev.type === "switch_down" ||
    (ev.type === "port" && (ev.change === "down" || ev.change === "deleted"))
  );
}

// ------------------------------------------------- what applies to a host

function ipv4ToInt(ip) {
  const parts = String(ip).split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    const v = Number(p);
    if (!Number.isInteger(v) || v < 0 || v > 255) return null;
    n = n * 256 + v;
  }
  return n;
}

/** Whether an address is inside a prefix (`10.0.0.0/24`, or an address). IPv6: exact or /0 only. */
export function inCidr(ip, cidr) {
  if (!cidr) return true;
  const [net, bitsText] = String(cidr).split("/");
  const a = ipv4ToInt(ip);
  const b = ipv4ToInt(net);
  if (a === null || b === null) {
    return bitsText === "0" || String(ip).toLowerCase() === net.toLowerCase();
  }
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  if (bits === 0) return true;
  const mask = bits >= 32 ? 0xffffffff : ~(0xffffffff >>> bits) >>> 0;
  return ((a & mask) >>> 0) === ((b & mask) >>> 0);
}

/**
 * Whether a packet match (firewall rule or QoS policy) can concern a host,
 * as source or destination: its MAC or addresses fit the match's
 * eth/ip fields. Returns "src", "dst", "both", "all" (matches any host) or
 * null.
 */
export function matchConcerns(match, host) {
  const m = match ?? {};
  const ips = [...(host.ipv4 ?? []), ...(host.ipv6 ?? [])];
  const side = (eth, ip) => {
    if (eth === undefined && ip === undefined) return null;
    if (eth !== undefined && eth.toLowerCase() !== host.mac.toLowerCase()) return false;
    if (ip !== undefined && !ips.some((a) => inCidr(a, ip))) return false;
    return true;
  };
  const src = side(m.eth_src, m.ip_src);
  const dst = side(m.eth_dst, m.ip_dst);
  if (src === null && dst === null) return "all";
  if (src && dst) return "both";
  if (src) return "src";
  if (dst) return "dst";
  return null;
}

/** Whether a firewall rule's scope covers the host's attachment (dpid, in_port). */
export function scopeCovers(scope, host) {
  if (!scope) return true;
  if (scope.dpid !== undefined && dpidInt(scope.dpid) !== dpidInt(host.dpid)) {
    // The rule sits on another switch; it can still see the host's traffic in transit.
    return "elsewhere";
  }
  if (scope.in_port !== undefined && scope.in_port !== host.port) return "elsewhere";
  return true;
}

/** The tenant network of a host by its MAC, from GET /networks and GET /ports. */
export function tenantOf(host, networks, ports) {
  const mac = host.mac.toLowerCase();
  const port = (ports ?? []).find((p) => (p.status?.mac ?? p.mac ?? "").toLowerCase() === mac);
  if (!port) return null;
  const network = (networks ?? []).find((n) => n.id === port.network) ?? null;
  return { port, network };
}

// ------------------------------------------------------------- plots

/**
 * Scales for a time-series plot: points [{time (RFC 3339), value}],
 * thresholds [{threshold, clear}]; the time axis ends at `now` (else the
 * last point) and spans `windowS`, or less when the history is shorter
 * (never under a minute). Returns {path (SVG
 * `d`), x(t ms) → px, y(v) → px, t0, t1, v0, v1} for a plot area of
 * `width` × `height` (y grows down).
 */
export function plotScales(points, thresholds, width, height, windowS = null, now = null) {
  const times = points.map((p) => Date.parse(p.time));
  const values = points.map((p) => p.value);
  for (const t of thresholds ?? []) values.push(t.threshold, t.clear ?? t.threshold);
  let t1 = now ?? (times.length ? Math.max(...times) : Date.now());
  let t0 = windowS ? t1 - windowS * 1000 : times.length ? Math.min(...times) : t1 - 600000;
  if (windowS && times.length) {
    // History shorter than the window: show what there is (at least a minute), not a sliver.
    const first = Math.min(...times);
    t0 = Math.max(t0, Math.min(first - (t1 - first) * 0.05, t1 - 60000));
  }
  if (t1 <= t0) t1 = t0 + 1000;
  let v0 = values.length ? Math.min(0, ...values) : 0;
  let v1 = values.length ? Math.max(...values) : 1;
  if (v1 <= v0) v1 = v0 + 1;
  v1 += (v1 - v0) * 0.08;
  const x = (t) => ((t - t0) / (t1 - t0)) * width;
  const y = (v) => height - ((v - v0) / (v1 - v0)) * height;
  const path = points
    .map((p, i) => `${i ? "L" : "M"}${x(times[i]).toFixed(1)},${y(p.value).toFixed(1)}`)
    .join(" ");
  return { path, x, y, t0, t1, v0, v1 };
}

/** Host-aware audit events that mark a plot: applied and reverted reactions (and threshold crossings). */
export function reactionMarks(events, rule = null) {
  const kinds = { ACTION_APPLIED: "applied", REVERTED: "reverted", THRESHOLD_MET: "threshold" };
  return (events ?? [])
    .filter((e) => kinds[e.kind] && (rule === null || e.rule === rule))
    .map((e) => ({ time: Date.parse(e.time), kind: kinds[e.kind], rule: e.rule, message: e.message }));
}

/** Where a rule's current value stands against its threshold: "past", "near" (within 10 %), "ok". */
export function thresholdState(value, comparator, threshold) {
  if (value === null || value === undefined) return "unknown";
  const past = {
    ">": value > threshold,
    ">=": value >= threshold,
    "<": value < threshold,
    "<=": value <= threshold,
  }[comparator];
  if (past) return "past";
  const span = Math.abs(threshold) * 0.1 || 0.1;
  return Math.abs(value - threshold) <= span ? "near" : "ok";
}

/** A firewall/QoS match as short text. */
export function matchText(match) {
  const m = match ?? {};
  const parts = [];
  for (const [k, v] of Object.entries(m)) parts.push(`${k}=${v}`);
  return parts.length ? parts.join(" ") : "any";
}
