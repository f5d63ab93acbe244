"""Links between the user docs lead somewhere: the page exists and so does the heading."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

PAGES = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
# [text](target) where target is a relative path and/or a #fragment (no scheme).
LINK = re.compile(r"\[[^\]]*\]\((?![a-z]+://)([^)\s#]*)(?:#([^)\s]*))?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", flags=re.M)
FENCED = re.compile(r"^(```|~~~).*?^\1", flags=re.S | re.M)


def _prose(page: Path) -> str:
    """A page without its fenced code blocks (their '#' lines and brackets are code)."""
    return FENCED.sub("", page.read_text())


def _slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


@functools.cache
def anchors(page: Path) -> frozenset[str]:
    """Every heading's anchor on a page, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for title in HEADING.findall(_prose(page)):
        slug = _slug(title)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(found)


def test_slug_follows_github() -> None:
    assert _slug("Global ranking across processes (`--ranking global`)") == (
        "global-ranking-across-processes---ranking-global"
    )
    assert _slug("aLRP vs AP Loss vs focal loss: `benchmarks/compare_losses.py`") == (
        "alrp-vs-ap-loss-vs-focal-loss-benchmarkscompare_lossespy"
    )
    assert _slug("Rank & Sort Loss in the shared recipe") == "rank--sort-loss-in-the-shared-recipe"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page: Path) -> None:
    broken = []
    for target, fragment in LINK.findall(_prose(page)):
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{target}#{fragment} (no such heading)")
    assert not broken, f"{page.name}: " + ", ".join(broken)
