"""What each command imports before it works: ``--help``, ``--version`` and a refused option
load no heavy library; ``alrp analyze`` loads numpy and torch (its loss values), never
torchvision, torch._dynamo, scipy.stats, pandas (without --csv-dir) or the detection package.
Every command's tree reads the training configuration's declaration for ``alrp train``'s
options; it lives outside the detection package (``alrp_cli.config``: plain data and the
standard library), so it loads none of these either.

Checked by ``sys.modules``, in an interpreter per command, not by timing: the times are
in docs/benchmarks.md ("Start-up", from benchmarks/bench_startup.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from alrp_cli.cli.app import command_paths
from tests.helpers.paths import REPO, SHARED_DATA

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the driver forks (POSIX)")

#: Modules (with everything under them) that a command should load only when it needs them.
HEAVY = (
    "numpy",
    "torch",
    "torch._dynamo",
    "torchvision",
    "scipy.stats",
    "pandas",
    "matplotlib",
    "seaborn",
    "PIL",
    "pycocotools",
    "alrp_cli.detection",
    "alrp_cli.balance",
    "alrp_cli.integrations",
    "analysis",
)
# One interpreter imports the command tree, checks that this loaded nothing heavy, then
# forks once per case: each child is an interpreter as fresh as the `alrp` script's when it
# calls main(), runs one command (its output thrown away) and reports its exit code and the
# heavy modules loaded. The children run side by side; a command that imports more than
# its share shows it in its own report.
DRIVER = f"""
import json, os, sys
heavy = json.loads({json.dumps(HEAVY)!r})
def loaded():
    return [h for h in heavy if any(m == h or m.startswith(h + ".") for m in sys.modules)]
from alrp_cli.cli.app import main
cases, tree = json.loads(sys.argv[1]), loaded()
children = []
for args, cwd in cases:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one command, then out, whatever happens
        try:
            os.close(read)
            os.chdir(cwd)
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            sys.argv = ["alrp", *args]
            main()
            code = 0
        except SystemExit as exit:
            code = exit.code or 0
        except BaseException as err:
            code = f"{{type(err).__name__}}: {{err}}"
        finally:
            os.write(write, json.dumps({{"code": code, "loaded": loaded()}}).encode())
            os._exit(0)
    os.close(write)
    children.append((pid, read))
reports = []
for pid, read in children:
    with os.fdopen(read) as f:
        reports.append(json.loads(f.read()))
    os.waitpid(pid, 0)
print(json.dumps({{"tree": tree, "reports": reports}}))
"""


ANALYZE = [
    "analyze",
    str(SHARED_DATA / "detections_fakebbox100.json"),
    "--gt",
    str(SHARED_DATA / "instances_val2014_100.json"),
]
#: What --help, --version and a refused option may load: none of HEAVY.
LIGHT: set[str] = set()
#: (arguments, expected exit code, heavy modules it may load); ``{tmp}`` is a fresh folder.
#: The longest first, so that the others run beside it.
CASES: list[tuple[list[str], int, set[str]]] = [
    ([*ANALYZE, "--json", "{tmp}/analysis.json"], 0, {"numpy", "torch", "analysis"}),
    ([], 2, LIGHT),  # the help, as an error
    (["--help"], 0, LIGHT),
    (["--version"], 0, LIGHT),
    (["analyze", "--no-such-option"], 2, LIGHT),
    (["train", "--epochs", "many"], 2, LIGHT),
    (["data", "synth", "--num-train"], 2, LIGHT),
    *[([*path, "--help"], 0, LIGHT) for path in command_paths()],
]


@pytest.fixture(scope="module")
def startup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The command tree's heavy modules, and each case's report by its arguments."""
    cases = []
    for args, _, _ in CASES:
        tmp = tmp_path_factory.mktemp("startup")
        cases.append(([a.replace("{tmp}", str(tmp)) for a in args], str(tmp)))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(cases)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(out.stdout)
    reports = {" ".join(args): r for (args, _, _), r in zip(CASES, result["reports"], strict=True)}
    return {**result, "reports": reports}


def test_the_command_tree_loads_nothing_heavy(startup: dict) -> None:
    assert startup["tree"] == []  # the detection package included: no module of it


def test_every_command_and_group_is_covered() -> None:
    paths = {" ".join(p) for p in command_paths()}
    assert paths >= {"analyze", "bench", "check-balance", "import", "predict", "report", "train"}
    assert paths >= {"data", "data info", "data preview", "data synth"}


@pytest.mark.parametrize(
    ("args", "code", "allowed"),
    CASES,
    ids=[" ".join(a).replace(str(SHARED_DATA), "DATA") or "(none)" for a, _, _ in CASES],
)
def test_heavy_modules_each_command_loads(
    startup: dict, args: list[str], code: int, allowed: set[str]
) -> None:
    result = startup["reports"][" ".join(args)]
    assert result["code"] == code
    assert set(result["loaded"]) == allowed
