"""report.html: structure, escaping, embedded images, atomic writing, and a real headless browser."""
from __future__ import annotations

import base64
import dataclasses
import shutil
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from pipeline.outputs.report_html import BAR_HALF, MAX_SCALE, PROFILE_FEATURES, write_report_html
from pipeline.segmentation.segments import describe_segments

matplotlib.use("Agg")

OVERVIEW = {
    "data_source": "synthetic <demo> & co",
    "rows_in": 1250,
    "rows_dropped": {"missing DOB": 20, "age outside 14–100": 5},
    "rows_clustered": 1225,
    "customers": 60,
    "quantization_error": 0.123456,
    "topographic_error": 0.05,
    "n_segments": 4,
    "method": "ward",
    "seed": 7,
}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def make_segments():
    rng = np.random.default_rng(3)
    n = 60
    segment = np.repeat([0, 1, 2, 3], [25, 20, 12, 3])
    units = pd.DataFrame({
        "share_apparel_home": np.clip(rng.normal(0.2, 0.1, n) + 0.5 * (segment == 0), 0, 1),
        "Age": rng.normal(40, 8, n) - 12 * (segment == 1) + 45 * (segment == 3),  # outlier group: |d| > 3
        "Gender": rng.choice(["F", "M"], n),
        "recency_days": rng.integers(0, 200, n) + 150 * (segment == 2),
        "monetary_total": rng.lognormal(5, 0.5, n),
        "frequency": rng.integers(1, 9, n),
        "promo_share": rng.random(n),
        "weekend_share": rng.random(n),
        "odd <column> & name": rng.normal(size=n),
    })
    return describe_segments(units, segment, n_segments=4, outlier=np.array([False, False, False, True]),
                             rows=rng.integers(1, 6, n), revenue=units["monetary_total"].to_numpy(),
                             feature_columns=list(units.columns))


def make_png(path: Path, seed: int) -> Path:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(3, 2), dpi=60)
    axes.imshow(np.random.default_rng(seed).random((8, 8)))
    figure.savefig(path)
    plt.close(figure)
    return path


@pytest.fixture(scope="module")
def segments():
    return make_segments()


@pytest.fixture()
def images(tmp_path):
    return {"U-matrix with segments": make_png(tmp_path / "u_matrix.png", 0),
            "Truncated dendrogram": make_png(tmp_path / "dendrogram_truncated.png", 1)}


class PageParser(HTMLParser):
    """Collects segment cards, image sources, every tag and the visible text of a page."""

    def __init__(self):
        super().__init__()
        self.cards, self.image_sources, self.tags, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "section" and "segment-card" in attributes.get("class", "").split():
            self.cards.append(int(attributes["data-segment"]))
        if tag == "img":
            self.image_sources.append(attributes["src"])

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_one_card_per_segment_with_name_sizes_traits_and_profile_bars(tmp_path, segments, images):
    path = write_report_html(tmp_path / "report.html", overview=OVERVIEW, segments=segments, images=images)
    page = parse(path)
    assert page.cards == segments.table["segment"].tolist()
    text = "".join(page.text)
    for row in segments.table.itertuples(index=False):
        assert f"Segment {row.segment} · {row.name}" in text
        for trait in (row.trait_1, row.trait_2, row.trait_3):
            assert trait in text
    bars = [attributes for tag, attributes in page.tags if tag == "rect"]
    charted = segments.traits[segments.traits["rank"] <= PROFILE_FEATURES]
    assert len(bars) == len(charted)
    # one scale for the page: the largest |d| outside outlier groups, in [1, MAX_SCALE]; longer bars clipped
    magnitude = charted["std_diff"].abs().to_numpy()
    scale = float(np.clip(magnitude[charted["segment"].to_numpy() != 3].max(), 1.0, MAX_SCALE))
    widths = np.array([float(bar["width"]) for bar in bars])
    np.testing.assert_allclose(widths, np.minimum(magnitude, scale) / scale * BAR_HALF, atol=0.06)
    clipped = ["clipped" in bar["class"].split() for bar in bars]
    assert clipped == (magnitude > scale).tolist() and any(clipped)
    assert "outlier group" in text and "Outlier group 1" in text


def test_overview_facts_are_shown_and_every_text_is_escaped(tmp_path, segments, images):
    renamed = segments.table.assign(name=segments.table["name"].where(segments.table["segment"] != 1,
                                                                      "<script>alert(1)</script>"))
    hostile = dataclasses.replace(segments, table=renamed)
    path = write_report_html(tmp_path / "report.html", overview=OVERVIEW, segments=hostile, images=images)
    raw = path.read_text(encoding="utf-8")
    assert "<script" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert "synthetic &lt;demo&gt; &amp; co" in raw and "odd &lt;column&gt; &amp; name" in raw
    text = "".join(parse(path).text)
    for fact in ("1,250", "missing DOB: 20", "age outside 14–100: 5", "1,225", "0.1235", "ward", "quantization error"):
        assert fact in text


def test_images_are_embedded_and_the_page_references_nothing_outside(tmp_path, segments, images):
    path = write_report_html(tmp_path / "report.html", overview=OVERVIEW, segments=segments, images=images)
    page = parse(path)
    prefix = "data:image/png;base64,"
    assert all(source.startswith(prefix) for source in page.image_sources)
    decoded = [base64.b64decode(source[len(prefix):]) for source in page.image_sources]
    assert decoded == [Path(image).read_bytes() for image in images.values()]
    raw = path.read_text(encoding="utf-8")
    assert "http:" not in raw and "https:" not in raw and "@import" not in raw and "url(" not in raw
    assert not any(tag in ("script", "link", "iframe") for tag, _ in page.tags)


def test_a_failed_write_keeps_the_previous_report_and_leaves_no_temporary_file(tmp_path, segments, images):
    target = tmp_path / "report.html"
    write_report_html(target, overview=OVERVIEW, segments=segments, images=images)
    before = target.read_bytes()
    with pytest.raises(FileNotFoundError, match="missing.png"):
        write_report_html(target, overview=OVERVIEW, segments=segments, images={"gone": tmp_path / "missing.png"})
    with pytest.raises(ValueError, match=r"suffix '\.bmp'; valid: \['\.gif'"):
        write_report_html(target, overview=OVERVIEW, segments=segments, images={"bitmap": tmp_path / "plot.bmp"})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dendrogram_truncated.png", "report.html", "u_matrix.png"]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the browser test needs it")
    return path


def test_page_renders_in_headless_chromium_without_console_errors(tmp_path, segments, images):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    path = write_report_html(tmp_path / "report.html", overview=OVERVIEW, segments=segments, images=images)
    problems, requests = [], []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1200, "height": 900})
        try:
            page = browser.new_page()
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            cards = page.locator("section.segment-card")
            assert cards.count() == len(segments.table)
            for segment, name in zip(segments.table["segment"], segments.table["name"]):
                card = page.locator(f'section.segment-card[data-segment="{segment}"]')
                assert card.count() == 1 and name in card.inner_text()
                assert card.locator("svg.profile rect").count() > 0
            loaded = page.eval_on_selector_all("img", "images => images.map(i => i.complete && i.naturalWidth > 0)")
            assert loaded == [True] * len(images)
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
