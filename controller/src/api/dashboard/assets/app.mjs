// The dashboard page: fetches the REST API, follows the event stream,
// renders the views. The logic it relies on is in logic.mjs (unit-tested).
// No framework, no build step: DOM calls and SVG, data always inserted as
// text (never as HTML).
import * as L from "./logic.mjs";

const API = "/api/v1";
const TOKEN_KEY = "flowgate-token";
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  view: "topology",
  graph: L.emptyGraph(),
  positions: new Map(),
  selected: null, // {kind: "switch"|"host", id}
  counters: new Map(), // "dpid/port" -> {time, tx_bytes, rx_bytes}
  portHistory: new Map(), // "dpid/port" -> [{time, rx, tx}] bit/s
  loads: new Map(), // link key -> bit/s
  events: [], // newest last
  eventsPaused: false,
  fwSamples: new Map(), // rule id -> {time, packets}
  streamAbort: null,
  timers: [],
  cache: {}, // fetched documents for the host details
  closedOwners: new Set(["core", "topology"]), // flow groups folded in the switch details
};

// ------------------------------------------------------------ helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

/** Replaces an element's children (nested arrays flattened, nulls skipped). */
function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function headers(json) {
  const out = { Accept: "application/json" };
  if (token()) out.Authorization = "Bearer " + token();
  if (json) out["Content-Type"] = "application/json";
  return out;
}

class ApiFailure extends Error {
  constructor(status, body, path) {
    super((body && (body.reason || body.error)) || "HTTP " + status);
    this.status = status;
    this.body = body;
    this.path = path;
  }
}

async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: headers(options.body !== undefined) };
  if (options.body !== undefined) init.body = JSON.stringify(options.body);
  const res = await fetch(API + path, init);
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) throw new ApiFailure(res.status, body, path);
  return body;
}

function showBanner(message) {
  const b = $("banner");
  if (!message) {
    b.hidden = true;
    b.textContent = "";
    return;
  }
  b.hidden = false;
  b.textContent = message;
}

function failure(err) {
  if (err instanceof ApiFailure && err.status === 401) {
    showBanner("The API needs a token: enter it in the header (kept for this tab only).");
  } else {
    showBanner("Request failed: " + (err.path ? err.path + ": " : "") + err.message);
  }
}

/** Runs an async task, reporting its failure on the page (never in the console). */
function run(task) {
  return Promise.resolve()
    .then(task)
    .catch((err) => failure(err));
}

function debounce(fn, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(() => run(fn), ms);
  };
}

function table(columns, rows, attrs = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      attrs,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
      h("tbody", {}, rows),
    ),
  );
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")]));
}

function tag(text, cls) {
  return h("span", { class: "tag " + (cls ?? text) }, text);
}

function timeOf(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString();
}

// ------------------------------------------------------------- views

const VIEWS = ["topology", "tenants", "policies", "metrics", "events"];

function selectView(view, focus = false) {
  if (!VIEWS.includes(view)) view = "topology";
  state.view = view;
  for (const v of VIEWS) {
    const tab = $("tab-" + v);
    const on = v === view;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $("view-" + v).hidden = !on;
  }
  if (focus) $("tab-" + view).focus();
  if (location.hash !== "#" + view) history.replaceState(null, "", "#" + view);
  schedule();
}

/** Polling for the visible view (the stream keeps the rest current). */
function schedule() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  const every = (ms, fn) => {
    run(fn);
    state.timers.push(setInterval(() => run(fn), ms));
  };
  switch (state.view) {
    case "topology":
      every(15000, refreshTopology);
      every(3000, pollCounters);
      break;
    case "tenants":
      every(10000, refreshTenants);
      break;
    case "policies":
      every(2000, refreshPolicies);
      break;
    case "metrics":
      every(5000, refreshMetrics);
      every(3000, pollCounters);
      break;
    case "events":
      renderEvents();
      break;
  }
}

// ---------------------------------------------------------- topology

async function refreshTopology() {
  const [doc, hosts] = await Promise.all([api("/topology"), api("/hosts")]);
  state.graph = L.buildGraph(doc, hosts, state.graph);
  layout(false);
  drawGraph();
  showBanner(null);
}

function layout(again) {
  const { nodes, edges } = L.drawable(state.graph);
  const ids = new Set(nodes.map((n) => n.id));
  const same = !again && nodes.every((n) => state.positions.has(n.id)) && state.positions.size === ids.size;
  if (same) return;
  const keep = new Map();
  if (!again) for (const [id, p] of state.positions) if (ids.has(id)) keep.set(id, p);
  state.positions = L.forceLayout(nodes, edges, keep);
}

