"""The web dashboard (issue 18) in a real browser: Debian's Chromium driven
headless by Selenium (chromium, chromium-driver, python3-selenium; installed
by tools/test-all.sh), against a controller with the k=4 fat-tree
(topologies/fattree4.yaml: 20 switches, 32 links, 16 hosts).

With a token for reads, the page asks for it and goes live once it is
entered. The page loads without console errors and shows the whole fat-tree after
pingall; a switch and a host open their details (also from the keyboard);
a link cut in Mininet turns red within 2 s and clears when restored; a
firewall rule created over REST shows up with its counter rising under
traffic; a host-aware reaction is marked on its metric plot and a port's
rates are plotted from the page's own counter samples; the page's
writes drain a load-balancer member and disable a host-aware rule. On the
overlay's cloud lab (two hosts with their own Open vSwitch), the Tenants view
shows the network, its ports by host and the tunnels. Screenshots of
every view (1280x800, and the topology and policies at a narrow width) go
to $FLOWGATE_DASHBOARD_SCREENSHOTS (default target/dashboard-screenshots).
"""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import new_controller, release_controller, topology
from flowgate_lab import LabNet, wait_until
from flowgate_lab.cloud import Cloud
from flowgate_lab.rest import dpid_str
from flowgate_lab.topology import TEST_CONFIG, attachment, switch_links, wait_topology

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCREENSHOTS = os.environ.get(
    "FLOWGATE_DASHBOARD_SCREENSHOTS",
    os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "dashboard-screenshots"),
)
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:  # pragma: no cover - tools/test-all.sh installs it
    webdriver = None


