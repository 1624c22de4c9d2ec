"""Mininet node classes for the lab (see /work/shared/LAB.md):

* LabSwitch: Open vSwitch on the userspace datapath (no kernel module here),
  OpenFlow 1.3 only, fail_mode=secure, tagged with the PID of the harness
  that created it so leftovers can be told apart from other people's bridges.
* OffloadHost: turns transmit checksum offload off on every interface, else
  TCP through a userspace bridge arrives with bad checksums and is dropped.
* LabRemoteController: a controller Mininet does not start and does not
  probe with telnet (that probe once hung for minutes).
* LabTCLink: Mininet's TCLink without its "quantum of class is big"
  warnings, which HTB prints for every link faster than about 16 Mbit/s.
"""

import os

from mininet.link import TCIntf, TCLink
from mininet.node import Host, OVSSwitch, RemoteController

OWNER_KEY = "flowgate-lab-owner"


class LabSwitch(OVSSwitch):
    """OVSSwitch with the lab's defaults (datapath=user, OpenFlow13, secure)."""

    def __init__(self, name, datapath="user", protocols="OpenFlow13", failMode="secure", **params):
        super().__init__(name, datapath=datapath, protocols=protocols, failMode=failMode, **params)

    def bridgeOpts(self):
        return super().bridgeOpts() + " external_ids:%s=%d" % (OWNER_KEY, os.getpid())


class OffloadHost(Host):
    """Host with tx checksum offload off on all interfaces and, unless it
    has IPv6 addresses (`ipv6_addrs`, on its first interface) or `ipv6`,
    IPv6 off (router solicitations and MLD reports would otherwise add
    background packet-ins and flows that make tests less deterministic)."""

    def config(self, ipv6=False, ipv6_addrs=(), **params):  # pylint: disable=arguments-differ
        result = super().config(**params)
        for intf in self.intfList():
            if intf.name != "lo":
                self.cmd("ethtool -K %s tx off >/dev/null 2>&1" % intf.name)
        if not (ipv6 or ipv6_addrs):
            for key in ("all", "default", "lo"):
                self.cmd("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1" % key)
        for addr in ipv6_addrs:
            self.cmd("ip -6 addr add %s dev %s nodad" % (addr, self.defaultIntf()))
        return result


class LabRemoteController(RemoteController):
    """RemoteController without Mininet's telnet probe; readiness is checked
    by the harness through ovsdb's is_connected instead."""

    def checkListening(self):
        return None


class _QuietTCIntf(TCIntf):
    def tc(self, cmd, tc="tc"):
        out = super().tc(cmd, tc)
        return "\n".join(line for line in out.splitlines() if "quantum of class" not in line)


class LabTCLink(TCLink):
    """TCLink (bw, delay, jitter, loss, max_queue_size) with interfaces that
    drop HTB's harmless r2q warning instead of logging it as an error."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("cls1", _QuietTCIntf)
        kwargs.setdefault("cls2", _QuietTCIntf)
        super().__init__(*args, **kwargs)