function drawGraph() {
  const graph = state.graph;
  const { nodes, edges } = L.drawable(graph);
  const pos = state.positions;
  const box = L.viewBox(pos);
  const svg = $("graph");
  svg.setAttribute("viewBox", `${box.x} ${box.y} ${box.width} ${box.height}`);
  // Glyphs keep their size on screen whatever the layout's extent: one
  // drawing unit per pixel at the scale the viewBox is shown at.
  // Capped so that glyphs (44 units across) never overlap: the layout keeps
  // nodes MIN_SEPARATION x spacing apart.
  const separation = L.layoutSpacing(nodes.length) * L.MIN_SEPARATION;
  const unit = Math.min(
    Math.max(box.width / (svg.clientWidth || 800), box.height / (svg.clientHeight || 500)),
    separation / 44,
  );
  const focused = document.activeElement?.dataset?.id;

  const links = [];
  const hostLinks = [];
  for (const e of edges) {
    const a = pos.get(e.source);
    const b = pos.get(e.target);
    if (!a || !b) continue;
    if (e.kind === "link") {
      const link = e.link;
      const load = state.loads.get(link.key);
      const cls = "link" + (link.up ? (link.tree ? " tree" : "") : " down");
      const title = `${L.switchLabel(link.a.dpid)}:${link.a.port} – ${L.switchLabel(link.b.dpid)}:${link.b.port}` +
        (link.up ? (link.tree ? " (spanning tree)" : "") : " DOWN") +
        (load !== undefined ? ` · ${L.human(load, "bit/s")}` : "");
      links.push(
        s("line", {
          class: cls,
          x1: a.x, y1: a.y, x2: b.x, y2: b.y,
          "stroke-width": link.up ? L.loadWidth(load) : 3,
          "data-key": link.key,
          "data-state": link.up ? "up" : "down",
        }, s("title", {}, title)),
      );
    } else {
      hostLinks.push(s("line", { class: "hostlink", x1: a.x, y1: a.y, x2: b.x, y2: b.y }));
    }
  }
  const nodeEls = nodes.map((n) => {
    const p = pos.get(n.id);
    const selected = state.selected && state.selected.id === n.id;
    const label = n.kind === "switch"
      ? `Switch ${n.label}, dpid ${n.id}${n.up ? "" : ", disconnected"}`
      : `Host ${n.label}, MAC ${n.mac}, at ${L.switchLabel(n.dpid)} port ${n.port}`;
    const cls = `node ${n.kind}${n.up === false ? " down" : ""}${n.kind === "switch" && !n.ready ? " notready" : ""}${selected ? " selected" : ""}`;
    const shape = n.kind === "switch"
      ? s("rect", { class: "shape", x: -18, y: -12, width: 36, height: 24, rx: 5 })
      : s("circle", { class: "shape", r: 8 });
    const text = n.kind === "switch"
      ? s("text", { "text-anchor": "middle", dy: 4 }, n.label)
      : s("text", { "text-anchor": "middle", dy: 20 }, n.label);
    const g = s("g", {
      class: cls,
      transform: `translate(${p.x.toFixed(1)},${p.y.toFixed(1)}) scale(${unit.toFixed(3)})`,
      tabindex: 0,
      role: "button",
      "aria-label": label,
      "aria-pressed": selected ? "true" : "false",
      "data-id": n.id,
      "data-kind": n.kind,
      onclick: () => select(n.kind, n.id),
      onkeydown: (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          select(n.kind, n.id);
        }
      },
    }, s("title", {}, label), shape, text);
    return g;
  });
  fill($("g-links"), ...links);
  fill($("g-hostlinks"), ...hostLinks);
  fill($("g-nodes"), ...nodeEls);
  if (focused) {
    const again = [...$("g-nodes").children].find((g) => g.dataset.id === focused);
    again?.focus();
  }
  const c = L.graphCounts(graph);
  $("topo-counts").textContent =
    `${c.switches} switches · ${c.links} links${c.linksDown ? ` (${c.linksDown} down)` : ""} · ${c.hosts} hosts`;
  $("topo-counts").dataset.switches = c.switches;
  $("topo-counts").dataset.links = c.links;
  $("topo-counts").dataset.linksDown = c.linksDown;
  $("topo-counts").dataset.hosts = c.hosts;
}

async function pollCounters() {
  const now = Date.now();
  const before = state.counters;
  const after = new Map();
  const dpids = [...state.graph.switches.keys()];
  const results = await Promise.all(
    dpids.map((dpid) => api(`/switches/${dpid}/ports`).then((ports) => [dpid, ports], () => [dpid, null])),
  );
  for (const [dpid, ports] of results) {
    for (const p of ports ?? []) {
      if (p.stats) after.set(`${dpid}/${p.port_no}`, { time: now, tx_bytes: p.stats.tx_bytes, rx_bytes: p.stats.rx_bytes });
    }
  }
  state.counters = after;
  L.recordPortRates(state.portHistory, before, after);
  if (before.size) {
    state.loads = L.linkLoads(state.graph, before, after);
    if (state.view === "topology") drawGraph();
  }
  if (state.view === "metrics") renderPortRates();
  if (state.selected?.kind === "switch" && state.view === "topology") await showSwitch(state.selected.id);
}

function select(kind, id) {
  state.selected = { kind, id };
  drawGraph();
  run(() => (kind === "switch" ? showSwitch(id) : showHost(id)));
}

