"""Shared fixtures for Flowgate's end-to-end tests.

Run as root with Debian's interpreter (it has the `mininet` module):
    FLOWGATE_BIN=target/release/flowgate /usr/bin/python3 -m pytest tests/ -v

Environment:
  FLOWGATE_BIN            binary under test (default target/release/flowgate)
  FLOWGATE_LAB_LOG        flowgate --log level (default "info")
  FLOWGATE_LAB_ARTIFACTS  copy every controller log there at teardown
  FLOWGATE_LAB_KEEP=1     keep controller run directories (data dir, log)
  FLOWGATE_TEST_TIMEOUT   per-test limit in seconds (default 300)
  FLOWGATE_LAB_LOCK_WAIT  seconds to wait while another lab run holds the
                          machine's Mininet/cloud names (default 900)

Fixtures are module-scoped: each test file gets its own controller and
network and tears them down at its end, also when a test fails.
"""

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mininet"))

try:
    import mininet.net  # noqa: F401  (Debian's python3-mininet)
except ImportError:  # pragma: no cover - wrong interpreter
    raise pytest.UsageError(
        "the `mininet` module is missing: run the e2e tests with /usr/bin/python3 -m pytest tests/"
    )

from flowgate_lab import FlowgateController, LabNet  # noqa: E402
from flowgate_lab.checks import wait_controller_ready  # noqa: E402

TOPOLOGIES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "topologies")


def topology(name):
    """Path of a shipped scenario, topologies/<name>.yaml."""
    return os.path.join(TOPOLOGIES, name + ".yaml")


# Controllers started by fixtures, so a failing test can show their logs.
_CONTROLLERS = []


def _terminate(_signum, _frame):
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout_secs(n): per-test time limit in seconds")
    # SIGTERM (e.g. from `timeout` in tools/test-all.sh) becomes an interrupt,
    # so pytest still runs fixture teardown and removes the lab.
    signal.signal(signal.SIGTERM, _terminate)
    # Mininet 2.3 uses distutils' StrictVersion on every switch start.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:mininet.node")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


class _TestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _time_limit(request):
    """Fail a test that runs too long (SIGALRM), so teardown still runs."""
    marker = request.node.get_closest_marker("timeout_secs")
    limit = int(marker.args[0]) if marker else int(os.environ.get("FLOWGATE_TEST_TIMEOUT", "300"))

    def expire(_signum, _frame):
        raise _TestTimeout("test exceeded %ds" % limit)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def _controller_log_on_failure(request):
    """On failure, print the tail of every live controller's log."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for ctl in _CONTROLLERS:
            print("\n--- %s log (%s), last lines ---\n%s" % (ctl.name, ctl.log_path, ctl.log_tail(60)))


def _require_root():
    if os.geteuid() != 0:
        pytest.fail("end-to-end tests need root (network namespaces, Open vSwitch)", pytrace=False)


def new_controller(kind=FlowgateController, **kwargs):
    """Start a flowgate controller (a FlowgateController, or `kind`, e.g.
    NamespacedFlowgate) registered for log dumps; caller cleans up."""
    _require_root()
    kwargs.setdefault("log_level", os.environ.get("FLOWGATE_LAB_LOG", "info"))
    ctl = kind(**kwargs)
    _CONTROLLERS.append(ctl)
    try:
        ctl.start()
    except BaseException:
        release_controller(ctl)
        raise
    return ctl


def release_controller(ctl):
    """Stop a controller from new_controller() and forget it."""
    try:
        ctl.cleanup()
    finally:
        if ctl in _CONTROLLERS:
            _CONTROLLERS.remove(ctl)


@pytest.fixture
def make_controller():
    """Factory: start flowgate controllers (kwargs of FlowgateController);
    all of them are stopped when the test ends."""
    started = []

    def make(**kwargs):
        ctl = new_controller(**kwargs)
        started.append(ctl)
        return ctl

    try:
        yield make
    finally:
        for ctl in started:
            release_controller(ctl)


@pytest.fixture(scope="module")
def controller():
    """A flowgate controller of this test module, on free ports."""
    ctl = new_controller()
    try:
        yield ctl
    finally:
        release_controller(ctl)


@pytest.fixture(scope="module")
def linear3(controller):
    """topologies/linear3.yaml connected to this module's controller:
    (controller, LabNet)."""
    lab = LabNet(topology("linear3"), controller)
    lab.start(connect_timeout=90)
    try:
        wait_controller_ready(controller, [1, 2, 3])
        yield controller, lab
    finally:
        lab.stop()
