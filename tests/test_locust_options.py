"""pegbench's options on Locust's real command-line parser, and the exit code of a plain run.

Locust is imported only in a subprocess (importing it monkey-patches the process): the
script builds Locust's own parser, adds pegbench's options as the locustfile does, parses
command lines, and reports what they resolve to as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadgen.config.profile import load_profile

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]
QUICK = "profiles/quick.toml"

SCRIPT = r"""
import json, sys
from types import SimpleNamespace
import locust
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments
from loadgen.errors import ConfigError
from loadgen.harness.hooks import default_exit_code
from loadgen.harness.options import add_arguments, exit_code_on_error, settings_from_options

def parser():
    p = get_empty_argument_parser(add_help=True, default_config_files=[])
    setup_parser_arguments(p)
    add_arguments(p)            # what the locustfile's init_command_line_parser does
    return p

out = {}
both = parser().parse_args(["-f", "loadgen/locustfile.py", "--profile", "nightly",
                            "--pegbench-profile", sys.argv[1], "--meta", "h:1"])
s = settings_from_options(both)
out["both"] = {"locust_profile": both.profile, "pegbench_profile": both.pegbench_profile,
               "users": s.workload.users, "meta": list(s.meta)}
old = parser().parse_args(["-f", "loadgen/locustfile.py", "--profile", sys.argv[1],
                           "--meta", "h:1"])
try:
    settings_from_options(old)
    out["old_spelling"] = None
except ConfigError as exc:
    out["old_spelling"] = str(exc)
out["help"] = parser().format_help()

def code(argv, errors, exceptions=()):
    options = parser().parse_args(["-f", "loadgen/locustfile.py", *argv])
    runner = SimpleNamespace(errors=dict.fromkeys(errors, 1), exceptions=dict.fromkeys(exceptions))
    env = SimpleNamespace(runner=runner, parsed_options=options)
    return [exit_code_on_error(options), default_exit_code(env)]

out["codes"] = {
    "default, failed requests": code([], ["put"]),
    "explicit 5, failed requests": code(["--exit-code-on-error", "5"], ["put"]),
    "explicit 5, no failure": code(["--exit-code-on-error", "5"], []),
    "explicit 1, failed requests": code(["--exit-code-on-error", "1"], ["put"]),
    "explicit 5, a crash": code(["--exit-code-on-error", "5"], ["put"], ["boom"]),
}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def parsed() -> dict:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, QUICK], cwd=REPO, capture_output=True,
                          text=True, check=False, timeout=50)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pegbench_profile_parses_beside_locusts_own_profile(parsed):
    both = parsed["both"]
    assert both["locust_profile"] == "nightly"       # Locust's run-group name, untouched
    assert both["pegbench_profile"] == QUICK
    assert both["users"] == load_profile(QUICK).workload.users and both["meta"] == ["h:1"]


def test_a_toml_file_given_to_locusts_profile_points_to_the_new_option(parsed):
    assert parsed["old_spelling"] is not None
    assert "--pegbench-profile profiles/quick.toml" in parsed["old_spelling"]


def test_the_option_group_says_why_failed_requests_do_not_fail_a_run(parsed):
    # (Locust 2.47 prints `locust --help` before importing a locustfile, so no custom option
    # shows there; the exit-code rule is also in the locustfile's docstring and the README)
    text = " ".join(parsed["help"].split())
    assert "--pegbench-profile" in text
    assert "requests fail by design" in text and "--exit-code-on-error is given explicitly" in text


def test_exit_code_on_error_is_honoured_only_when_given(parsed):
    codes = parsed["codes"]
    assert codes["default, failed requests"] == [None, 0]   # a fault run's failures by design
    assert codes["explicit 5, failed requests"] == [5, 5]
    assert codes["explicit 5, no failure"] == [5, 0]
    assert codes["explicit 1, failed requests"] == [1, 1]   # an explicit 1 is not the default
    assert codes["explicit 5, a crash"] == [5, 3]           # pegbench's own bug comes first