async function showSwitch(dpid) {
  const [info, ports, flows] = await Promise.all([
    api(`/switches/${dpid}`),
    api(`/switches/${dpid}/ports`),
    api(`/switches/${dpid}/flows`),
  ]);
  if (state.selected?.id !== dpid) return;
  const roles = new Map((state.graph.switches.get(dpid)?.ports ?? []).map((p) => [p.port_no, p.role]));
  const portRows = ports.map((p) =>
    h("tr", {},
      h("td", {}, p.local ? "local" : p.port_no, " ", h("span", { class: "muted" }, p.name)),
      h("td", {}, tag(p.link_up ? "up" : "down"), " ", roles.get(p.port_no) ?? ""),
      h("td", { class: "num" }, `${L.human(p.stats?.rx_packets)} / ${L.human(p.stats?.tx_packets)}`),
      h("td", { class: "num" }, `${L.human(p.stats?.rx_bytes, "B")} / ${L.human(p.stats?.tx_bytes, "B")}`),
      h("td", { class: "num" }, (p.stats?.rx_dropped ?? 0) + (p.stats?.tx_dropped ?? 0)),
    ));
  const groups = L.groupFlowsByOwner(flows);
  const flowGroups = groups.map((g) =>
    h("details", {
      open: state.closedOwners.has(g.owner) ? null : true,
      ontoggle: (ev) => {
        if (ev.target.open) state.closedOwners.delete(g.owner);
        else state.closedOwners.add(g.owner);
      },
    },
      h("summary", {}, `${g.owner} (${g.flows.length})`),
      table(
        [{ label: "table", num: true }, { label: "prio", num: true }, { label: "cookie: object" }, { label: "match" }, { label: "instructions" }, { label: "packets", num: true }],
        g.flows.map((f) =>
          h("tr", {},
            h("td", { class: "num" }, f.table_id),
            h("td", { class: "num" }, f.priority),
            h("td", {}, f.decoded.label),
            h("td", { class: "mono" }, Object.entries(f.match_fields ?? {}).map(([k, v]) => `${k}=${v}`).join(" ") || "any"),
            h("td", { class: "mono" }, (f.instructions ?? []).join("; ")),
            h("td", { class: "num" }, f.packet_count),
          )),
        { "aria-label": `${g.owner} flows` },
      )));
  fill($("details"),
    h("h2", {}, `Switch ${L.switchLabel(dpid)}`),
    kv([
      ["dpid", dpid],
      ["address", info.address],
      ["OpenFlow", info.version],
      ["since", timeOf(info.connected_since)],
      ["switch", info.desc ? `${info.desc.mfr} ${info.desc.sw}` : null],
      ["tables", info.n_tables],
      ["modules off here", info.unavailable_modules?.length ? info.unavailable_modules.join(", ") : "none"],
    ]),
    h("h3", {}, `Ports (${ports.length})`),
    table(
      [{ label: "port" }, { label: "state" }, { label: "packets rx / tx", num: true }, { label: "bytes rx / tx", num: true }, { label: "drops", num: true }],
      portRows,
      { "aria-label": "ports" },
    ),
    h("h3", {}, `Flows by owner module (${flows.length})`),
    flowGroups,
  );
}

async function cached(key, path, maxAgeMs = 5000) {
  const hit = state.cache[key];
  if (hit && Date.now() - hit.time < maxAgeMs) return hit.value;
  const value = await api(path).catch(() => null);
  state.cache[key] = { time: Date.now(), value };
  return value;
}

async function showHost(mac) {
  const host = state.graph.hosts.get(mac);
  if (!host) return;
  const [networks, ports, rules, qos, vips, pools, monitored] = await Promise.all([
    cached("networks", "/networks"),
    cached("ports", "/ports"),
    cached("fwrules", "/firewall/rules"),
    cached("qos", "/qos/policies"),
    cached("vips", "/lb/vips"),
    cached("pools", "/lb/pools"),
    cached("hahosts", "/hostaware/hosts"),
  ]);
  if (state.selected?.id !== mac) return;
  const tenant = L.tenantOf(host, networks, ports);
  const ips = [...host.ipv4, ...host.ipv6];
  const fw = (rules ?? [])
    .map((r) => ({ r, side: L.matchConcerns(r.match, host), where: L.scopeCovers(r.scope, host) }))
    .filter((x) => x.side !== null);
  const qp = (qos ?? []).map((p) => ({ p, side: L.matchConcerns(p.match, host) })).filter((x) => x.side !== null);
  const memberOf = (pools ?? []).filter((p) => (p.members ?? []).some((m) => ips.includes(m.address)));
  const vipsOf = (vips ?? []).filter((v) => memberOf.some((p) => p.id === v.pool));
  const ha = (monitored ?? []).filter((m) => (m.ip && ips.includes(m.ip)) || (m.mac && m.mac.toLowerCase() === mac));
  const side = (x) => (x === "all" ? "all traffic" : x === "both" ? "as source and destination" : "as " + (x === "src" ? "source" : "destination"));
  fill($("details"),
    h("h2", {}, `Host ${host.label}`),
    kv([
      ["MAC", mac],
      ["IPv4", host.ipv4.join(", ") || null],
      ["IPv6", host.ipv6.join(", ") || null],
      ["VLAN", host.vlan],
      ["at", `${L.switchLabel(host.dpid)} (${host.dpid}) port ${host.port}`],
      ["tenant", tenant ? `${tenant.network?.tenant ?? "?"} · network ${tenant.port.network}${tenant.network ? " (VNI " + tenant.network.vni + ")" : ""} · port ${tenant.port.id}` : "none (provider network)"],
    ]),
    h("h3", {}, `Firewall rules concerning it (${fw.length})`),
    fw.length
      ? h("ul", {}, fw.map(({ r, side: sd, where }) => h("li", {}, `#${r.id} `, tag(r.action, r.action.startsWith("allow") ? "allow" : "deny"), ` prio ${r.priority}: ${L.matchText(r.match)} — ${side(sd)}${where === "elsewhere" ? " (scoped to another switch/port)" : ""}`)))
      : h("p", { class: "muted" }, "None."),
    h("h3", {}, `QoS policies (${qp.length})`),
    qp.length ? h("ul", {}, qp.map(({ p, side: sd }) => h("li", {}, `#${p.id} ${p.name ?? ""}: ${L.matchText(p.match)} — ${side(sd)}`))) : h("p", { class: "muted" }, "None."),
    h("h3", {}, "Load balancer"),
    vipsOf.length || memberOf.length
      ? h("ul", {}, memberOf.map((p) => h("li", {}, `member of pool ${p.id}${vipsOf.filter((v) => v.pool === p.id).map((v) => ` (VIP ${v.id} ${v.address}:${v.port})`).join("")}`)))
      : h("p", { class: "muted" }, "Not a pool member."),
    h("h3", {}, "Host-aware"),
    ha.length
      ? h("ul", {}, ha.map((m) => h("li", {}, `monitored as ${m.id}; rules past threshold: ${(m.status?.active_rules ?? []).join(", ") || "none"}; reactions: ${(m.status?.reactions ?? []).map((r) => r.action).join(", ") || "none"}`)))
      : h("p", { class: "muted" }, "Not monitored."),
  );
}

