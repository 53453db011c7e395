"""The report in a real browser (headless Chromium): it renders, logs nothing to the console, and every embedded
image decodes; an A-OKVQA report shows MC and DA accuracy and no ScienceQA rows in the text the browser renders.
A control page with a broken image and a console error proves the checks can fail."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest
from own_data_fixtures import sqa_source, write_aokvqa  # noqa: F401 (fixture)
from report_fixture import make_runs

pytestmark = pytest.mark.slow  # four browser starts: ~25 s on 2 cores

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Appended to a copy of the page: after load, count the images that decoded (complete with a natural width).
# Also keep the text as rendered (innerText: what a reader sees, laid out, without the style sheet).
PROBE = ("<script>addEventListener('load',()=>{const im=[...document.images];"
         "document.body.dataset.imgTotal=im.length;"
         "document.body.dataset.imgOk=im.filter(i=>i.complete&&i.naturalWidth>0).length;"
         "document.body.dataset.text=document.body.innerText;});</script>")


@pytest.fixture(scope="module")
def browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium/Chrome on PATH (Debian: apt-get install chromium; .ci/run installs it)")


def _chrome(browser, *args, timeout=90):
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def inspect(browser, page, tmp_path) -> dict:
    """{images: (ok, total), console: [messages], screenshot: Path} for one HTML file."""
    probe = tmp_path / f"{page.stem}.probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _chrome(browser, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500]
    ok = re.search(r'data-img-ok="(\d+)"', body.group(0))
    total = re.search(r'data-img-total="(\d+)"', body.group(0))
    assert ok and total, f"the probe did not run: {body.group(0)[:500]}"
    text = re.search(r'data-text="([^"]*)"', body.group(0))
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    shot = tmp_path / f"{page.stem}.png"
    res = _chrome(browser, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    console += [line for line in res.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return {"images": (int(ok.group(1)), int(total.group(1))), "console": console, "screenshot": shot,
            "text": html.unescape(text.group(1)) if text else ""}


def not_blank(png) -> bool:
    """More than 2% of the pixels differ from the background colour, in more than a handful of colours."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        rgb = im.convert("RGB")
    pixels = np.asarray(rgb.resize((rgb.width // 4, rgb.height // 4))).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    differing = (pixels != background).any(axis=1).mean()
    return bool(differing > 0.02 and len(colours) > 50)


def test_report_renders_in_chromium(browser, cli, tmp_path):
    runs = make_runs(tmp_path)
    out = tmp_path / "report.html"
    res = cli("-q", "report", f"text={runs['text']}", f"vision={runs['vision']}", "--data", runs["data"], "--out",
              out)
    assert res.exit_code == 0, res.output
    found = inspect(browser, out, tmp_path)
    ok, total = found["images"]
    assert total == 6 and ok == total, found  # 3 charts + 3 thumbnails (qid 5's bomb has none)
    assert found["console"] == []
    assert not_blank(found["screenshot"])


def test_aokvqa_report_shows_mc_and_da_and_no_scienceqa_rows(browser, cli, tmp_path, sqa_source):  # noqa: F811
    write_aokvqa(sqa_source, tmp_path / "src", tmp_path / "coco", per_split=6)
    assert cli("-q", "prepare", tmp_path / "src", "--images", tmp_path / "coco", "--out", tmp_path / "d").exit_code == 0
    val = [json.loads(line) for line in (tmp_path / "d" / "val.jsonl").read_text().splitlines()]
    # Right on the first three; the next option (2 of the 10 direct answers) on the rest.
    letters = ["ABCDE"[r["answer"] if i < 3 else (r["answer"] + 1) % len(r["choices"])] for i, r in enumerate(val)]
    rows = [{"qid": r["qid"], "prediction": f"The answer is ({letter}).", "rationale": "Solution: first line.\\nsecond line."}
            for r, letter in zip(val, letters)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "aokvqa.html"
    res = cli("-q", "report", f"run={tmp_path / 'p.jsonl'}", "--data", tmp_path / "d", "--split", "val", "--out", out)
    assert res.exit_code == 0, res.output
    found = inspect(browser, out, tmp_path)
    ok, total = found["images"]
    assert total == 4 and ok == total, found  # 1 chart + 3 gallery thumbnails (COCO-style JPEGs)
    assert found["console"] == [] and not_blank(found["screenshot"])
    text = found["text"]
    assert "A-OKVQA accuracy (%)" in text
    # The accuracy table as laid out: header cells, then the run's row (MC 3/6; DA 1+1+2/3+2/3 over 4).
    assert re.search(r"run\s+MC\s+DA\s+MC \(non-difficult\)\s+DA \(all\)\s+run\s+50\.00\s+83\.33\s+50\.00\s+83\.33", text)
    for absent in ("ScienceQA", "NAT", "GPT-3.5", "Multimodal-CoT", "Human", "(published)"):
        assert absent not in text, absent
    assert "first line.\nsecond line." in text  # the rationale's literal \n is a line break on the page


def test_the_checks_catch_a_broken_page(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA">'
                    '<script>console.error("boom")</script></body></html>')
    found = inspect(browser, page, tmp_path)
    assert found["images"] == (0, 1)
    assert any("boom" in line for line in found["console"])
    assert not not_blank(found["screenshot"])
