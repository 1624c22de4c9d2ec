// Unit tests of the dashboard's logic: `node --test controller/src/api/dashboard/test/logic.test.mjs`
// (Node 18 or newer; tools/test-all.sh installs Debian's nodejs when missing).
import assert from "node:assert/strict";
import { test } from "node:test";
import * as L from "../assets/logic.mjs";

const D1 = "00:00:00:00:00:00:00:01";
const D2 = "00:00:00:00:00:00:00:02";
const D3 = "00:00:00:00:00:00:00:03";

// A ring of three as GET /topology reports it: every link in both directions.
function ring3() {
  const link = (a, ap, b, bp, tree = true) => ({ src: { dpid: a, port: ap }, dst: { dpid: b, port: bp }, tree });
  return {
    switches: [D1, D2, D3].map((dpid, i) => ({ dpid, dpid_int: i + 1, ready: true, ports: [] })),
    links: [
      link(D1, 2, D2, 3), link(D2, 3, D1, 2),
      link(D2, 2, D3, 3), link(D3, 3, D2, 2),
      link(D3, 2, D1, 3, false), link(D1, 3, D3, 2, false),
    ],
    suspect_links: [],
  };
}

const HOSTS = [
  { mac: "00:00:00:00:00:01", ipv4: ["10.0.0.1"], ipv6: [], dpid: D1, port: 1 },
  { mac: "00:00:00:00:00:02", ipv4: ["10.0.0.2"], ipv6: [], dpid: D2, port: 1 },
];

test("the graph merges both directions of a link into one edge", () => {
  const g = L.buildGraph(ring3(), HOSTS);
  assert.deepEqual(L.graphCounts(g), { switches: 3, links: 3, linksDown: 0, hosts: 2 });
  const key = L.linkKey(D2, 3, D1, 2);
  assert.equal(key, L.linkKey(D1, 2, D2, 3));
  const link = g.links.get(key);
  assert.equal(link.directions, 2);
  assert.equal(link.tree, true);
  assert.equal(g.links.get(L.linkKey(D1, 3, D3, 2)).tree, false);
  assert.equal(g.switches.get(D3).label, "s3");
  assert.equal(g.hosts.get("00:00:00:00:00:02").label, "10.0.0.2");
  const { nodes, edges } = L.drawable(g);
  assert.equal(nodes.length, 5);
  assert.equal(edges.filter((e) => e.kind === "link").length, 3);
  assert.equal(edges.filter((e) => e.kind === "host").length, 2);
});

test("a cut link stays, red, when the topology stops reporting it, and clears when it returns", () => {
  const first = L.buildGraph(ring3(), HOSTS);
  const cut = ring3();
  cut.links = cut.links.filter((l) => !(l.src.dpid !== D3 && l.dst.dpid !== D3));
  const second = L.buildGraph(cut, HOSTS, first);
  const key = L.linkKey(D1, 2, D2, 3);
  assert.equal(second.links.get(key).up, false);
  assert.deepEqual(L.graphCounts(second), { switches: 3, links: 2, linksDown: 1, hosts: 2 });
  const third = L.buildGraph(ring3(), HOSTS, second);
  assert.equal(third.links.get(key).up, true);
  // A link of a switch that left is not kept.
  const gone = ring3();
  gone.switches = gone.switches.filter((s) => s.dpid !== D3);
  gone.links = gone.links.filter((l) => l.src.dpid !== D3 && l.dst.dpid !== D3);
  assert.equal(L.buildGraph(gone, HOSTS, third).links.size, 1);
});