// ----------------------------------------------------------- tenants

async function refreshTenants() {
  const [networks, ports, chassis] = await Promise.all([
    api("/networks").catch(() => []),
    api("/ports").catch(() => []),
    api("/chassis").catch(() => []),
  ]);
  const count = (id) => ports.filter((p) => p.network === id).length;
  fill($("tenants-networks"),
    networks.length
      ? table(
        [{ label: "network" }, { label: "name" }, { label: "tenant" }, { label: "VNI", num: true }, { label: "subnet" }, { label: "gateway" }, { label: "ports", num: true }],
        networks.map((n) => h("tr", {}, h("td", {}, n.id), h("td", {}, n.name), h("td", {}, n.tenant), h("td", { class: "num" }, n.vni), h("td", {}, n.subnet ?? "–"), h("td", {}, n.gateway ?? "–"), h("td", { class: "num" }, count(n.id)))),
        { "aria-label": "tenant networks" },
      )
      : h("p", { class: "muted" }, "No tenant networks."),
  );
  const byPlace = new Map();
  for (const p of ports) {
    const place = p.status?.chassis ?? (p.status?.dpid ? "switch " + L.switchLabel(p.status.dpid) : "not bound");
    if (!byPlace.has(place)) byPlace.set(place, []);
    byPlace.get(place).push(p);
  }
  fill($("tenants-ports"),
    byPlace.size
      ? [...byPlace.entries()].sort().map(([place, list]) =>
        h("details", { open: true },
          h("summary", {}, `${place} (${list.length})`),
          table(
            [{ label: "port" }, { label: "network" }, { label: "binding" }, { label: "MAC" }, { label: "addresses" }, { label: "bound" }, { label: "switch port" }],
            list.map((p) => h("tr", {},
              h("td", {}, p.id), h("td", {}, p.network),
              h("td", {}, p.iface_id ? "iface-id " + p.iface_id : p.switch ? `${L.switchLabel(p.switch.dpid)} ${p.switch.port}` : "–"),
              h("td", { class: "mono" }, p.status?.mac ?? p.mac ?? "–"),
              h("td", {}, (p.status?.ips ?? p.ips ?? []).join(", ") || "–"),
              h("td", {}, tag(p.status?.bound ? "up" : "down", p.status?.bound ? "up" : "down")),
              h("td", {}, p.status?.dpid ? `${L.switchLabel(p.status.dpid)}:${p.status.port_no ?? "?"}` : "–"))),
          )))
      : h("p", { class: "muted" }, "No tenant ports."),
  );
  fill($("tenants-chassis"),
    chassis.length
      ? chassis.map((c) =>
        h("details", { open: true },
          h("summary", {}, `${c.name || c.id} `, tag(c.connected ? "connected" : "disconnected", c.connected ? "up" : "down"), ` ${c.encap_ip ?? ""}`),
          kv([
            ["chassis id", c.id],
            ["connection", `${c.mode}${c.target ? " " + c.target : ""}${c.peer ? " from " + c.peer : ""}`],
            ["bridge", c.bridge ? `${c.bridge.name} (${c.bridge.datapath_type}) ${c.bridge.dpid ?? ""}` : null],
            ["last error", c.last_error],
          ]),
          c.tunnels?.length
            ? table(
              [{ label: "tunnel" }, { label: "peer" }, { label: "type" }, { label: "remote" }, { label: "state" }],
              c.tunnels.map((t) => h("tr", {}, h("td", {}, t.name), h("td", {}, t.peer), h("td", {}, t.type), h("td", {}, t.remote_ip ?? "–"),
                h("td", {}, t.error ? tag("error", "bad") : tag(t.link_state ?? "unknown", t.link_state === "up" ? "up" : t.link_state === "down" ? "down" : "warn"), t.error ? " " + t.error : ""))),
              { "aria-label": `tunnels of ${c.name || c.id}` },
            )
            : h("p", { class: "muted" }, "No tunnels.")))
      : h("p", { class: "muted" }, "No cloud hosts connected over OVSDB."),
  );
}

// ---------------------------------------------------------- policies

