"""Mutation testing of the critical modules with mutmut 3: would the tests notice if the code were wrong?

    make mutation                                      # every module below (about half an hour on 2 cores)
    python -m tests.mutation quantization feeds        # some of them
    python -m tests.mutation --list                    # the modules and the tests each is checked with

mutmut changes one thing at a time in a module (an operator, a constant, a condition, a returned value) and
runs the tests that reach the changed function; a change no test fails on "survived". The score per module
is killed / (killed + survived), where a mutant that times out counts as killed (an infinite loop is
noticed); the target is 90 %. Survivors are listed with their diff.

mutmut imports the module it mutates by its file's path under the directory it runs in, and the packages
here live in runtime/, converters/ and the root. So each module's run happens in a staging copy
(build/mutation/MODULE by default, or under --work) laid out flat: edgeml_runtime/, edgeml_converters/,
edgeml/ (with the device profiles as edgeml/profiles, as installed) and tests/, never in the work tree,
which other work may be changing meanwhile. The tests of each module are a focused selection (MODULES
below), fast and without TensorFlow, since mutmut runs the tests that reach a function for each of its
mutants.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    path: str  # in the staging copy, i.e. as the package is imported
    tests: Tuple[str, ...]
    deselect: str = ""  # a pytest -k expression for tests too slow to run once per mutant
    functions: Tuple[str, ...] = ()  # score only these ("name" or "Class.name"); empty: the whole module


MODULES: Dict[str, Target] = {
    "quantization": Target("edgeml_runtime/quantization.py", (
        "tests/runtime/test_quantization_oracle.py", "tests/runtime/test_quantization_properties.py")),
    "feeds": Target("edgeml_runtime/feeds.py", (
        "tests/runtime/test_feeds.py", "tests/runtime/test_feeds_properties.py",
        "tests/runtime/test_feeds_rules.py")),
    "validation": Target("edgeml_converters/validation.py", ("tests/converters/test_validation_gates.py",)),
        # The HTTP limits and request parsing (not the connection cap's overflow thread and idle watchdog, whose
    # tests wait for timeouts).
    "http": Target("edgeml_runtime/serve/http.py", (
        "tests/serving/test_http.py", "tests/serving/test_http_limits.py", "tests/serving/test_http_requests.py",
        "tests/security/test_http_hostile_clients.py"),
        deselect="not eight_concurrent_clients and not hot_reload_while_serving and not slowloris and not "
                 "past_the_cap and not flood and not never_arrives and not deeply_nested and not token_file and "
                 "not readme_examples",
        functions=("PredictionHandler._read_body", "PredictionHandler.do_GET", "PredictionHandler.do_POST",
                   "PredictionHandler.do_PUT", "PredictionHandler._fail", "PredictionHandler._send",
                   "PredictionHandler.send_error", "PredictionHTTPServer.authorized", "make_server")),
    # The bundle verifier and the activation (not install, smoke test, signing keys, locking or the commands).
    "agent": Target("edgeml/device/agent.py", (
        "tests/devices/test_bundle_names_properties.py", "tests/devices/test_agent_activation.py",
        "tests/devices/test_agent_verification.py", "tests/devices/test_agent_rules.py"),
        functions=("name_problem", "check_name", "path_problem", "check_path", "check_member_name",
                   "check_manifest", "read_manifest", "extract_verified", "_write_checked", "inside",
                   "Layout.target", "Layout.release", "Layout.is_complete", "Layout.point")),
}


def function_of(mutant: str) -> str:
    """'Class.name' or 'name' of a mutant: module.xǁClassǁname__mutmut_3 or module.x_name__mutmut_3."""
    last = mutant.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    if last.startswith("x\u01c1"):
        return ".".join(part for part in last[2:].split("\u01c1") if part)
    return last[2:] if last.startswith("x_") else last

COPIES = {"runtime/edgeml_runtime": "edgeml_runtime", "converters/edgeml_converters": "edgeml_converters",
          "edgeml": "edgeml", "devices": "edgeml/profiles", "tests": "tests"}


def stage(work: Path, name: str) -> None:
    """The flat copy mutmut runs in for module `name`, with its configuration."""
    if work.exists():
        shutil.rmtree(work)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for source, target in COPIES.items():
        shutil.copytree(ROOT / source, work / target, ignore=ignore, dirs_exist_ok=True)
    target = MODULES[name]
    tests = list(target.tests) + (["-k", target.deselect] if target.deselect else [])
    mutate = [target.path]
    # -x: a mutant is killed by its first failing test; a fixed hypothesis seed: the same examples for every
    # mutant, so a score does not depend on luck.
    work.joinpath("pyproject.toml").write_text(
        "[tool.mutmut]\n"
        f"source_paths = {json.dumps(sorted(set(COPIES.values()) - {'tests', 'edgeml/profiles'}))}\n"
        f"only_mutate = {json.dumps(mutate)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x", "--hypothesis-seed=0"]\n'
        "timeout_multiplier = 5.0\n"
        "use_git_change_detection = false\n"
        "\n[tool.pytest.ini_options]\n"
        'testpaths = ["tests"]\n'
        "timeout = 300\n"
        'markers = ["slow: slow", "ssh: ssh", "emulated: emulated", "mqtt: mqtt"]\n')


def patterns(name: str) -> List[str]:
    """mutmut's names for the mutants of the module's scored functions (all of them: none)."""
    module = MODULES[name].path[:-3].replace("/", ".")
    return [f"{module}.x" + ("\u01c1" + "\u01c1".join(function.split(".")) if "." in function else "_" + function)
            + "__mutmut_*" for function in MODULES[name].functions]


def run(work: Path, children: int, name: str) -> None:
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *patterns(name)]
    done = subprocess.run(command, cwd=work)
    if done.returncode not in (0, 1):  # 1: some mutants survived
        raise SystemExit(f"mutmut run failed (exit {done.returncode})")


def results(work: Path) -> Dict[str, List[str]]:
    """status -> mutant names, from `mutmut results --all true` in the module's staging copy."""
    done = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work,
                          capture_output=True, text=True, check=True)
    by_status: Dict[str, List[str]] = {}
    for line in done.stdout.splitlines():
        match = re.match(r"\s*([\w.]+__mutmut_\d+): (.+)$", line)
        if match:
            by_status.setdefault(match.group(2).strip(), []).append(match.group(1))
    return by_status


