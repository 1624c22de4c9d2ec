"""The multi-host overlay lab: building blocks work (manual tunnels), and
every cloud host's br-int reaches flowgate over the management network."""

import pytest

from flowgate_lab import wait_until
from flowgate_lab.checks import wait_rest_switches
from flowgate_lab.cloud import Cloud, smoke


@pytest.mark.timeout_secs(300)
def test_cloud_building_blocks():
    result = smoke(n_hosts=2)
    assert result["underlay_ping"] == 3 and result["overlay_ping"] == 3, result
    assert result["overlay_big_ping_ok"], result


@pytest.fixture
def cloud():
    lab = Cloud(n_hosts=2)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


@pytest.mark.timeout_secs(300)
def test_cloud_hosts_connect_to_flowgate(cloud, make_controller):
    ctl = make_controller(of_host=cloud.mgmt_ip)
    for i, host in enumerate(cloud.hosts, start=1):
        host.add_vm("vm1", "10.10.0.%d/24" % i)
        host.set_controller("tcp:%s:%d" % (cloud.mgmt_ip, ctl.of_port))
    for host in cloud.hosts:
        wait_until(host.br_int_connected, 60, what="%s br-int to connect" % host.name)
    dpids = [0xC000 + h.index for h in cloud.hosts]
    switches = {sw["dpid_int"]: sw for sw in wait_rest_switches(ctl, dpids)}
    for dpid in dpids:
        names = {p["name"] for p in switches[dpid]["ports"]}
        assert "vm1" in names, names
        assert not switches[dpid]["address"].startswith("127."), switches[dpid]["address"]