async function refreshPolicies() {
  const [rules, policy, qos, vips, haRules] = await Promise.all([
    api("/firewall/rules").catch(() => []),
    api("/firewall/policy").catch(() => null),
    api("/qos/policies").catch(() => []),
    api("/lb/vips").catch(() => []),
    api("/hostaware/rules").catch(() => []),
  ]);
  const [fwStats, qosStats, vipStats] = await Promise.all([
    Promise.all(rules.map((r) => api(`/firewall/rules/${r.id}/stats`).catch(() => null))),
    Promise.all(qos.map((p) => api(`/qos/policies/${p.id}/stats`).catch(() => null))),
    Promise.all(vips.map((v) => api(`/lb/vips/${encodeURIComponent(v.id)}/stats`).catch(() => null))),
  ]);
  renderFirewall(rules, policy, fwStats);
  renderQos(qos, qosStats);
  renderLb(vips, vipStats);
  renderHostAware(haRules);
}

function renderFirewall(rules, policy, stats) {
  $("fw-policy").textContent = policy
    ? policy.enabled ? `(default ${policy.default_action})` : "(firewall disabled: no ACL entries)"
    : "";
  const now = Date.now();
  const rows = rules.map((r, i) => {
    const st = stats[i];
    const prev = state.fwSamples.get(r.id);
    const pps = st && prev ? L.rate(prev.packets, st.packets, (now - prev.time) / 1000) : null;
    if (st) state.fwSamples.set(r.id, { time: now, packets: st.packets });
    const scope = Object.entries(r.scope ?? {}).map(([k, v]) => `${k}=${v}`).join(" ") || "everywhere";
    return h("tr", { "data-rule": r.id },
      h("td", { class: "num" }, r.id),
      h("td", { class: "num" }, r.priority),
      h("td", {}, tag(r.action, r.action.startsWith("allow") ? "allow" : "deny")),
      h("td", { class: "mono" }, L.matchText(r.match)),
      h("td", {}, scope),
      h("td", {}, r.origin ?? r.description ?? ""),
      h("td", { class: "num" }, st ? st.flows : "–"),
      h("td", { class: "num fw-packets", "data-packets": st ? st.packets : "" }, st ? L.human(st.packets) : "–"),
      h("td", { class: "num" }, st ? L.human(st.bytes, "B") : "–"),
      h("td", { class: "num" }, pps === null ? "–" : L.human(pps)),
    );
  });
  fill($("policies-firewall"),
    rules.length
      ? table(
        [{ label: "id", num: true }, { label: "prio", num: true }, { label: "action" }, { label: "match" }, { label: "scope" }, { label: "origin / note" }, { label: "flows", num: true }, { label: "packets", num: true }, { label: "bytes", num: true }, { label: "pkt/s", num: true }],
        rows,
        { id: "fw-table", "aria-label": "firewall rules with hit counters" },
      )
      : h("p", { class: "muted" }, "No firewall rules."),
  );
}

function renderQos(policies, stats) {
  const actions = (a) => {
    const out = [];
    if (a?.meter) out.push("meter " + Object.entries(a.meter).map(([k, v]) => `${k}=${v}`).join(" "));
    if (a?.queue) out.push(`queue ${a.queue.id}${a.queue.port ? " on " + a.queue.port : ""}`);
    if (a?.dscp !== undefined && a?.dscp !== null) out.push("dscp " + a.dscp);
    return out.join(", ");
  };
  fill($("policies-qos"),
    policies.length
      ? table(
        [{ label: "id", num: true }, { label: "name" }, { label: "prio", num: true }, { label: "match" }, { label: "actions" }, { label: "switches" }, { label: "packets", num: true }, { label: "over rate", num: true }],
        policies.map((p, i) => {
          const st = stats[i];
          const over = st ? st.switches.reduce((n, sw) => n + (sw.meter ? sw.meter.band_packets.reduce((a, b) => a + b, 0) : 0), 0) : null;
          return h("tr", {},
            h("td", { class: "num" }, p.id), h("td", {}, p.name ?? ""), h("td", { class: "num" }, p.priority),
            h("td", { class: "mono" }, L.matchText(p.match)), h("td", {}, actions(p.actions)),
            h("td", {}, p.unplaced ? tag("unplaced: " + p.unplaced, "warn") : (p.switches ?? []).map(L.switchLabel).join(" ")),
            h("td", { class: "num" }, st ? L.human(st.packets) : "–"),
            h("td", { class: "num" }, over === null ? "–" : L.human(over)));
        }),
        { "aria-label": "QoS policies" },
      )
      : h("p", { class: "muted" }, "No QoS policies."),
  );
}

