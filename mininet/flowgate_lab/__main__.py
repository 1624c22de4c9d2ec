"""Bring a lab network up against Flowgate, then open the Mininet CLI or run
commands.

    /usr/bin/python3 mininet/lab.py topologies/campus.yaml --apply          (own flowgate)
    /usr/bin/python3 mininet/lab.py topologies/campus.yaml --controller 127.0.0.1:6653 --apply
    /usr/bin/python3 mininet/lab.py topologies/ring5.yaml --run pingall      (exit 1 unless as expected)
    /usr/bin/python3 mininet/lab.py --topo tree,2,3                          (a generator shorthand)
    /usr/bin/python3 mininet/lab.py --custom mytopo.py --topo mytopo,2       (a classic Mininet file)
    ... --controller testcontroller      Open vSwitch's reference controller
    ... --cloud-smoke                    check the multi-host overlay lab

A scenario file (topologies/README.md) describes switches, hosts, links,
cloud hosts with VMs, policies and expected reachability. Without
--controller the lab runs its own flowgate on free ports; `--controller
HOST:PORT` uses a running one (REST at --rest, OVSDB at --ovsdb-port for
cloud hosts). --apply pushes the file's policies (tools/flowgate-push).

Switches are Open vSwitch on the userspace datapath (`--switch
ovs,protocols=OpenFlow10` for OpenFlow 1.0), fail_mode=secure. In the CLI,
`pingall` pings every pair of hosts and VMs and compares with the file's
`expect` section; a VM's name runs a command in it (`blue1 ping 10.20.0.2`).
Everything the run created is removed on exit (also on Ctrl-C and
errors); never `mn -c`.
"""

import argparse
import os
import sys
import tempfile

from mininet.cli import CLI
from mininet.net import Mininet
from mininet.topo import Topo
from mininet.util import buildTopo

from . import scenario as scn
from .bringup import RemoteController, ScenarioLab, wait_network_ready
from .controller import FlowgateController, OvsTestController
from .net import LabNet
from .rest import RestClient
from .util import LabError


def parse_switch(spec):
    """`ovs,datapath=user,protocols=OpenFlow13[,failMode=secure]` -> kwargs."""
    kind, *opts = spec.split(",")
    if kind != "ovs":
        raise ValueError("only --switch ovs[,key=value...] is supported")
    kwargs = {}
    for opt in opts:
        key, _, value = opt.partition("=")
        kwargs[{"fail_mode": "failMode"}.get(key, key)] = value
    return kwargs


def load_custom(path):
    """The topologies of a classic Mininet `--custom` file: its `topos`
    dict (name -> constructor) plus every Topo subclass it defines, by
    class name. Executed the way `mn --custom` does it."""
    try:
        with open(path, encoding="utf-8") as fh:
            code = compile(fh.read(), path, "exec")
    except (OSError, SyntaxError) as err:
        raise LabError("--custom %s: %s" % (path, err)) from None
    env = {"__file__": os.path.abspath(path), "__name__": "mininet_custom"}
    exec(code, env, env)  # noqa: S102 - the user's own topology file, as mn runs it
    topos = dict(env.get("topos") or {})
    for name, value in env.items():
        if isinstance(value, type) and issubclass(value, Topo) and value.__module__ == "mininet_custom":
            topos.setdefault(name, value)
    if not topos:
        raise LabError("--custom %s defines no `topos` and no Topo subclass" % path)
    return topos


def _controller_address(text):
    """`remote`, `remote:IP:PORT` or `IP:PORT` -> (host, port), else None."""
    if text.startswith("remote"):
        _, _, text = text.partition(":")
        text = text or "127.0.0.1:6653"
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host or "127.0.0.1", int(port)


