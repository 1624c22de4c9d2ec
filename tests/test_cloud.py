"""The multi-host overlay lab: building blocks work (manual tunnels), and
every cloud host's br-int reaches flowgate over the management network
(topologies/cloud2.yaml)."""

import pytest

from conftest import topology
from flowgate_lab import scenario, wait_until
from flowgate_lab.checks import wait_rest_switches
from flowgate_lab.cloud import Cloud, smoke

CLOUD = scenario.load(topology("cloud2")).cloud


@pytest.mark.timeout_secs(300)
def test_cloud_building_blocks():
    result = smoke(n_hosts=2)
    assert result["underlay_ping"] == 3 and result["overlay_ping"] == 3, result
    assert result["overlay_big_ping_ok"], result


@pytest.fixture
def cloud():
    lab = Cloud.from_scenario(CLOUD)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


@pytest.mark.timeout_secs(300)
def test_cloud_hosts_connect_to_flowgate(cloud, make_controller):
    ctl = make_controller(of_host=cloud.mgmt_ip)
    cloud.add_vms(CLOUD)
    for host in cloud.hosts:
        host.set_controller("tcp:%s:%d" % (cloud.mgmt_ip, ctl.of_port))
    for host in cloud.hosts:
        wait_until(host.br_int_connected, 60, what="%s br-int to connect" % host.name)
    dpids = [h.dpid for h in CLOUD.hosts]
    switches = {sw["dpid_int"]: sw for sw in wait_rest_switches(ctl, dpids)}
    for spec in CLOUD.hosts:
        names = {p["name"] for p in switches[spec.dpid]["ports"]}
        assert {vm.name for vm in spec.vms} <= names, names
        assert not switches[spec.dpid]["address"].startswith("127."), switches[spec.dpid]["address"]