function renderLb(vips, stats) {
  if (!vips.length) {
    fill($("policies-lb"), h("p", { class: "muted" }, "No VIPs."));
    return;
  }
  fill($("policies-lb"),
    ...vips.map((v, i) => {
      const st = stats[i];
      const members = st?.members ?? [];
      const total = members.reduce((n, m) => n + m.connections, 0);
      return h("details", { open: true },
        h("summary", {}, `VIP ${v.id}: ${v.address}:${v.port}/${v.protocol} → pool ${v.pool} (${v.method})`),
        members.length
          ? table(
            [{ label: "member" }, { label: "admin" }, { label: "health" }, { label: "in rotation" }, { label: "weight", num: true }, { label: "bucket", num: true }, { label: "connections", num: true }, { label: "split" }, { label: "" }],
            members.map((m) => {
              const share = total ? m.connections / total : 0;
              const health = m.health ? m.health.state : "no monitor";
              const draining = m.admin_state === "drain";
              return h("tr", {},
                h("td", { class: "mono" }, `${m.address}:${m.port}`),
                h("td", {}, tag(m.admin_state, m.admin_state)),
                h("td", {}, tag(health, health === "up" ? "up" : health === "down" ? "down" : "warn"), m.health?.reason ? " " + m.health.reason : ""),
                h("td", {}, m.in_rotation ? "yes" : "no"),
                h("td", { class: "num" }, m.weight),
                h("td", { class: "num" }, m.bucket_weights?.[v.id] ?? "–"),
                h("td", { class: "num" }, m.connections),
                h("td", {}, h("span", { class: "meter" }, barEl(share)), ` ${(share * 100).toFixed(0)} %`),
                h("td", {}, h("button", {
                  type: "button",
                  disabled: m.origin ? true : null,
                  title: m.origin ? `set by ${m.origin}` : null,
                  onclick: () => run(() => setMemberState(v.pool, m, draining ? "enabled" : "drain")),
                }, draining ? "Enable" : "Drain")));
            }),
            { "aria-label": `members of VIP ${v.id}` },
          )
          : h("p", { class: "muted" }, st ? "No members." : "Counters unavailable."));
    }),
  );
}

function barEl(fraction, cls = "") {
  const width = Math.max(0, Math.min(1, fraction)) * 90;
  const el = h("span", { class: "bar " + cls });
  el.style.width = width.toFixed(0) + "px";
  return el;
}

async function setMemberState(pool, m, adminState) {
  const body = { address: m.address, port: m.port, weight: m.weight, admin_state: adminState };
  const key = m.address.includes(":") ? `[${m.address}]:${m.port}` : `${m.address}:${m.port}`;
  await api(`/lb/pools/${encodeURIComponent(pool)}/members/${encodeURIComponent(key)}`, { method: "PUT", body });
  await refreshPolicies();
}

function renderHostAware(rules) {
  if (!rules.length) {
    fill($("policies-hostaware"), h("p", { class: "muted" }, "No host-aware rules."));
    return;
  }
  const rows = [];
  for (const r of rules) {
    const hosts = Object.keys(r.status?.values ?? {});
    const sel = Object.entries(r.hosts ?? {}).map(([k, v]) => `${k} ${v}`).join(", ");
    const head = [
      h("td", { class: "num" }, r.id),
      h("td", {}, r.name ?? "", r.origin ? ` (${r.origin})` : ""),
      h("td", { class: "mono" }, `${r.metric} ${r.comparator} ${r.threshold}${r.clear !== undefined && r.clear !== null ? " (clear " + r.clear + ")" : ""}`),
      h("td", {}, r.action?.type ?? ""),
    ];
    const toggle = h("button", {
      type: "button",
      "aria-pressed": r.enabled ? "true" : "false",
      disabled: r.origin ? true : null,
      onclick: () => run(() => setRuleEnabled(r, !r.enabled)),
    }, r.enabled ? "Disable" : "Enable");
    const control = h("td", {}, tag(r.enabled ? "enabled" : "disabled"), " ", toggle);
    if (!hosts.length) {
      rows.push(h("tr", {}, head, h("td", {}, sel), h("td", { class: "muted" }, "no value yet"), h("td", {}), control));
      continue;
    }
    hosts.forEach((host, i) => {
      const value = r.status.values[host];
      const st = L.thresholdState(value, r.comparator, r.threshold);
      const acting = (r.status.acting_on ?? []).includes(host);
      const fraction = r.threshold ? value / (r.threshold * 1.5) : 0;
      rows.push(h("tr", {},
        i === 0 ? head : head.map(() => h("td", {})),
        h("td", {}, host),
        h("td", { class: "num" }, L.human(value), " ", h("span", { class: "meter" }, barEl(fraction, st))),
        h("td", {}, tag(st === "past" ? "past threshold" : st, st), acting ? " " : "", acting ? tag("acting", "bad") : ""),
        i === 0 ? control : h("td", {})));
    });
  }
  fill($("policies-hostaware"),
    table(
      [{ label: "id", num: true }, { label: "rule" }, { label: "condition" }, { label: "action" }, { label: "host" }, { label: "value", num: true }, { label: "state" }, { label: "" }],
      rows,
      { "aria-label": "host-aware rules with current values" },
    ),
  );
}

async function setRuleEnabled(rule, enabled) {
  const body = { ...rule, enabled };
  delete body.status;
  delete body.origin;
  await api(`/hostaware/rules/${rule.id}`, { method: "PUT", body });
  await refreshPolicies();
}

// ----------------------------------------------------------- metrics

