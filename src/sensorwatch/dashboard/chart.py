"""A sensor's chart as one SVG, drawn on the server.

Two panels share the time axis: the window means (the line, with the lowest-to-highest band
of each bucket behind it) and the score against the calibrated threshold (dashed). Incident
spans cross both panels as shaded rectangles and model version changes as vertical lines.
Drawing on the server keeps the page free of a JavaScript chart library and its
download, and the cost is a few hundred points per chart whatever the range: the store already
reduced the range to its buckets. Every mark carries a class (``incident-span``,
``version-change``, ``mean-line``, ``score-line``, ``threshold-line``) so tests and style sheets
find them.

>>> import numpy as np
>>> from sensorwatch.dashboard.store import SeriesView
>>> t = np.arange(0, 10_000, 1000)
>>> v = SeriesView("d/t", 0, 9000, 1000, t, np.linspace(1, 2, 10), np.linspace(1, 2, 10), np.linspace(1, 2, 10),
...                np.r_[np.ones(8), 5, 1], np.full(10, 3.0), [{"incident_id": "d/t@8000", "start": 8000, "end": 8000,
...                "open": False, "severity": 55}], [])
>>> svg = render(v)
>>> svg.count('class="incident-span"'), 'class="score-line"' in svg
(1, True)
"""

from __future__ import annotations

import math
import time
from html import escape

import numpy as np

from sensorwatch.dashboard.store import SeriesView

WIDTH, HEIGHT = 960, 420
_LEFT, _RIGHT, _TOP, _GAP, _BOTTOM = 64, 16, 12, 28, 28
_PANEL = (HEIGHT - _TOP - _GAP - _BOTTOM) // 2


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _clock(ms: float, span_ms: float) -> str:
    t = time.gmtime(ms / 1000)
    return time.strftime("%H:%M:%S" if span_ms <= 3_600_000 else "%m-%d %H:%M", t)


def _path(xs: np.ndarray, ys: np.ndarray) -> str:
    """An SVG path through the finite points; a gap (NaN) lifts the pen."""
    parts, pen = [], False
    for x, y in zip(xs, ys):
        if not math.isfinite(y):
            pen = False
            continue
        parts.append(f"{'L' if pen else 'M'}{x:.1f},{y:.1f}")
        pen = True
    return "".join(parts)


class _Scale:
    def __init__(self, lo: float, hi: float, top: float, height: float, from_zero: bool = False):
        """``from_zero``: the axis starts at 0 exactly (scores are not negative)."""
        if not (math.isfinite(lo) and math.isfinite(hi)):
            lo, hi = 0.0, 1.0
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        pad = (hi - lo) * 0.05
        self.lo, self.hi, self.top, self.height = (lo if from_zero else lo - pad), hi + pad, top, height

    def __call__(self, v: np.ndarray) -> np.ndarray:
        return self.top + self.height * (1 - (np.asarray(v, dtype=float) - self.lo) / (self.hi - self.lo))


def _finite_range(*arrays: np.ndarray) -> tuple[float, float]:
    vals = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    return (float(vals.min()), float(vals.max())) if vals.size else (math.nan, math.nan)