def report(work: Path, modules: List[str]) -> int:
    survivors_total = 0
    print(f"\n{'module':<14}{'mutants':>8}{'killed':>8}{'timeout':>8}{'survived':>9}{'no tests':>9}{'score':>8}")
    by_module = {name: results(work / name) for name in modules if (work / name / "mutants").is_dir()}
    modules = [name for name in modules if name in by_module]
    for name in modules:
        scope = MODULES[name].functions
        if scope:
            unscored = {status: [m for m in names if function_of(m) not in scope]
                        for status, names in by_module[name].items()}
            by_module[name] = {status: [m for m in names if function_of(m) in scope]
                               for status, names in by_module[name].items()}
            print(f"{name}: scored over {', '.join(scope)}; {sum(map(len, unscored.values()))} mutants of its other "
                  "functions are not scored")
    for name in modules:
        counts = by_module[name]
        killed, timeout = len(counts.get("killed", [])), len(counts.get("timeout", []))
        survived, untested = len(counts.get("survived", [])), len(counts.get("no tests", []))
        total = sum(len(names) for names in counts.values())
        judged = killed + timeout + survived + untested
        score = (killed + timeout) / judged if judged else 0.0
        print(f"{name:<14}{total:>8}{killed:>8}{timeout:>8}{survived:>9}{untested:>9}{score:>8.1%}")
        other = {status: len(names) for status, names in counts.items()
                 if status not in ("killed", "timeout", "survived", "no tests")}
        if other:
            print(f"{'':<14}also: {other}")
        survivors_total += survived + untested
    for name in modules:
        for mutant in by_module[name].get("survived", []) + by_module[name].get("no tests", []):
            diff = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=work / name,
                                  capture_output=True, text=True).stdout
            print(f"\n--- {name}: {mutant}\n{diff.strip()}")
    return survivors_total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help=f"some of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "mutation", help="the staging copy")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--list", action="store_true", help="list the modules and their tests")
    parser.add_argument("--report-only", action="store_true", help="report the last run in --work again")
    args = parser.parse_args(argv)
    unknown = set(args.modules) - set(MODULES)
    if unknown:
        parser.error(f"unknown module(s) {sorted(unknown)}; choose from {', '.join(MODULES)}")
    modules = args.modules or list(MODULES)
    if args.list:
        for name in modules:
            print(f"{name:<14}{MODULES[name].path}\n{'':<14}{', '.join(MODULES[name].tests)}")
        return 0
    if not args.report_only:
        for name in modules:  # one mutmut run per module: each with its own tests
            print(f"== {name}: {MODULES[name].path}", flush=True)
            stage(args.work / name, name)
            run(args.work / name, args.children, name)
    report(args.work, modules)
    return 0


if __name__ == "__main__":
    sys.exit(main())