async function refreshMetrics() {
  const hosts = await api("/hostaware/hosts").catch(() => []);
  const hostSel = $("metric-host");
  const metricSel = $("metric-name");
  const current = hostSel.value;
  if (hostSel.options.length !== hosts.length || [...hostSel.options].some((o, i) => o.value !== hosts[i]?.id)) {
    hostSel.replaceChildren(...hosts.map((x) => h("option", { value: x.id }, x.id)));
    if (hosts.some((x) => x.id === current)) hostSel.value = current;
  }
  const host = hosts.find((x) => x.id === hostSel.value);
  if (!host) {
    fill($("plot"));
    $("plot-caption").textContent = "No host-aware hosts yet (POST /api/v1/hostaware/hosts).";
    return;
  }
  const metrics = Object.keys(host.status?.metrics ?? {});
  const currentMetric = metricSel.value;
  if (metricSel.options.length !== metrics.length || [...metricSel.options].some((o, i) => o.value !== metrics[i])) {
    metricSel.replaceChildren(...metrics.map((m) => h("option", { value: m }, m)));
    if (metrics.includes(currentMetric)) metricSel.value = currentMetric;
  }
  const metric = metricSel.value;
  if (!metric) {
    fill($("plot"));
    $("plot-caption").textContent = `${host.id}: no rule polls a metric of this host yet.`;
    return;
  }
  const windowS = Number($("metric-window").value);
  const [history, audit] = await Promise.all([
    api(`/hostaware/hosts/${encodeURIComponent(host.id)}/metrics/${encodeURIComponent(metric)}?window=${windowS}`),
    api(`/hostaware/events?host=${encodeURIComponent(host.id)}`).catch(() => []),
  ]);
  const ruleIds = new Set((history.thresholds ?? []).map((t) => t.rule));
  const marks = L.reactionMarks(audit).filter((m) => m.rule === undefined || ruleIds.has(m.rule) || !ruleIds.size);
  drawPlot(history, marks, windowS);
  const status = host.status?.metrics?.[metric];
  $("plot-caption").textContent =
    `${host.id} · ${metric} · ${history.points.length} points over ${windowS / 60} min` +
    (status?.value !== undefined ? ` · now ${L.human(status.value)}` : "") +
    (status?.error ? ` · ${status.error}` : "") +
    ((history.thresholds ?? []).length ? " · red: threshold, green dashed: clear; marks: red applied, green reverted" : "");
  fill($("metric-reactions"),
    marks.length
      ? table(
        [{ label: "time" }, { label: "what" }, { label: "rule", num: true }, { label: "message" }],
        marks.slice(-20).reverse().map((m) => h("tr", {}, h("td", {}, new Date(m.time).toLocaleTimeString()), h("td", {}, tag(m.kind, m.kind === "applied" ? "bad" : m.kind === "reverted" ? "ok" : "warn")), h("td", { class: "num" }, m.rule ?? ""), h("td", {}, m.message))),
        { "aria-label": "reactions on this host" },
      )
      : h("p", { class: "muted" }, "No reactions on this host."),
  );
}

function drawPlot(history, marks, windowS) {
  plotInto($("plot"), [{ points: history.points, cls: "" }], history.thresholds ?? [], marks, windowS);
}

