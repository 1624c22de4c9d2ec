"""The OpenAPI document is the truth (issue 19 item 9): schemathesis runs
every check it has (`--checks all`: status codes and content types
documented, answers matching their schemas, data the document allows
accepted and data it forbids refused, the token enforced where the
document says, resources usable after they are created, stateful
sequences through the links it infers) against a running controller, for a
bounded time, and must find nothing.

The controller runs with a token, also for reads, so the security the
document declares is checked on every operation. Settings:
tests/schemathesis.toml. Environment: FLOWGATE_SCHEMATHESIS_SECONDS (time
budget, default 120), FLOWGATE_SCHEMATHESIS_SEED (default a fixed seed,
so a run can be repeated; `random` for a new one)."""

import os
import subprocess

import pytest

from conftest import new_controller, release_controller

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "contract-test-token"
SEED = "20261206"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("contract")
    token = run_dir / "token"
    token.write_text(TOKEN + "\n")
    config = run_dir / "flowgate.toml"
    config.write_text('api_token_file = "%s"\n[rest]\nauth_reads = true\n' % token)
    ctl = new_controller(config=str(config))
    try:
        yield ctl
    finally:
        release_controller(ctl)


def schemathesis():
    """The pinned schemathesis, installed on first use."""
    out = subprocess.run(
        [os.path.join(ROOT, "tools", "install-schemathesis")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.returncode == 0, "installing schemathesis failed:\n%s" % out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.timeout_secs(900)
def test_schemathesis_finds_nothing(secured, tmp_path):
    seconds = int(os.environ.get("FLOWGATE_SCHEMATHESIS_SECONDS", "120"))
    seed = os.environ.get("FLOWGATE_SCHEMATHESIS_SEED", SEED)
    base = "http://127.0.0.1:%d" % secured.rest_port
    argv = [
        schemathesis(),
        "--config-file", os.path.join(ROOT, "tests", "schemathesis.toml"),
        "run", base + "/api/v1/openapi.json",
        "--url", base,
        "-H", "Authorization: Bearer " + TOKEN,
        "--checks", "all",
        "--max-time", str(seconds),
        # One worker: Debian's Python 3.11.2 corrupts hypothesis's AST cache
        # when workers parse lambdas at once.
        "--workers", "1",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    if seed != "random":
        argv += ["--seed", seed]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 300,
                         cwd=str(tmp_path), check=False)
    summary = run.stdout[run.stdout.rfind("SUMMARY"):] if "SUMMARY" in run.stdout else run.stdout[-3000:]
    print(summary)
    assert run.returncode == 0, "schemathesis found problems:\n%s\n%s" % (run.stdout[-20000:], run.stderr[-3000:])
    assert secured.running(), "the controller died under schemathesis"
