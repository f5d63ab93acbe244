"""The longest functions of one or more checkouts, in lines (docstring and decorators' body
included, from ``def`` to the last line), over ``alrp_cli/`` and ``analysis/``.

    .venv/bin/python benchmarks/longest_functions.py [--top 10] [NAME=PATH ...]

Default: this checkout, as "this". Prints one Markdown table per checkout for
docs/benchmarks.md ("Code shape"). Parsed with ``ast``; nothing is imported.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

PACKAGES = ("alrp_cli", "analysis")


def longest(root: Path, top: int) -> list[tuple[int, str]]:
    """(lines, "path:function") of the ``top`` longest functions under ``root``'s packages."""
    rows: list[tuple[int, str]] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    assert node.end_lineno is not None
                    where = f"{path.relative_to(root)}:{node.name}"
                    rows.append((node.end_lineno - node.lineno + 1, where))
    return sorted(rows, key=lambda row: (-row[0], row[1]))[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="*", metavar="NAME=PATH")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    checkouts = args.checkouts or [f"this={Path(__file__).resolve().parents[1]}"]
    for item in checkouts:
        name, _, path = item.partition("=")
        print(f"\n{name} ({path})\n\n| lines | function |\n|---:|---|")
        for lines, where in longest(Path(path), args.top):
            print(f"| {lines} | `{where}` |")


if __name__ == "__main__":
    main()