def controller_factory(args):
    """A function of_host -> started controller, as --controller says."""
    if args.controller == "flowgate":
        def make(of_host):
            # Cloud hosts dial the management address: listen there.
            return FlowgateController(binary=args.flowgate_bin, of_host=of_host, of_port=args.of_port,
                                      rest_port=args.rest_port, data_dir=args.data_dir, config=args.config,
                                      log_level=args.log).start()
        return make
    if args.controller == "testcontroller":
        return lambda of_host: OvsTestController(of_host=of_host, of_port=args.of_port).start()
    address = _controller_address(args.controller)
    if address is None:
        raise LabError("unknown --controller %r (flowgate, testcontroller or HOST:PORT)" % args.controller)
    rest = args.rest or os.environ.get("FLOWGATE_URL") or "http://127.0.0.1:8080"
    try:
        RestClient(rest, timeout=3).health()
    except Exception:  # noqa: BLE001 - any failure means "no REST here"
        if args.apply:
            raise LabError("--apply: no Flowgate REST API at %s (give --rest URL)" % rest) from None
        print("*** no REST API at %s: not waiting for discovery" % rest)
        rest = None
    return lambda of_host: RemoteController(address[0], address[1], rest, args.ovsdb_port)


class LabCLI(CLI):
    """Mininet's CLI plus the scenario: `pingall` checks the expected
    reachability (hosts and VMs), a VM's name runs a command in it."""

    def __init__(self, mininet, check, vms=None, **kwargs):
        self.check = check
        self.vms = vms or {}
        self.failures = 0
        super().__init__(mininet, **kwargs)

    def do_pingall(self, _line):
        """Ping every pair of hosts and VMs; compare with the file's expect section."""
        ok, text = self.check()
        print(text)
        if not ok:
            self.failures += 1

    def do_vms(self, _line):
        """List the VMs and their namespaces."""
        for name, ns in sorted(self.vms.items()):
            print("%s\t%s" % (name, ns))

    def default(self, line):
        first, args, _ = self.parseline(line)
        if first in self.vms and args:
            os.spawnvp(os.P_WAIT, "ip", ["ip", "netns", "exec", self.vms[first], "sh", "-c", args])
            return
        super().default(line)


