"""flowgate-bench against a real controller, briefly: 16 emulated switches
complete the handshake, and every packet-in they send is answered by a
message naming its host or releasing its buffer (the bench's --verify), in
latency and throughput mode: OpenFlow 1.3 switches sending Flowgate's own
packet-ins, and switches shaped like the stock tools (cbench: OpenFlow 1.0,
buffered, only desc stats answered, packet-ins from the first millisecond;
1.3 table misses with cookie 0). Figures are printed, never asserted."""

import os
import subprocess

import pytest
from conftest import new_controller, release_controller

from flowgate_lab.controller import REPO_ROOT, default_flowgate_bin


def bench_bin():
    """$FLOWGATE_BENCH_BIN, else flowgate-bench next to the flowgate binary,
    built there (same target directory) if it is missing."""
    path = os.environ.get("FLOWGATE_BENCH_BIN") or os.path.join(
        os.path.dirname(default_flowgate_bin()), "flowgate-bench"
    )
    if not os.access(path, os.X_OK) and "FLOWGATE_BENCH_BIN" not in os.environ:
        target = os.path.dirname(os.path.dirname(os.path.abspath(path)))
        subprocess.run(
            ["cargo", "build", "--release", "-p", "flowgate-bench"],
            cwd=REPO_ROOT,
            env=dict(os.environ, CARGO_TARGET_DIR=target),
            check=True,
            timeout=900,
        )
    if not os.access(path, os.X_OK):
        pytest.fail("flowgate-bench not built: %s (cargo build --release -p flowgate-bench)" % path)
    return path


@pytest.fixture(scope="module")
def learning_controller(tmp_path_factory):
    """The bench exercises reactive learning (packet-ins from the learn
    table's miss entry), so this controller runs the learning module."""
    config = tmp_path_factory.mktemp("bench") / "flowgate.toml"
    config.write_text('[forwarding]\nmode = "learning"\n')
    ctl = new_controller(config=str(config), log_level="warn")
    try:
        yield ctl
    finally:
        release_controller(ctl)


def run_bench(ctl, *args):
    argv = [bench_bin(), "run", "--controller", "127.0.0.1:%d" % ctl.of_port, "--verify", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert result, proc.stdout
    return dict(kv.split("=", 1) for kv in result[-1].split()[1:])


@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_every_packet_in_is_answered(learning_controller, mode):
    result = run_bench(
        learning_controller,
        "--mode", mode, "--switches", "16", "--macs", "100",
        "--loops", "2", "--warmup", "1", "--duration-ms", "500",
    )  # fmt: skip
    assert result["unanswered"] == "0", result
    assert float(result["avg"]) > 0, result
    # New hosts get two entries (learn + forward), known ones their source
    # entry again: never less than one response per packet-in.
    assert float(result["per_packet_in"]) >= 1.0, result
    # No switch was too slow for its queue, none was refused.
    log = learning_controller.log_text()
    assert "send queue full" not in log and "closing connection" not in log, log[-2000:]


@pytest.mark.parametrize("mode", ["latency", "throughput"])
@pytest.mark.parametrize("like", ["cbench", "table-miss"])
def test_stock_tool_shaped_switches_get_one_message_per_packet_in(learning_controller, like, mode):
    result = run_bench(
        learning_controller,
        "--like", like, "--mode", mode, "--switches", "16", "--macs", "100",
        "--loops", "2", "--warmup", "1", "--duration-ms", "500",
    )  # fmt: skip
    # The switches never answer their flow dump, and send packet-ins before
    # the handshake is over: none is lost.
    assert result["unanswered"] == "0", result
    assert float(result["avg"]) > 0, result
    # Every host is known after the warm-up: one FLOW_MOD carrying the
    # buffer (cbench), or one PACKET_OUT (a 1.3 table miss), per packet-in.
    assert abs(float(result["per_packet_in"]) - 1.0) < 0.05, result
    if like == "cbench":
        assert float(result["flows"]) > 0, result
    log = learning_controller.log_text()
    assert "send queue full" not in log and "closing connection" not in log, log[-2000:]