def _browser():
    if webdriver is None or not os.access(CHROMIUM, os.X_OK) or not os.access(CHROMEDRIVER, os.X_OK):
        pytest.fail(
            "the dashboard tests need chromium, chromium-driver and python3-selenium "
            "(apt-get install -y chromium chromium-driver python3-selenium; tools/test-all.sh does it)",
            pytrace=False,
        )
    profile = tempfile.mkdtemp(prefix="flowgate-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in the lab
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--window-size=1280,800",
        "--user-data-dir=%s" % profile,
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver, profile


class Page:
    """The browser on the dashboard, collecting the console as it goes."""

    def __init__(self, driver, base):
        self.driver = driver
        self.base = base
        self.console = []

    def drain_console(self):
        self.console += self.driver.get_log("browser")
        return self.console

    def errors(self):
        return [e for e in self.drain_console() if e["level"] == "SEVERE"]

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def counts(self):
        return self.js(
            "const c = document.getElementById('topo-counts').dataset;"
            "return {switches: +c.switches, links: +c.links, down: +c.linksDown, hosts: +c.hosts,"
            " drawnSwitches: document.querySelectorAll('#g-nodes .node.switch').length,"
            " drawnHosts: document.querySelectorAll('#g-nodes .node.host').length,"
            " drawnLinks: document.querySelectorAll('#g-links line.link').length,"
            " drawnDown: document.querySelectorAll('#g-links line.link.down').length};"
        )

    def link_state(self, key):
        return self.js(
            "const l = [...document.querySelectorAll('#g-links line.link')].find(x => x.dataset.key === arguments[0]);"
            "return l ? l.dataset.state : null;",
            key,
        )

    def view(self, name):
        self.driver.find_element(By.ID, "tab-" + name).click()
        wait_until(lambda: self.js("return !document.getElementById('view-%s').hidden" % name), 5, what=name)

    def screenshot(self, name):
        os.makedirs(SCREENSHOTS, exist_ok=True)
        path = os.path.join(SCREENSHOTS, name + ".png")
        self.driver.save_screenshot(path)
        return path


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    """(controller, LabNet, Page): the fat-tree discovered and pinged, the
    dashboard open on the topology view."""
    config = tmp_path_factory.mktemp("dashboard") / "flowgate.toml"
    config.write_text(TEST_CONFIG)
    ctl = new_controller(config=str(config))
    driver = profile = None
    try:
        lab = LabNet(topology("fattree4"), ctl)
        lab.start(connect_timeout=180)
        try:
            wait_topology(ctl, lab, timeout=240)
            assert lab.pingall().loss_percent == 0
            driver, profile = _browser()
            yield ctl, lab, Page(driver, "http://127.0.0.1:%d" % ctl.rest_port)
        finally:
            if driver is not None:
                driver.quit()
            if profile:
                shutil.rmtree(profile, ignore_errors=True)
            lab.stop()
    finally:
        release_controller(ctl)


@pytest.mark.timeout_secs(120)
def test_with_a_token_for_reads_the_page_asks_for_it_then_goes_live(make_controller, tmp_path):
    """No lab: a controller whose reads need the token. The page loads (its
    files are open), says it needs the token, and once the token is entered
    streams events and reads with it; the token stays in sessionStorage."""
    token = tmp_path / "token"
    token.write_text("s3cret-dash\n")
    config = tmp_path / "flowgate.toml"
    config.write_text('api_token_file = "%s"\n[rest]\nauth_reads = true\n' % token)
    ctl = make_controller(config=str(config))
    assert ctl.rest.request("GET", "/api/v1/switches").status == 401
    driver, profile = _browser()
    try:
        page = Page(driver, "http://127.0.0.1:%d" % ctl.rest_port)
        driver.get(page.base + "/")
        wait_until(lambda: "token" in driver.find_element(By.ID, "banner").text, 15, what="the token banner")
        box = driver.find_element(By.ID, "token")
        box.send_keys("s3cret-dash")
        box.send_keys(Keys.ENTER)
        wait_until(lambda: driver.find_element(By.ID, "stream-state").text == "live", 15, what="the stream live")
        wait_until(lambda: page.js("return document.getElementById('topo-counts').textContent")
                   == "0 switches · 0 links · 0 hosts", 15, what="the (empty) topology read with the token")
        assert page.js("return sessionStorage.getItem('flowgate-token')") == "s3cret-dash"
        # Only the requests made before the token was entered were refused.
        before = page.errors()
        assert before and all("401" in e["message"] for e in before), before
        time.sleep(4)
        assert page.errors() == before, page.errors()[len(before):]
        assert driver.find_element(By.ID, "banner").get_attribute("hidden") is not None
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _link_key(a, b):
    """The dashboard's key of a link: 'dpid/port|dpid/port', ends in string order."""
    ends = sorted("%s/%d" % (dpid_str(d), p) for d, p in (a, b))
    return "|".join(ends)


@pytest.mark.timeout_secs(900)
def test_the_page_shows_the_fat_tree_without_console_errors(dash):
    ctl, lab, page = dash
    page.driver.get(page.base + "/")
    loaded_ms = page.js(
        "const n = performance.getEntriesByType('navigation')[0]; return n.domContentLoadedEventEnd - n.startTime;"
    )
    want = {"switches": 20, "links": 32, "down": 0, "hosts": 16,
            "drawnSwitches": 20, "drawnHosts": 16, "drawnLinks": 32, "drawnDown": 0}
    counts = wait_until(lambda: page.counts() == want and page.counts(), 20, interval=0.5,
                        what="the graph to show 20 switches, 32 links, 16 hosts")
    print("\ndashboard: DOM ready after %.0f ms; %s" % (loaded_ms, counts))
    assert loaded_ms < 1000, "the page took %.0f ms" % loaded_ms
    title = page.js("return document.getElementById('topo-counts').textContent")
    assert title == "20 switches · 32 links · 16 hosts", title

    # A switch by mouse: its ports and its flows grouped by owner module.
    _click(page, "#g-nodes .node.switch[data-id='%s']" % dpid_str(1), By.CSS_SELECTOR)
    wait_until(lambda: "Flows by owner module" in page.driver.find_element(By.ID, "details").text, 15,
               what="switch details")
    details = page.driver.find_element(By.ID, "details").text
    assert "Switch s1" in details, details
    for owner in ("core (", "forwarding (", "topology ("):
        assert owner in details, details
    assert "LLDP trap" in page.js("return document.getElementById('details').textContent")

    # A host from the keyboard: focus it, Enter.
    h16 = lab["h16"]
    node = page.driver.find_element(By.CSS_SELECTOR, "#g-nodes .node.host[data-id='%s']" % h16.MAC())
    page.js("arguments[0].focus()", node)
    ActionChains(page.driver).send_keys(Keys.ENTER).perform()
    wait_until(lambda: "Host %s" % h16.IP() in page.driver.find_element(By.ID, "details").text, 15,
               what="host details")
    details = page.driver.find_element(By.ID, "details").text
    assert h16.MAC() in details and "port" in details, details

    # The tabs answer the arrow keys.
    page.driver.find_element(By.ID, "tab-topology").send_keys(Keys.ARROW_RIGHT)
    wait_until(lambda: page.js("return location.hash") == "#tenants", 5, what="arrow key to Tenants")
    page.view("topology")
    assert page.errors() == [], page.errors()


@pytest.mark.timeout_secs(240)
def test_a_cut_link_turns_red_within_two_seconds_and_clears(dash):
    ctl, lab, page = dash
    page.view("topology")
    # An edge-aggregation link: a, b as (dpid, port).
    a, b = sorted(tuple(sorted(link)) for link in switch_links(lab))[0]
    key = _link_key(a, b)
    assert page.link_state(key) == "up", key
    names = ("s%d" % a[0], "s%d" % b[0])
    lab.net.configLinkStatus(names[0], names[1], "down")
    cut = time.monotonic()
    try:
        wait_until(lambda: page.link_state(key) == "down", 5, interval=0.05, what="the link to turn red")
        red_after = time.monotonic() - cut
        counts = page.counts()
        print("\ndashboard: %s-%s red after %.2f s; %s" % (names + (red_after, counts)))
        assert red_after < 2.0, red_after
        assert counts["down"] == 1 and counts["drawnDown"] == 1, counts
        page.screenshot("topology-link-down")
    finally:
        lab.net.configLinkStatus(names[0], names[1], "up")
    restored = time.monotonic()
    wait_until(lambda: page.link_state(key) == "up", 60, interval=0.2, what="the link to clear")
    print("dashboard: cleared %.1f s after the link came back" % (time.monotonic() - restored))
    wait_until(lambda: page.counts()["down"] == 0 and page.counts()["links"] == 32, 30, what="32 links up")
    assert page.errors() == [], page.errors()


def _packets(page, rule):
    value = page.js(
        "const c = document.querySelector('#fw-table tr[data-rule=\"' + arguments[0] + '\"] td.fw-packets');"
        "return c ? c.dataset.packets : null;",
        rule,
    )
    return int(value) if value not in (None, "") else None


@pytest.mark.timeout_secs(240)
def test_a_firewall_rule_made_over_rest_shows_its_counter_rising(dash):
    ctl, lab, page = dash
    page.view("policies")
    h1, h16 = lab["h1"], lab["h16"]
    resp = ctl.rest.request("POST", "/api/v1/firewall/rules", {
        "priority": 100, "action": "allow", "description": "dashboard test: h1 pings",
        "match": {"ip_proto": "icmp", "ip_src": h1.IP()},
    })
    assert resp.status in (200, 201), resp
    rule = resp.json["rule"]["id"]
    # The rule stays for the screenshots (it allows what the default allows).
    wait_until(lambda: _packets(page, rule) is not None, 15, what="rule %d on the page" % rule)
    ping = h1.popen(["ping", "-n", "-i", "0.1", "-c", "150", h16.IP()],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = wait_until(lambda: (_packets(page, rule) or 0) > 0 and _packets(page, rule), 20,
                           what="packets counted")
        second = wait_until(lambda: _packets(page, rule) > first and _packets(page, rule), 20,
                            what="the counter to rise past %d" % first)
        print("\ndashboard: rule %d counted %d then %d packets" % (rule, first, second))
        page.screenshot("policies-firewall-counting")
    finally:
        ping.kill()
        ping.wait(timeout=10)
    assert page.errors() == [], page.errors()


@pytest.mark.timeout_secs(240)
def test_a_host_aware_reaction_is_marked_on_its_metric_plot(dash):
    ctl, lab, page = dash
    h1, h2 = lab["h1"], lab["h2"]
    ha = "/api/v1/hostaware"
    assert ctl.rest.request("POST", ha + "/hosts", {"id": "h1", "ip": h1.IP()}).status in (200, 201)
    resp = ctl.rest.request("POST", ha + "/rules", {
        "id": 1, "name": "h1 pings fast", "hosts": {"host": "h1"}, "metric": "switch:rx_pps",
        "comparator": ">", "threshold": 30, "clear": 5, "for": 2, "interval_s": 1,
        "action": {"type": "rate_limit", "kbps": 5000},
    })
    assert resp.status in (200, 201), resp
    ping = h1.popen(["ping", "-n", "-i", "0.01", "-c", "1200", h2.IP()],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(
            lambda: [e for e in ctl.rest.get(ha + "/events") if e["kind"] == "ACTION_APPLIED"],
            30, interval=0.5, what="the host-aware reaction",
        )
        page.view("policies")
        wait_until(lambda: "acting" in page.driver.find_element(By.ID, "policies-hostaware").text, 15,
                   what="the rule acting on h1 in Policies")
        page.screenshot("policies-hostaware-acting")
    finally:
        ping.kill()
        ping.wait(timeout=10)
    wait_until(
        lambda: [e for e in ctl.rest.get(ha + "/events") if e["kind"] == "REVERTED"],
        30, interval=0.5, what="the reaction to be reverted",
    )
    page.view("metrics")
    page.js("const s = document.getElementById('metric-window'); s.value = '300';"
            "s.dispatchEvent(new Event('change', {bubbles: true}));")
    marks = wait_until(
        lambda: page.js(
            "const p = document.getElementById('plot');"
            "return p.querySelector('.plot-line') && p.querySelector('.plot-threshold')"
            " && p.querySelector('.plot-mark.applied') && p.querySelector('.plot-mark.reverted')"
            " ? p.querySelectorAll('.plot-mark').length : 0;"
        ),
        20, interval=0.5, what="the plot with its threshold and the reaction marked",
    )
    print("\ndashboard: metric plot with %d marks" % marks)
    assert page.js("return document.getElementById('metric-name').value") == "switch:rx_pps"
    # Port rates: h1's access port, sampled by the page itself.
    dpid, port = attachment(lab, "h1")
    key = "%s/%d" % (dpid_str(dpid), port)
    wait_until(lambda: page.js(
        "const s = document.getElementById('port-key');"
        "if (![...s.options].some(o => o.value === arguments[0])) return false;"
        "s.value = arguments[0]; s.dispatchEvent(new Event('change', {bubbles: true}));"
        "return !!document.querySelector('#port-plot path.plot-line.rx');", key),
        20, interval=1, what="the port-rate plot of h1's port")
    page.screenshot("metrics")
    assert page.errors() == [], page.errors()


def _click(page, selector, by=By.XPATH):
    """Click what `selector` finds, again if a refresh replaced it meanwhile
    (the live page redraws nodes and rows as events arrive)."""

    def click():
        page.driver.find_element(by, selector).click()
        return True

    wait_until(click, 15, interval=0.3, what="to click %s" % selector)


@pytest.mark.timeout_secs(240)
def test_the_page_drains_a_member_and_disables_a_rule(dash):
    ctl, lab, page = dash
    lb = "/api/v1/lb"
    members = [{"address": lab[h].IP(), "port": 80} for h in ("h2", "h3")]
    assert ctl.rest.request("POST", lb + "/pools", {"id": "web", "members": members}).status in (200, 201)
    resp = ctl.rest.request("POST", lb + "/vips", {"id": "web", "address": "10.0.0.100", "port": 80, "pool": "web"})
    assert resp.status in (200, 201), resp
    page.view("policies")
    member = "%s:80" % lab["h2"].IP()
    row = "//table[@aria-label='members of VIP web']//tr[td[1]='%s']" % member
    wait_until(lambda: page.driver.find_element(By.XPATH, row + "//button").text == "Drain", 15,
               what="the member's Drain button")
    _click(page, row + "//button[.='Drain']")
    wait_until(lambda: ctl.rest.get(lb + "/pools/web/members/" + member)["admin_state"] == "drain", 15,
               what="the member drained")
    wait_until(lambda: page.driver.find_element(By.XPATH, row + "//button").text == "Enable", 15,
               what="the member's Enable button")

    rules = "//div[@id='policies-hostaware']"
    _click(page, rules + "//button[.='Disable']")
    wait_until(lambda: ctl.rest.get("/api/v1/hostaware/rules/1")["enabled"] is False, 15, what="rule 1 disabled")
    _click(page, rules + "//button[.='Enable']")
    wait_until(lambda: ctl.rest.get("/api/v1/hostaware/rules/1")["enabled"] is True, 15, what="rule 1 enabled")
    assert page.errors() == [], page.errors()


@pytest.mark.timeout_secs(240)
def test_screenshots_of_every_view_wide_and_narrow(dash):
    ctl, lab, page = dash
    # A little traffic so the topology shows link load.
    lab["h1"].cmd("ping -n -i 0.05 -c 60 %s >/dev/null 2>&1 &" % lab["h16"].IP())
    shots = []
    for view in ("topology", "tenants", "policies", "metrics", "events"):
        if view == "tenants":
            # Last, as it changes forwarding on s15: h9 and h10 become tenant ports.
            assert ctl.rest.request("POST", "/api/v1/networks", {
                "id": "blue", "name": "blue web", "tenant": "acme", "vni": 100, "subnet": "10.0.0.0/8",
            }).status in (200, 201)
            for host in ("h9", "h10"):
                intf = lab[host].defaultIntf().link
                sw_intf = intf.intf2 if intf.intf1.node is lab[host] else intf.intf1
                body = {"id": "vm-" + host, "switch": {"dpid": str(int(sw_intf.node.dpid, 16)), "port": sw_intf.name}}
                r = ctl.rest.request("POST", "/api/v1/networks/blue/ports", body)
                assert r.status in (200, 201), r
        page.view(view)
        time.sleep(3 if view == "topology" else 1.5)
        if view == "topology":
            _click(page, "#g-nodes .node.switch[data-id='%s']" % dpid_str(1), By.CSS_SELECTOR)
            wait_until(lambda: "Flows by owner" in page.driver.find_element(By.ID, "details").text, 15,
                       what="switch details")
        if view == "tenants":
            wait_until(lambda: "vm-h10" in page.driver.find_element(By.ID, "view-tenants").text, 15,
                       what="the tenant ports")
            assert "acme" in page.driver.find_element(By.ID, "tenants-networks").text
        if view == "events":
            assert page.js("return document.querySelectorAll('#event-log li').length") > 0
        shots.append(page.screenshot(view))
    page.driver.set_window_size(480, 900)
    try:
        for view in ("topology", "policies"):
            page.view(view)
            time.sleep(1.5)
            width = page.js("return document.documentElement.scrollWidth")
            assert width <= 480, "%s overflows a narrow window: %d px" % (view, width)
            shots.append(page.screenshot(view + "-narrow"))
    finally:
        page.driver.set_window_size(1280, 800)
    print("\ndashboard screenshots: %s" % " ".join(shots))
    assert all(os.path.getsize(s) > 5000 for s in shots)
    assert page.errors() == [], page.errors()


@pytest.mark.timeout_secs(240)
def test_the_tenants_view_shows_the_cloud_hosts_their_tunnels_and_ports():
    """Two cloud hosts that only point their Open vSwitch at Flowgate, a
    tenant network with a VM on each: the Tenants view lists the network,
    each port bound on its host, both hosts and the tunnel between them."""
    cloud = Cloud(n_hosts=2, prefix="fgd", subnet="198.21.0", br_int=False)
    cloud.start()
    ctl = driver = profile = None
    try:
        ctl = new_controller(of_host=cloud.mgmt_ip)
        for host in cloud.hosts:
            host.set_manager("tcp:%s:%d" % (cloud.mgmt_ip, ctl.ovsdb_port))

        def tunnels_up():
            hosts = ctl.rest.request("GET", "/api/v1/chassis").json or []
            return len(hosts) == 2 and all(
                len([t for t in h["tunnels"] if (t["ofport"] or -1) > 0]) == 1 for h in hosts) and hosts

        chassis = wait_until(tunnels_up, 60, interval=0.5, what="2 hosts with a tunnel each")
        for host in cloud.hosts:
            host.add_vm("vm%d" % host.index, "10.0.0.%d/24" % host.index, mac="02:00:00:00:02:%02x" % host.index)
        r = ctl.rest.request("POST", "/api/v1/networks", {"id": "green", "tenant": "initech", "vni": 300,
                                                          "subnet": "10.0.0.0/24"})
        assert r.status == 201, r
        for host in cloud.hosts:
            name = "vm%d" % host.index
            r = ctl.rest.request("POST", "/api/v1/networks/green/ports", {"id": name, "iface_id": name})
            assert r.status == 201, r
        wait_until(lambda: all(p["status"]["bound"] for p in ctl.rest.get("/api/v1/networks/green/ports")),
                   30, what="ports bound")

        driver, profile = _browser()
        page = Page(driver, "http://127.0.0.1:%d" % ctl.rest_port)
        driver.get(page.base + "/#tenants")
        page.view("tenants")

        def shown():
            text = page.js("return document.getElementById('view-tenants').innerText")
            tunnel_tables = page.js(
                "return [...document.querySelectorAll('#tenants-chassis table')]"
                ".filter(t => (t.getAttribute('aria-label') || '').startsWith('tunnels of'))"
                ".map(t => t.querySelectorAll('tbody tr').length)")
            ok = ("green" in text and "initech" in text and "vm1" in text and "vm2" in text
                  and tunnel_tables == [1, 1] and all(c["id"] in text for c in chassis))
            return ok and text

        text = wait_until(shown, 20, interval=0.5, what="the network, both ports, both hosts and their tunnels")
        assert "not bound" not in text, text
        page.screenshot("tenants-cloud")
        assert page.errors() == [], page.errors()
    finally:
        if driver is not None:
            driver.quit()
        if profile:
            shutil.rmtree(profile, ignore_errors=True)
        if ctl is not None:
            release_controller(ctl)
        cloud.stop()