test("bus events change links and hosts at once", () => {
  const g = L.buildGraph(ring3(), HOSTS);
  const key = L.linkKey(D1, 2, D2, 3);
  let r = L.applyEvent(g, { type: "link", src_dpid: D1, src_port: 2, dst_dpid: D2, dst_port: 3, up: false });
  assert.deepEqual(r, { changed: true, refresh: false });
  assert.equal(g.links.get(key).up, false);
  r = L.applyEvent(g, { type: "link", src_dpid: D2, src_port: 3, dst_dpid: D1, dst_port: 2, up: false });
  assert.equal(r.changed, false, "the other direction changes nothing more");
  r = L.applyEvent(g, { type: "link", src_dpid: D2, src_port: 3, dst_dpid: D1, dst_port: 2, up: true });
  assert.equal(g.links.get(key).up, true);
  assert.equal(r.refresh, true);

  // A port going down takes its link down before discovery says so.
  r = L.applyEvent(g, { type: "port", dpid: D3, port: 3, name: "s3-eth3", change: "down" });
  assert.equal(r.changed, true);
  assert.equal(g.links.get(L.linkKey(D2, 2, D3, 3)).up, false);
  assert.equal(L.applyEvent(g, { type: "port", dpid: D3, port: 3, name: "s3-eth3", change: "up" }).changed, false);

  // A new host appears (its addresses come with the next GET /hosts).
  r = L.applyEvent(g, { type: "host", mac: "00:00:00:00:00:03", dpid: D3, port: 1, change: "appeared" });
  assert.deepEqual(r, { changed: true, refresh: true });
  assert.equal(g.hosts.get("00:00:00:00:00:03").dpid, D3);
  r = L.applyEvent(g, { type: "host", mac: "00:00:00:00:00:03", dpid: D2, port: 4, change: "moved" });
  assert.equal(r.changed, true);
  assert.equal(g.hosts.get("00:00:00:00:00:03").port, 4);
  L.applyEvent(g, { type: "host", mac: "00:00:00:00:00:03", dpid: D2, port: 4, change: "gone" });
  assert.equal(g.hosts.has("00:00:00:00:00:03"), false);

  // A switch that disconnects takes its links down.
  L.applyEvent(g, { type: "switch_down", dpid: D1 });
  assert.equal(g.switches.get(D1).up, false);
  assert.equal(g.links.get(L.linkKey(D1, 3, D3, 2)).up, false);
  assert.deepEqual(L.applyEvent(g, { type: "resource", module: "firewall" }), { changed: false, refresh: false });

  L.forgetDownLinks(g);
  assert.equal([...g.links.values()].every((l) => l.up), true);
});

test("the force layout is deterministic, spreads nodes out and keeps earlier positions as its start", () => {
  const { nodes, edges } = L.drawable(L.buildGraph(ring3(), HOSTS));
  const a = L.forceLayout(nodes, edges);
  const b = L.forceLayout(nodes, edges);
  assert.deepEqual([...a.entries()], [...b.entries()]);
  const points = [...a.values()];
  for (const p of points) assert.ok(Number.isFinite(p.x) && Number.isFinite(p.y));
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      const d = Math.hypot(points[i].x - points[j].x, points[i].y - points[j].y);
      assert.ok(d > 10, `nodes ${i} and ${j} overlap (${d})`);
    }
  }
  // A host attached to s1 sits nearer s1 than the farthest switch does.
  const h1 = a.get("00:00:00:00:00:01");
  const s1 = a.get(D1);
  const dist = (p, q) => Math.hypot(p.x - q.x, p.y - q.y);
  assert.ok(dist(h1, s1) < Math.max(dist(s1, a.get(D2)), dist(s1, a.get(D3))) * 1.5);
  // An update moves little.
  const c = L.forceLayout(nodes, edges, a);
  for (const [id, p] of a) assert.ok(dist(p, c.get(id)) < 200, id);
  const box = L.viewBox(a);
  for (const p of points) {
    assert.ok(p.x >= box.x && p.x <= box.x + box.width && p.y >= box.y && p.y <= box.y + box.height);
  }
  assert.equal(L.forceLayout([], []).size, 0);
});

test("nodes with the same neighbours (a fat-tree's cores) do not overlap", () => {
  const nodes = [];
  const edges = [];
  const sw = (i) => "s" + i;
  for (let i = 1; i <= 20; i++) nodes.push({ id: sw(i) });
  let next = 5;
  let host = 0;
  for (let pod = 0; pod < 4; pod++) {
    const aggs = [next, next + 1];
    const edgeSwitches = [next + 2, next + 3];
    next += 4;
    aggs.forEach((a, i) => {
      edges.push({ source: sw(a), target: sw(1 + 2 * i) }, { source: sw(a), target: sw(2 + 2 * i) });
      for (const e of edgeSwitches) edges.push({ source: sw(a), target: sw(e) });
    });
    for (const e of edgeSwitches) {
      for (let j = 0; j < 2; j++) {
        const id = "h" + ++host;
        nodes.push({ id });
        edges.push({ source: id, target: sw(e) });
      }
    }
  }
  const pos = [...L.forceLayout(nodes, edges).values()];
  const want = L.layoutSpacing(nodes.length) * L.MIN_SEPARATION * 0.99;
  for (let i = 0; i < pos.length; i++) {
    for (let j = i + 1; j < pos.length; j++) {
      const d = Math.hypot(pos[i].x - pos[j].x, pos[i].y - pos[j].y);
      assert.ok(d >= want, `${nodes[i].id} and ${nodes[j].id} are ${d.toFixed(1)} apart (want ${want.toFixed(1)})`);
    }
  }
});

