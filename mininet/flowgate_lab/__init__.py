"""Flowgate's lab harness: Mininet topologies on Open vSwitch's userspace
datapath, a controller process manager, OVS and REST helpers, and the
multi-host "cloud" building blocks for overlay tests.

Run with Debian's /usr/bin/python3 (it has the `mininet` module), as root.
"""

from .controller import FlowgateController, OvsTestController, default_flowgate_bin
from .net import LabNet, PingResult
from .ovs import Flow, cookie_owner, dump_flows, parse_dump_flows
from .rest import RestClient, dpid_str
from .topos import make_topo
from .util import LabError, free_port, wait_until

__all__ = [
    "Flow",
    "FlowgateController",
    "LabError",
    "LabNet",
    "OvsTestController",
    "PingResult",
    "RestClient",
    "cookie_owner",
    "default_flowgate_bin",
    "dpid_str",
    "dump_flows",
    "free_port",
    "make_topo",
    "parse_dump_flows",
    "wait_until",
]