def render(v: SeriesView) -> str:
    """The SVG document of ``v``."""
    span = max(1, v.end_ms - v.start_ms)
    plot_w = WIDTH - _LEFT - _RIGHT

    def x(ms) -> np.ndarray:
        return _LEFT + plot_w * (np.asarray(ms, dtype=float) - v.start_ms) / span

    centers = v.ts + v.bucket_ms / 2
    xs = x(centers)
    top_y = _TOP
    bot_y = _TOP + _PANEL + _GAP
    ym = _Scale(*_finite_range(v.mean_min, v.mean_max, v.mean), top_y, _PANEL)
    lo_s, hi_s = _finite_range(v.score, v.threshold)
    nonneg = not math.isfinite(lo_s) or lo_s >= 0
    ys = _Scale(0.0 if nonneg else lo_s, hi_s, bot_y, _PANEL, from_zero=nonneg)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(v.sensor)}" data-sensor="{escape(v.sensor)}">',
        '<rect x="0" y="0" width="100%" height="100%" fill="#fff"/>',
    ]
    for y0 in (top_y, bot_y):
        out.append(f'<rect x="{_LEFT}" y="{y0}" width="{plot_w}" height="{_PANEL}" fill="#fafafa" stroke="#ccc"/>')
    # incident spans: from the first anomalous window's start to the last one's end (open: to now)
    for inc in v.incidents:
        start = (inc.get("start") or v.start_ms) - v.bucket_ms
        end = inc.get("end") if not inc.get("open") else v.end_ms
        x0, x1 = (float(a) for a in x([max(start, v.start_ms), min(end or v.end_ms, v.end_ms)]))
        w = max(2.0, x1 - x0)
        colour = "#f2b3b3" if not inc.get("learning") else "#d9d9f2"
        out.append(
            f'<rect class="incident-span" data-incident="{escape(str(inc["incident_id"]))}" x="{x0:.1f}" y="{top_y}" '
            f'width="{w:.1f}" height="{_PANEL * 2 + _GAP}" fill="{colour}" fill-opacity="0.6">'
            f"<title>{escape(str(inc['incident_id']))} severity {inc.get('severity')}</title></rect>"
        )
    # the lowest-to-highest band of each bucket, then the mean
    band_ok = np.isfinite(v.mean_min) & np.isfinite(v.mean_max)
    if band_ok.any():  # one window a bucket: a band of no width
        up = [f"{a:.1f},{b:.1f}" for a, b in zip(xs[band_ok], ym(v.mean_max[band_ok]))]
        down = [f"{a:.1f},{b:.1f}" for a, b in zip(xs[band_ok][::-1], ym(v.mean_min[band_ok][::-1]))]
        out.append(f'<polygon class="mean-band" points="{" ".join(up + down)}" fill="#cfe0f5" stroke="none"/>')
    out.append(f'<path class="mean-line" d="{_path(xs, ym(v.mean))}" fill="none" stroke="#1f5fa8" stroke-width="1.5"/>')
    out.append(
        f'<path class="threshold-line" d="{_path(xs, ys(v.threshold))}" fill="none" stroke="#b00" '
        'stroke-dasharray="6 4" stroke-width="1"/>'
    )
    out.append(f'<path class="score-line" d="{_path(xs, ys(v.score))}" fill="none" stroke="#333" stroke-width="1.5"/>')
    for ver in v.versions:
        vx = float(x(ver["ts"]))
        label = f"v{ver['model_version']}"
        out.append(
            f'<g class="version-change" data-version="{ver["model_version"]}"><line x1="{vx:.1f}" x2="{vx:.1f}" '
            f'y1="{top_y}" y2="{bot_y + _PANEL}" stroke="#2a8" stroke-width="1.5"/>'
            f'<text x="{vx + 3:.1f}" y="{top_y + 12}" font-size="11" fill="#2a8">{escape(label)}</text></g>'
        )
    # axes: the panels' value ranges and five time ticks
    font = 'font-family="sans-serif" font-size="11" fill="#555"'
    for scale, y0, name in ((ym, top_y, "window mean"), (ys, bot_y, "score")):
        out.append(f'<text x="{_LEFT - 4}" y="{y0 + 10}" text-anchor="end" {font}>{_fmt(scale.hi)}</text>')
        out.append(f'<text x="{_LEFT - 4}" y="{y0 + _PANEL}" text-anchor="end" {font}>{_fmt(scale.lo)}</text>')
        out.append(f'<text x="{_LEFT + 6}" y="{y0 + 12}" {font}>{name}</text>')
    for k in range(5):
        ms = v.start_ms + span * k / 4
        tx = float(x(ms))
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        out.append(f'<text x="{tx:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" {font}>{_clock(ms, span)} UTC</text>')
    out.append("</svg>")
    return "".join(out)