test("cookies decode to their owner and object", () => {
  const d = (c) => L.decodeCookie(c);
  assert.deepEqual([d("0xf002000000000001").owner, d("0xf002000000000001").label], ["forwarding", "host 00:00:00:00:00:01"]);
  assert.equal(d("0xf002010000000002").label, "miss entry 2");
  assert.equal(d("0xf002030000000007").label, "ARP trap, port 7");
  assert.equal(d("0xf002040000000003").label, "flood, in_port 3");
  assert.equal(d("0xf001000000000004").label, "table-miss entry of table 4");
  assert.equal(d("0xf003000100000064").label, "gate, VNI 100");
  assert.equal(d("0xf0030005000000c8").label, "ARP responder, VNI 200");
  assert.equal(d("0xf00400000000000c").label, "rule 12");
  assert.equal(d("0xf004000100000200").label, "default deny");
  assert.equal(d("0xf004000100000100").label, "conntrack IPv4");
  assert.equal(d("0xf005000200000003").label, "member, VIP index 3");
  assert.equal(d("0xf006000000000009").label, "policy 9");
  assert.equal(d("0xf008010000000001").label, "LLDP trap");
  assert.equal(d("0xf008030000000004").label, "link port 4");
  assert.equal(d("0xf0080000000000aa").label, "host 00:00:00:00:00:aa");
  assert.equal(d("0x0").owner, null);
  assert.equal(d("0x0").label, "no cookie (foreign)");
  assert.equal(d("0xffffffffffffffff").owner, null);
  assert.equal(d("0x1234").label, "foreign cookie 0x1234");
  assert.equal(d("not a cookie").owner, null);
});

test("flows are grouped by owner, foreign last, sorted by table and priority", () => {
  const flows = [
    { cookie: "0xf004000000000001", table_id: 1, priority: 2 },
    { cookie: "0x0000000000000000", table_id: 0, priority: 5 },
    { cookie: "0xf002000000000001", table_id: 5, priority: 100 },
    { cookie: "0xf002040000000001", table_id: 6, priority: 100 },
    { cookie: "0xf002010000000004", table_id: 4, priority: 1 },
    { cookie: "0xf001000000000000", table_id: 0, priority: 0 },
  ];
  const groups = L.groupFlowsByOwner(flows);
  assert.deepEqual(groups.map((g) => g.owner), ["core", "firewall", "forwarding", "foreign"]);
  assert.deepEqual(groups[2].flows.map((f) => f.table_id), [4, 5, 6]);
  assert.equal(groups[2].flows[1].decoded.label, "host 00:00:00:00:00:01");
});

test("SSE text splits into messages across chunk boundaries", () => {
  const first = L.parseSse('event: link\nid: 7\ndata: {"type":"link"}\n\n: keep-alive\n\nevent: host\ndata: {"a"');
  assert.deepEqual(first.messages, [{ event: "link", data: '{"type":"link"}', id: "7" }]);
  const second = L.parseSse(first.rest + ':1}\r\n\r\ndata: x\ndata: y\n\n');
  assert.deepEqual(second.messages, [
    { event: "host", data: '{"a":1}', id: null },
    { event: "message", data: "x\ny", id: null },
  ]);
  assert.equal(second.rest, "");
  assert.deepEqual(L.parseSse("event: lagged\ndata: 12\n\n").messages, [{ event: "lagged", data: "12", id: null }]);
});

