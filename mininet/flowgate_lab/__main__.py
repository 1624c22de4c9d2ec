"""Start a controller and a topology for a human, then open the Mininet CLI.

    /usr/bin/python3 -m flowgate_lab --topo linear,3            (from mininet/)
    /usr/bin/python3 mininet/lab.py --topo tree,2,2              (from the repo)
    ... --controller testcontroller      Open vSwitch's reference controller
    ... --controller remote:127.0.0.1:6653  a controller you run yourself
    ... --cloud-smoke                    check the multi-host overlay lab

Defaults follow `--switch ovs,datapath=user,protocols=OpenFlow13
--controller remote` with fail_mode=secure, on free ports; everything the
run created is removed on exit (also on Ctrl-C and errors).
"""

import argparse
import sys

from mininet.cli import CLI

from .controller import FlowgateController, OvsTestController
from .net import LabNet
from .util import LabError


class _Remote:
    """A controller that someone else runs: only its address."""

    def __init__(self, host, port):
        self.of_host = host
        self.of_port = port
        self.log_path = None

    def start(self):
        return self

    def cleanup(self):
        return None


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


def make_controller(args):
    """The controller named by --controller."""
    if args.controller == "flowgate":
        return FlowgateController(
            binary=args.flowgate_bin,
            of_port=args.of_port,
            rest_port=args.rest_port,
            data_dir=args.data_dir,
            config=args.config,
            log_level=args.log,
        )
    if args.controller == "testcontroller":
        return OvsTestController(of_port=args.of_port)
    if args.controller.startswith("remote"):
        _, _, addr = args.controller.partition(":")
        host, _, port = (addr or "127.0.0.1:6653").rpartition(":")
        return _Remote(host or "127.0.0.1", int(port))
    raise ValueError("unknown --controller %r" % args.controller)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="flowgate_lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topo", default="linear,3", help="linear,N | tree,D,F | mesh,N | ring,N | single,N | fattree,K | diamond")
    parser.add_argument("--switch", default="ovs,datapath=user,protocols=OpenFlow13")
    parser.add_argument("--controller", default="flowgate",
                        help="flowgate (default) | testcontroller | remote[:IP:PORT]")
    parser.add_argument("--flowgate-bin", default=None, help="default: $FLOWGATE_BIN or target/release/flowgate")
    parser.add_argument("--of-port", type=int, default=None, help="OpenFlow port (default: a free one)")
    parser.add_argument("--rest-port", type=int, default=None, help="REST port (default: a free one)")
    parser.add_argument("--data-dir", default=None, help="flowgate data dir (default: a temp dir)")
    parser.add_argument("--config", default=None, help="flowgate --config FILE.toml")
    parser.add_argument("--log", default="info", help="flowgate --log level")
    parser.add_argument("--no-cli", action="store_true", help="pingall once and exit (non-zero on loss)")
    parser.add_argument("--cloud-smoke", action="store_true", help="build and check the multi-host overlay lab")
    args = parser.parse_args(argv)

    if args.cloud_smoke:
        from .cloud import smoke

        print(smoke())
        return 0

    ctl = make_controller(args)
    try:
        ctl.start()
        print("*** controller: %s:%d" % (ctl.of_host, ctl.of_port), end="")
        if isinstance(ctl, FlowgateController):
            print(", REST http://127.0.0.1:%d, log %s" % (ctl.rest_port, ctl.log_path), end="")
            if ctl.ovsdb_port is not None:
                print(", OVSDB %s:%d" % (ctl.listen_host, ctl.ovsdb_port), end="")
        print()
        lab = LabNet(args.topo, ctl, switch_opts=parse_switch(args.switch), log_level="info")
        with lab:
            if args.no_cli:
                result = lab.pingall()
                print(result)
                return 1 if result.failed else 0
            CLI(lab.net)
    except LabError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    finally:
        ctl.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
