"""index.html in headless Chromium at a laptop's and a phone's width: nothing wider than the
screen, every image loaded, figures at their intended size, the narrow variant on the phone.

Skipped with the reason when Debian's ``chromium`` is absent (``.ci/run`` installs it).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from analysis.report import build_report, load_inputs
from analysis.report.index import NARROW_MAX_WIDTH, PX_PER_INCH
from tests.helpers.paths import REPO

FIX = REPO / "tests" / "fixtures" / "report"
INPUTS = [FIX / "analysis.json", FIX / "balance.json", FIX / "run_alrp", FIX / "run_focal"]
CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",  # let every image decode before the DOM is dumped
]

# Appended to a copy of the page, shown in an iframe of the width under test (headless
# Chromium's windows are at least 500 px wide): measures after load and writes the result
# into the host page's DOM, which --dump-dom prints.
MEASURE = """
<script>
window.addEventListener("load", () => {
  const vw = document.documentElement.clientWidth;
  const inScroller = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (["auto", "scroll", "hidden"].includes(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  };
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (inScroller(el)) continue;  // clipped by its scroller, which is measured itself
    const r = el.getBoundingClientRect();
    if (r.width > vw + 0.5 || r.right > vw + 0.5 || r.left < -0.5) {
      wide.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} ${Math.round(r.width)}px`);
    }
  }
  const images = [...document.images].map((img) => ({
    figure: img.closest("figure") ? img.closest("figure").id : null,
    loaded: img.complete && img.naturalWidth > 0,
    natural: [img.naturalWidth, img.naturalHeight],
    shown: Math.round(img.getBoundingClientRect().width),
    narrow: img.currentSrc !== img.getAttribute("src"),
  }));
  const host = window.parent.document;
  const out = host.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({
    vw, scrollWidth: document.documentElement.scrollWidth, wide, images,
  });
  host.body.appendChild(out);
});
</script>
"""


def measure(page: Path, width: int, tmp_path: Path) -> dict:
    """Load ``page`` (with the measuring script) at ``width`` CSS px; the measurements."""
    measured = page.read_text().replace("</body>", MEASURE + "</body>")
    probe = page.with_name(f"probe-{width}.html")
    probe.write_text(
        '<!DOCTYPE html><html><body style="margin:0">'
        f'<iframe style="border:0;width:{width}px;height:900px" '
        f'srcdoc="{html.escape(measured, quote=True)}"></iframe></body></html>'
    )
    profile = tmp_path / f"profile-{width}"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width + 40},900"]
    done = subprocess.run(
        [*cmd, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180
    )
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, flags=re.S)
    assert found, f"no measurement in Chromium's DOM dump; stderr: {done.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("browser")
    return build_report(load_inputs(INPUTS), out / "report", formats=("png",), dpi=60)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium)")
@pytest.mark.parametrize("width", [1280, 390])
def test_page_fits_the_screen_and_every_image_loads(report, width: int, tmp_path: Path) -> None:
    m = measure(report.index_html, width, tmp_path)
    assert m["vw"] == width
    assert m["wide"] == [], f"wider than the {width}px viewport: {m['wide']}"
    assert m["scrollWidth"] <= width
    shown = [f for f in report.figures if f.files]
    assert len(m["images"]) == len(shown) == 8
    by_key = {img["figure"]: img for img in m["images"]}
    for fig in shown:
        img = by_key[fig.key]
        assert img["loaded"], f"{fig.key} did not load"
        narrow = width <= NARROW_MAX_WIDTH and bool(fig.narrow)
        assert img["narrow"] == narrow, fig.key
        inches = fig.narrow_size if narrow else fig.size
        assert img["natural"] == [round(inches[0] * 60), round(inches[1] * 60)]
        # At its intended size (text as large as the body's), or the full width when smaller.
        intended = round(inches[0] * PX_PER_INCH)
        content = min(960, width - 32)  # body: content max-width 60rem, 1rem padding
        assert abs(img["shown"] - min(intended, content)) <= 2, (fig.key, img, intended)
    assert any(f.narrow for f in shown)  # the training curves have a narrow variant