test("the event filter takes topics and words", () => {
  const down = { type: "link", src_dpid: D1, src_port: 2, dst_dpid: D2, dst_port: 3, up: false, seq: 1, time: "2026-12-06T08:00:00Z" };
  const fw = { type: "resource", module: "firewall", kind: "rule", id: "7", action: "created", origin: "rest" };
  const up = { type: "switch_up", dpid: D3, version: 4 };
  assert.equal(L.describeEvent(down), "link s1:2 → s2:3 down");
  assert.equal(L.describeEvent(up), "switch s3 (00:00:00:00:00:00:00:03) connected, OpenFlow 0x04");
  assert.equal(L.topicOf(up), "switch");
  assert.ok(L.isWarning(down) && !L.isWarning(fw));
  assert.ok(L.eventMatches(down, { topics: new Set(["link"]), text: "" }));
  assert.ok(!L.eventMatches(fw, { topics: new Set(["link"]), text: "" }));
  assert.ok(L.eventMatches(fw, { topics: new Set(), text: "firewall created" }));
  assert.ok(!L.eventMatches(fw, { topics: new Set(), text: "firewall deleted" }));
  assert.ok(L.eventMatches(down, { topics: new Set(["link", "switch"]), text: "S1 DOWN" }));
  assert.ok(L.eventMatches(up, { topics: null, text: "" }));
});

test("rates, link loads and units", () => {
  assert.equal(L.rate(100, 400, 3), 100);
  assert.equal(L.rate(400, 100, 3), 0, "a counter reset is no negative rate");
  assert.equal(L.rate(undefined, 100, 3), null);
  const g = L.buildGraph(ring3(), []);
  const before = new Map([[`${D1}/2`, { time: 0, tx_bytes: 0 }], [`${D2}/3`, { time: 0, tx_bytes: 0 }]]);
  const after = new Map([[`${D1}/2`, { time: 2000, tx_bytes: 1000 }], [`${D2}/3`, { time: 2000, tx_bytes: 250000 }]]);
  const loads = L.linkLoads(g, before, after);
  assert.equal(loads.get(L.linkKey(D1, 2, D2, 3)), 1000000);
  assert.equal(loads.size, 1);
  assert.equal(L.loadWidth(0), 2);
  assert.ok(L.loadWidth(1e9) > L.loadWidth(1e6));
  assert.equal(L.human(1234567, "bit/s"), "1.23 Mbit/s");
  assert.equal(L.human(999), "999");
  assert.equal(L.human(null), "–");
});

test("what concerns a host: matches, scopes, tenants", () => {
  const h = { mac: "00:00:00:00:00:02", ipv4: ["10.0.0.2"], ipv6: [], dpid: D2, port: 1 };
  assert.equal(L.inCidr("10.0.0.2", "10.0.0.0/24"), true);
  assert.equal(L.inCidr("10.0.1.2", "10.0.0.0/24"), false);
  assert.equal(L.inCidr("10.0.0.2", "10.0.0.2"), true);
  assert.equal(L.inCidr("10.9.9.9", "0.0.0.0/0"), true);
  assert.equal(L.inCidr("2001:db8::1", "2001:db8::1"), true);
  assert.equal(L.matchConcerns({}, h), "all");
  assert.equal(L.matchConcerns({ ip_dst: "10.0.0.0/8", ip_proto: "tcp" }, h), "dst");
  assert.equal(L.matchConcerns({ eth_src: "00:00:00:00:00:02" }, h), "src");
  assert.equal(L.matchConcerns({ ip_src: "10.0.0.2", ip_dst: "10.0.0.0/24" }, h), "both");
  assert.equal(L.matchConcerns({ ip_src: "10.0.0.9" }, h), null);
  assert.equal(L.matchConcerns({ ip_src: "10.0.0.2", eth_src: "00:00:00:00:00:09" }, h), null);
  assert.equal(L.scopeCovers({}, h), true);
  assert.equal(L.scopeCovers({ dpid: "2", in_port: 1 }, h), true);
  assert.equal(L.scopeCovers({ dpid: "0x3" }, h), "elsewhere");
  const networks = [{ id: "blue", tenant: "acme", vni: 100 }];
  const ports = [{ id: "vm2", network: "blue", status: { mac: "00:00:00:00:00:02" } }];
  assert.deepEqual(L.tenantOf(h, networks, ports), { port: ports[0], network: networks[0] });
  assert.equal(L.tenantOf({ ...h, mac: "00:00:00:00:00:09" }, networks, ports), null);
  assert.equal(L.matchText({ ip_proto: "tcp", dst_port: "80" }), "ip_proto=tcp dst_port=80");
  assert.equal(L.matchText(undefined), "any");
});