def _describe(sc):
    parts = ["%d switches" % len(sc.switches), "%d hosts" % len(sc.hosts)]
    if sc.cloud:
        parts.append("%d cloud hosts with %d VMs" % (len(sc.cloud.hosts), len(sc.vms())))
    if sc.policies:
        parts.append("policies: %s" % ", ".join(sc.policies))
    return "%s (%s)" % (sc.name, ", ".join(parts))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lab.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", help="a scenario file (topologies/*.yaml)")
    parser.add_argument("--topo", default=None,
                        help="generator shorthand: linear,K[,N] | tree,D,F | mesh,N | ring,N | single,K | fattree,K | "
                             "diamond (default linear,3); with --custom: NAME[,args] of the file's topologies")
    parser.add_argument("--custom", help="a Mininet topology file (`topos = {...}` or Topo classes), as mn --custom")
    parser.add_argument("--switch", default="ovs,datapath=user,protocols=OpenFlow13")
    parser.add_argument("--controller", default="flowgate",
                        help="flowgate (default: start one) | testcontroller | HOST:PORT (a running controller)")
    parser.add_argument("--rest", default=None, help="REST URL of a running controller "
                        "(default $FLOWGATE_URL or http://127.0.0.1:8080)")
    parser.add_argument("--ovsdb-port", type=int, default=6640, help="OVSDB port of a running controller (6640)")
    parser.add_argument("--apply", action="store_true", help="push the scenario's policies")
    parser.add_argument("--run", action="append", default=[], metavar="CMD",
                        help="run a CLI command instead of the CLI (repeatable); `pingall` sets the exit status")
    parser.add_argument("--flowgate-bin", default=None, help="default: $FLOWGATE_BIN or target/release/flowgate")
    parser.add_argument("--of-port", type=int, default=None, help="OpenFlow port (default: a free one)")
    parser.add_argument("--rest-port", type=int, default=None, help="REST port (default: a free one)")
    parser.add_argument("--data-dir", default=None, help="flowgate data dir (default: a temp dir)")
    parser.add_argument("--config", default=None, help="flowgate --config FILE.toml")
    parser.add_argument("--log", default="info", help="flowgate --log level")
    parser.add_argument("--cloud-prefix", default="fgc", help="name prefix of the cloud's namespaces (fgc)")
    parser.add_argument("--no-cli", action="store_true", help="same as --run pingall")
    parser.add_argument("--cloud-smoke", action="store_true", help="build and check the multi-host overlay lab")
    args = parser.parse_args(argv)

    if args.cloud_smoke:
        from .cloud import smoke  # pylint: disable=import-outside-toplevel

        print(smoke())
        return 0
    commands = args.run + (["pingall"] if args.no_cli else [])
    try:
        if args.custom:
            if args.scenario:
                raise LabError("give a scenario file or --custom, not both")
            topos = load_custom(args.custom)
            spec = args.topo or (next(iter(topos)) if len(topos) == 1 else None)
            if spec is None:
                raise LabError("--custom %s has several topologies: pick one with --topo (%s)"
                               % (args.custom, ", ".join(sorted(topos))))
            try:
                network = buildTopo(topos, spec)
            except Exception as err:  # noqa: BLE001 - Mininet raises plain Exceptions
                raise LabError("--topo %s: %s" % (spec, err)) from None
        elif args.scenario:
            if args.topo:
                raise LabError("give a scenario file or --topo, not both")
            network = scn.load(args.scenario)
        else:
            network = scn.from_spec(args.topo or "linear,3")
        if args.apply and not isinstance(network, scn.Scenario):
            raise LabError("--apply needs a scenario file")
        return _run(args, network, commands)
    except (LabError, scn.ScenarioError, ValueError) as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2


def _run(args, network, commands):
    factory = controller_factory(args)
    switch_opts = parse_switch(args.switch)
    ctl = None

    def make(of_host):
        nonlocal ctl
        ctl = factory(of_host)
        print("*** controller: %s:%d" % (ctl.of_host, ctl.of_port), end="")
        if isinstance(ctl, FlowgateController):
            print(", REST http://127.0.0.1:%d, log %s" % (ctl.rest_port, ctl.log_path), end="")
        if getattr(ctl, "ovsdb_port", None):
            print(", OVSDB port %d" % ctl.ovsdb_port, end="")
        print()
        return ctl

    try:
        if isinstance(network, scn.Scenario):
            print("*** scenario %s" % _describe(network))
            lab = ScenarioLab(network, make, switch_opts=switch_opts, cloud_prefix=args.cloud_prefix,
                              log_level="info")
            with lab:
                if args.apply:
                    print("*** applying policies")
                    lab.apply_policies(out=sys.stdout)
                if getattr(ctl, "rest", None) is not None:
                    print("*** waiting for the controller to discover the network")
                    lab.wait_ready()

                def check():
                    result = lab.reachability()
                    return result.ok, "%s\n*** reachability: %s" % (result.table(), result.summary())

                net = lab.lab.net if lab.lab is not None else Mininet(build=False)
                return _cli(net, check, lab.vm_namespaces(), commands)
        lab = LabNet(network, make("127.0.0.1"), switch_opts=switch_opts, log_level="info")
        with lab:
            if getattr(ctl, "rest", None) is not None:
                print("*** waiting for the controller to discover the network")
                wait_network_ready(ctl, lab)

            def check():
                result = lab.pingall()
                return not result.failed, "*** %s" % result

            return _cli(lab.net, check, {}, commands)
    finally:
        if ctl is not None:
            ctl.cleanup()


def _cli(net, check, vms, commands):
    """The interactive CLI, or `commands` in order; 1 when a pingall was
    not as expected."""
    if not commands:
        LabCLI(net, check, vms)
        return 0
    with tempfile.NamedTemporaryFile("w", prefix="flowgate-lab-", suffix=".cli") as script:
        script.write("\n".join(commands) + "\n")
        script.flush()
        cli = LabCLI(net, check, vms, script=script.name)
    return 1 if cli.failures else 0


if __name__ == "__main__":
    sys.exit(main())
