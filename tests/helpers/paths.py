"""Where the repository and its shipped data are, for tests that read files beside them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Real COCO data shipped in the repository (data/coco-val2014-100/README.md: provenance).
SHARED_DATA = REPO / "data" / "coco-val2014-100"
#: The report fixtures (made by tests/fixtures/report/make_fixtures.py).
REPORT_FIXTURES = REPO / "tests" / "fixtures" / "report"