test("plot scales put points, thresholds and marks on the page", () => {
  const points = [
    { time: "2026-12-06T08:00:00Z", value: 1 },
    { time: "2026-12-06T08:00:10Z", value: 3 },
  ];
  const thresholds = [{ rule: 1, comparator: ">", threshold: 2, clear: 1.5 }];
  const sc = L.plotScales(points, thresholds, 100, 50);
  assert.equal(sc.x(Date.parse(points[0].time)), 0);
  assert.equal(sc.x(Date.parse(points[1].time)), 100);
  assert.ok(sc.y(3) > 0 && sc.y(3) < 50, "the top value fits with headroom");
  assert.equal(sc.y(0), 50);
  assert.ok(sc.y(2) < sc.y(1.5));
  assert.match(sc.path, /^M0\.0,\d+\.\d L100\.0,\d+\.\d$/);
  const windowed = L.plotScales(points, [], 100, 50, 60, Date.parse(points[1].time));
  assert.equal(windowed.x(Date.parse(points[1].time)), 100);
  assert.ok(Math.abs(windowed.x(Date.parse(points[0].time)) - 83.33) < 0.01);
  // A window longer than the history shows the history (at least a minute).
  const zoomed = L.plotScales(points, [], 100, 50, 3600, Date.parse(points[1].time));
  assert.equal(zoomed.t1 - zoomed.t0, 60000);
  const longer = [{ time: "2026-12-06T07:50:00Z", value: 1 }, ...points];
  const fit = L.plotScales(longer, [], 100, 50, 3600, Date.parse(points[1].time));
  assert.ok(fit.x(Date.parse(longer[0].time)) > 0 && fit.x(Date.parse(longer[0].time)) < 10);
  const empty = L.plotScales([], [], 100, 50);
  assert.equal(empty.path, "");
  const marks = L.reactionMarks([
    { kind: "ACTION_APPLIED", time: "2026-12-06T08:00:05Z", rule: 1, message: "rate limit" },
    { kind: "INFO", time: "2026-12-06T08:00:06Z", message: "x" },
    { kind: "REVERTED", time: "2026-12-06T08:00:09Z", rule: 2, message: "back" },
  ]);
  assert.deepEqual(marks.map((m) => m.kind), ["applied", "reverted"]);
  assert.equal(L.reactionMarks([{ kind: "REVERTED", time: "2026-12-06T08:00:09Z", rule: 2 }], 1).length, 0);
  assert.equal(L.thresholdState(5, ">", 4), "past");
  assert.equal(L.thresholdState(3.8, ">", 4), "near");
  assert.equal(L.thresholdState(1, ">", 4), "ok");
  assert.equal(L.thresholdState(1, "<=", 4), "past");
  assert.equal(L.thresholdState(undefined, ">", 4), "unknown");
});

test("port rates are recorded per port and trimmed to the window", () => {
  const history = new Map();
  const at = (time, rx, tx) => new Map([[`${D1}/1`, { time, rx_bytes: rx, tx_bytes: tx }]]);
  L.recordPortRates(history, new Map(), at(0, 0, 0));
  assert.equal(history.size, 0, "one sample is no rate");
  L.recordPortRates(history, at(0, 0, 0), at(2000, 1000, 250));
  L.recordPortRates(history, at(2000, 1000, 250), at(4000, 1000, 500), 1500);
  assert.deepEqual(history.get(`${D1}/1`), [{ time: 4000, rx: 0, tx: 1000 }]);
  const points = L.ratePoints(history.get(`${D1}/1`), "tx");
  assert.deepEqual(points, [{ time: "1970-01-01T00:00:04.000Z", value: 1000 }]);
  const sc = L.plotScales(points, [], 100, 50, 60, 4000);
  assert.equal(L.seriesPath(points, sc), `M100.0,${sc.y(1000).toFixed(1)}`);
});