/** Draws series [{points, cls}] with threshold lines and marks into an 800×300 SVG. */
function plotInto(svg, series, thresholds, marks, windowS) {
  const W = 800;
  const H = 300;
  const left = 64;
  const bottom = 22;
  const pw = W - left - 8;
  const ph = H - bottom - 8;
  const all = series.flatMap((x) => x.points);
  const sc = L.plotScales(all, thresholds, pw, ph, windowS, Date.now());
  const inner = [];
  inner.push(s("line", { class: "plot-axis", x1: 0, y1: ph, x2: pw, y2: ph }));
  inner.push(s("line", { class: "plot-axis", x1: 0, y1: 0, x2: 0, y2: ph }));
  for (let i = 0; i <= 4; i++) {
    const v = sc.v0 + ((sc.v1 - sc.v0) * i) / 4;
    inner.push(s("text", { class: "plot-label", x: -6, y: sc.y(v) + 4, "text-anchor": "end" }, L.human(v)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = sc.t0 + ((sc.t1 - sc.t0) * i) / 4;
    inner.push(s("text", { class: "plot-label", x: sc.x(t), y: ph + 16, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, new Date(t).toLocaleTimeString()));
  }
  for (const t of thresholds) {
    inner.push(s("line", { class: "plot-threshold", x1: 0, x2: pw, y1: sc.y(t.threshold), y2: sc.y(t.threshold) }, s("title", {}, `rule ${t.rule}: ${t.comparator} ${t.threshold}`)));
    if (t.clear !== t.threshold) inner.push(s("line", { class: "plot-clear", x1: 0, x2: pw, y1: sc.y(t.clear), y2: sc.y(t.clear) }, s("title", {}, `rule ${t.rule} clears at ${t.clear}`)));
  }
  for (const m of marks) {
    if (m.time < sc.t0 || m.time > sc.t1) continue;
    inner.push(s("line", { class: "plot-mark " + m.kind, x1: sc.x(m.time), x2: sc.x(m.time), y1: 0, y2: ph, "data-kind": m.kind }, s("title", {}, m.message)));
  }
  for (const line of series) {
    if (line.points.length) inner.push(s("path", { class: "plot-line " + line.cls, d: L.seriesPath(line.points, sc) }));
  }
  fill(svg, s("g", { transform: `translate(${left},8)` }, inner));
}

function renderPortRates() {
  const select = $("port-key");
  const keys = [...state.portHistory.keys()].sort((a, b) => {
    const [da, pa] = a.split("/");
    const [db, pb] = b.split("/");
    return L.dpidInt(da) - L.dpidInt(db) || Number(pa) - Number(pb);
  });
  const label = (key) => {
    const [dpid, port] = key.split("/");
    const info = state.graph.switches.get(dpid)?.ports.find((p) => String(p.port_no) === port);
    return `${L.switchLabel(dpid)}:${port}${info ? ` (${info.name}, ${info.role})` : ""}`;
  };
  if (select.options.length !== keys.length || [...select.options].some((o, i) => o.value !== keys[i])) {
    const current = select.value;
    fill(select, keys.map((k) => h("option", { value: k }, label(k))));
    if (keys.includes(current)) select.value = current;
  }
  const points = state.portHistory.get(select.value) ?? [];
  const windowS = Number($("metric-window").value);
  plotInto($("port-plot"), [
    { points: L.ratePoints(points, "rx"), cls: "rx" },
    { points: L.ratePoints(points, "tx"), cls: "tx" },
  ], [], [], windowS);
  const last = points[points.length - 1];
  $("port-caption").textContent = select.value
    ? `${label(select.value)} · ${points.length} samples` + (last ? ` · now ${L.human(last.rx, "bit/s")} received, ${L.human(last.tx, "bit/s")} sent` : "")
    : "Collecting samples…";
}

// ------------------------------------------------------------ events

function renderEvents() {
  const topics = new Set([...$("event-filter").querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value));
  const filter = { topics, text: $("event-text").value };
  const shown = state.events.filter((ev) => L.eventMatches(ev, filter)).slice(-500).reverse();
  fill($("event-log"),
    ...shown.map((ev) =>
      h("li", { class: L.isWarning(ev) ? "warn" : null, "data-topic": L.topicOf(ev) },
        h("time", { datetime: ev.time }, timeOf(ev.time)),
        h("span", {}, L.topicOf(ev)),
        h("span", {}, L.describeEvent(ev)))),
  );
  $("event-count").textContent = `${shown.length} of ${state.events.length} events shown${state.eventsPaused ? " (paused)" : ""}`;
}

const renderEventsSoon = debounce(renderEvents, 200);
const refreshTopologySoon = debounce(refreshTopology, 400);
const refreshPoliciesSoon = debounce(refreshPolicies, 300);
const refreshTenantsSoon = debounce(refreshTenants, 500);

function onBusEvent(ev) {
  state.events.push(ev);
  if (state.events.length > 2000) state.events.splice(0, state.events.length - 2000);
  const result = L.applyEvent(state.graph, ev);
  if (result.changed) {
    layout(false);
    if (state.view === "topology") drawGraph();
  }
  if (result.refresh) refreshTopologySoon();
  if (ev.type === "resource" || ev.type === "module") {
    state.cache = {};
    if (state.view === "policies") refreshPoliciesSoon();
    if (state.view === "tenants") refreshTenantsSoon();
  }
  if (state.view === "events" && !state.eventsPaused) renderEventsSoon();
}

function setStream(text, cls) {
  const el = $("stream-state");
  el.textContent = text;
  el.className = "pill " + (cls ?? "");
}

async function follow(signal) {
  for (;;) {
    try {
      const res = await fetch(API + "/events", { headers: headers(false), signal });
      if (!res.ok) {
        if (res.status === 401) showBanner("The event stream needs the API token.");
        throw new Error("HTTP " + res.status);
      }
      setStream("live", "live");
      run(refreshTopology);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const { messages, rest } = L.parseSse(buffer + value);
        buffer = rest;
        for (const m of messages) {
          if (m.event === "lagged") {
            run(refreshTopology);
            continue;
          }
          try {
            onBusEvent(JSON.parse(m.data));
          } catch {
            // An event we cannot read is skipped.
          }
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    if (signal.aborted) return;
    setStream("reconnecting…", "down");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function restartStream() {
  state.streamAbort?.abort();
  const controller = new AbortController();
  state.streamAbort = controller;
  follow(controller.signal);
}

// -------------------------------------------------------------- wiring

function init() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectView(tab.dataset.view));
    tab.addEventListener("keydown", (ev) => {
      const i = tabs.indexOf(tab);
      let next = null;
      if (ev.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
      else if (ev.key === "ArrowLeft") next = tabs[(i - 1 + tabs.length) % tabs.length];
      else if (ev.key === "Home") next = tabs[0];
      else if (ev.key === "End") next = tabs[tabs.length - 1];
      if (next) {
        ev.preventDefault();
        selectView(next.dataset.view, true);
      }
    });
  }
  window.addEventListener("hashchange", () => selectView(location.hash.slice(1)));
  window.addEventListener("resize", debounce(() => state.view === "topology" && drawGraph(), 150));
  $("token").value = token();
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("token").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    showBanner(null);
    state.cache = {};
    restartStream();
    schedule();
  });
  $("relayout").addEventListener("click", () => {
    layout(true);
    drawGraph();
  });
  $("forget-down").addEventListener("click", () => {
    L.forgetDownLinks(state.graph);
    drawGraph();
  });
  $("event-filter").addEventListener("input", renderEvents);
  $("event-filter").addEventListener("submit", (ev) => ev.preventDefault());
  $("event-pause").addEventListener("click", () => {
    state.eventsPaused = !state.eventsPaused;
    $("event-pause").setAttribute("aria-pressed", String(state.eventsPaused));
    $("event-pause").textContent = state.eventsPaused ? "Resume" : "Pause";
    renderEvents();
  });
  $("event-clear").addEventListener("click", () => {
    state.events = [];
    renderEvents();
  });
  $("metric-form").addEventListener("change", () => run(refreshMetrics).then(renderPortRates));
  $("port-form").addEventListener("change", renderPortRates);
  $("port-form").addEventListener("submit", (ev) => ev.preventDefault());
  $("metric-form").addEventListener("submit", (ev) => ev.preventDefault());
  restartStream();
  selectView(location.hash.slice(1) || "topology");
}

init();
