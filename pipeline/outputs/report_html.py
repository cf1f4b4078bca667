"""report.html: one self-contained page an analyst can open offline and send on.

The page holds the run overview, a summary table of the segments, one card per segment (name, sizes and shares,
top traits, a profile chart against the population) and the run's plots. Plots are embedded as base64 data URIs
and the charts are inline SVG, so the file needs no network, no other file, no JavaScript and no web font.
Every text taken from the data is HTML-escaped.
"""
from __future__ import annotations

import base64
import html
import logging
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.outputs.atomic import write_text_atomic
from pipeline.segmentation.segments import SegmentDescription, format_value

logger = logging.getLogger(__name__)

PROFILE_FEATURES = 8
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".svg": "image/svg+xml"}
OVERVIEW_LABELS = {
    "data_source": "data source",
    "rows_in": "rows in",
    "rows_dropped": "rows dropped, by reason",
    "rows_clustered": "rows clustered",
    "customers": "customers (units clustered)",
    "n_segments": "segments (k)",
    "k": "segments (k)",
    "method": "clustering method",
    "quantization_error": "quantization error (QE)",
    "topographic_error": "topographic error (TE)",
    "seed": "seed",
}
# Profile chart geometry, in SVG user units (px).
CHART_WIDTH, ROW_HEIGHT, LABEL_RIGHT, BAR_CENTRE, BAR_HALF, VALUE_LEFT = 760, 24, 230, 360, 115, 490
MAX_LABEL_CHARS = 34
MAX_SCALE = 3.0

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1a202c; background: #fff; line-height: 1.4; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 2px solid #e2e8f0; padding-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.6rem 0; }
th, td { border: 1px solid #e2e8f0; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f7fafc; }
ul.inline { margin: 0; padding-left: 1.1rem; }
.segment-card { border: 1px solid #cbd5e0; border-radius: 8px; padding: 0.8rem 1.2rem; margin: 1rem 0;
                box-shadow: 0 1px 3px rgba(0, 0, 0, 0.08); }
.segment-card h3 { margin: 0.2rem 0 0.4rem; }
.segment-card.outlier { border-style: dashed; background: #fffaf0; }
.badge { font-size: 0.75rem; background: #dd6b20; color: #fff; border-radius: 4px; padding: 0.1rem 0.4rem;
         margin-left: 0.5rem; vertical-align: middle; }
.sizes { color: #4a5568; margin: 0.2rem 0 0.6rem; }
.note { color: #718096; font-size: 0.85rem; }
svg.profile text { font-size: 12px; fill: #2d3748; }
svg.profile .positive { fill: #2b6cb0; } svg.profile .negative { fill: #c05621; }
svg.profile .axis { stroke: #4a5568; stroke-width: 1; }
svg.profile .clipped { stroke: #1a202c; stroke-width: 1.5; stroke-dasharray: 3 2; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #e2e8f0; }
figcaption { color: #4a5568; font-size: 0.9rem; }
"""


def write_report_html(
    path: str | Path,
    *,
    overview: Mapping[str, Any],
    segments: SegmentDescription,
    images: Mapping[str, str | Path],
) -> Path:
    """Write the report page to ``path`` atomically (temporary file + rename) and return ``path``.

    overview: the run's facts, shown as a table in the given order. Expected keys (any others are shown by their
      name): data_source, rows_in, rows_dropped (mapping reason -> count), rows_clustered, customers, n_segments
      (or k), method, quantization_error, topographic_error, seed.
    segments: the description from ``pipeline.segmentation.segments.describe_segments``; one card per row of its table.
    images: title -> image file (PNG, JPEG, GIF or SVG: U-matrix with segments, k-selection plot, truncated
      dendrogram, component planes), embedded in the page in the given order.
    """
    embedded = {title: _data_uri(Path(image)) for title, image in images.items()}
    page = render_report_html(overview=overview, segments=segments, embedded_images=embedded)
    written = write_text_atomic(page, path)
    logger.info("wrote %s (%d segments, %d images, %.0f kB)", written, len(segments.table), len(embedded),
                written.stat().st_size / 1000)
    return written


def render_report_html(
    *, overview: Mapping[str, Any], segments: SegmentDescription, embedded_images: Mapping[str, str]
) -> str:
    """The page as a string; ``embedded_images`` maps a title to a ``data:`` URI."""
    title = "Customer segments"
    if overview.get("data_source"):
        title += f" · {overview['data_source']}"
    scale = _profile_scale(segments)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{_escape(title)}</h1>",
        '<h2 id="overview">Overview</h2>',
        _overview_table(overview),
        '<h2 id="segments">Segments</h2>',
        _summary_table(segments.table),
        '<p class="note">Bars: standardised difference d = (segment mean − mean of all customers) / standard '
        "deviation of all customers, per feature; values in original units. For a category, the mean is the share "
        "of customers with that label.</p>",
        *(_segment_card(row, segments.traits, scale) for _, row in segments.table.iterrows()),
    ]
    if embedded_images:
        parts.append('<h2 id="plots">Plots</h2>')
        parts.extend(
            f'<figure><img src="{uri}" alt="{_escape(image_title)}"><figcaption>{_escape(image_title)}'
            "</figcaption></figure>"
            for image_title, uri in embedded_images.items()
        )
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _data_uri(path: Path) -> str:
    media_type = IMAGE_TYPES.get(path.suffix.lower())
    if media_type is None:
        raise ValueError(f"image {str(path)!r} has suffix {path.suffix!r}; valid: {sorted(IMAGE_TYPES)}")
    if not path.is_file():
        raise FileNotFoundError(f"image for report.html not found: {path}")
    return f"data:{media_type};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _format_fact(value: Any) -> str:
    """An overview value as escaped HTML: counts with thousands separators, floats to 4 significant digits,
    a mapping as a list of "key: value"."""
    if isinstance(value, Mapping):
        if not value:
            return "none"
        items = "".join(f"<li>{_escape(key)}: {_format_fact(item)}</li>" for key, item in value.items())
        return f'<ul class="inline">{items}</ul>'
    if isinstance(value, bool) or value is None:
        return _escape(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return f"{float(value):.4g}"
    return _escape(value)


def _overview_table(overview: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_escape(OVERVIEW_LABELS.get(key, key))}</th><td>{_format_fact(value)}</td></tr>"
        for key, value in overview.items()
    )
    return f'<table class="overview">{rows}</table>'


def _percent(share: float) -> str:
    return "n/a" if share is None or not math.isfinite(share) else f"{100 * share:.1f}%"


def _summary_table(table: pd.DataFrame) -> str:
    header = ("<tr><th>segment</th><th>name</th><th>customers</th><th>share</th><th>rows</th><th>share</th>"
              "<th>revenue</th><th>share</th></tr>")
    rows = "".join(
        f'<tr><td class="number">{int(row.segment)}</td>'
        f'<td><a href="#segment-{int(row.segment)}">{_escape(row["name"])}</a></td>'
        f'<td class="number">{int(row.customers):,}</td><td class="number">{_percent(row.customer_share)}</td>'
        f'<td class="number">{int(row.rows):,}</td><td class="number">{_percent(row.row_share)}</td>'
        f'<td class="number">{format_value(row.revenue, "money")}</td>'
        f'<td class="number">{_percent(row.revenue_share)}</td></tr>'
        for _, row in table.iterrows()
    )
    return f'<table class="summary">{header}{rows}</table>'


def _profile_scale(segments: SegmentDescription) -> float:
    """|d| drawn as a half-width bar, the same on every card: the largest charted |d| of the segments that are not
    outlier groups, within [1, ``MAX_SCALE``]. Longer bars (outlier groups' often are) are clipped and marked."""
    regular = segments.table.loc[~segments.table["outlier_group"].astype(bool), "segment"]
    traits = segments.traits
    charted = traits[(traits["rank"] <= PROFILE_FEATURES) & traits["segment"].isin(regular)]["std_diff"].abs()
    largest = float(charted.max()) if len(charted) else 0.0
    return min(MAX_SCALE, max(1.0, largest if math.isfinite(largest) else 0.0))


def _segment_card(row: pd.Series, traits: pd.DataFrame, scale: float) -> str:
    segment = int(row["segment"])
    mine = traits[traits["segment"] == segment].sort_values("rank")
    outlier = bool(row["outlier_group"])
    badge = '<span class="badge">outlier group</span>' if outlier else ""
    sizes = (f"customers {int(row['customers']):,} ({_percent(row['customer_share'])}) · rows {int(row['rows']):,} "
             f"({_percent(row['row_share'])}) · revenue {format_value(row['revenue'], 'money')} "
             f"({_percent(row['revenue_share'])})")
    top = [row[column] for column in row.index if column.startswith("trait_") and row[column]]
    trait_list = "".join(f"<li>{_escape(text)}</li>" for text in top) or "<li>no customers</li>"
    return (
        f'<section class="segment-card{" outlier" if outlier else ""}" data-segment="{segment}" '
        f'id="segment-{segment}">'
        f"<h3>Segment {segment} · {_escape(row['name'])}{badge}</h3>"
        f'<p class="sizes">{sizes}</p>'
        f'<ol class="traits">{trait_list}</ol>'
        f"{_profile_chart(mine.head(PROFILE_FEATURES), scale)}"
        "</section>"
    )


def _profile_chart(traits: pd.DataFrame, scale: float) -> str:
    """Inline SVG: one horizontal bar per trait, from the zero line to d (scaled so |d| = scale fills half the
    bar area; a longer bar is clipped there and drawn dashed), the feature's label on the left and "segment vs
    overall" in original units with d on the right."""
    if traits.empty:
        return ""
    height = ROW_HEIGHT * (len(traits) + 1)
    shapes = [f'<line class="axis" x1="{BAR_CENTRE}" y1="4" x2="{BAR_CENTRE}" y2="{height - ROW_HEIGHT + 4}"/>',
              f'<text x="{BAR_CENTRE - BAR_HALF}" y="{height - 6}">−{scale:.1f}</text>',
              f'<text x="{BAR_CENTRE}" y="{height - 6}" text-anchor="middle">0 (all customers)</text>',
              f'<text x="{BAR_CENTRE + BAR_HALF}" y="{height - 6}" text-anchor="end">+{scale:.1f}</text>']
    for position, trait in enumerate(traits.itertuples(index=False)):
        top = 4 + position * ROW_HEIGHT
        d = float(trait.std_diff)
        clipped = abs(d) > scale
        width = min(abs(d), scale) / scale * BAR_HALF
        left = BAR_CENTRE if d >= 0 else BAR_CENTRE - width
        label = trait.label if len(trait.label) <= MAX_LABEL_CHARS else trait.label[: MAX_LABEL_CHARS - 1] + "…"
        values = (f"{format_value(trait.segment_value, trait.kind)} vs "
                  f"{format_value(trait.overall_value, trait.kind)} · d {d:+.2f}")
        middle = top + ROW_HEIGHT / 2 + 4
        shapes.append(
            f"<g><title>{_escape(trait.text)} (d {d:+.2f})</title>"
            f'<text x="{LABEL_RIGHT}" y="{middle:.1f}" text-anchor="end">{_escape(label)}</text>'
            f'<rect class="{"positive" if d >= 0 else "negative"}{" clipped" if clipped else ""}" '
            f'x="{left:.1f}" y="{top + 4}" '
            f'width="{width:.1f}" height="{ROW_HEIGHT - 8}"/>'
            f'<text x="{VALUE_LEFT}" y="{middle:.1f}">{_escape(values)}</text></g>'
        )
    return (f'<svg class="profile" role="img" width="{CHART_WIDTH}" height="{height}" '
            f'viewBox="0 0 {CHART_WIDTH} {height}">{"".join(shapes)}</svg>')
