"""The evaluation as a picture: plain SVG that any browser shows, so the image carries no
plotting library."""
from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

def confusion_svg(matrix: dict[str, dict[str, int]], title: str) -> str:
    """The confusion matrix as a grid of shaded cells with their counts."""
    labels = list(matrix)
    n = len(labels)
    widest = max(len(_short(label)) for label in labels)
    cell, left, top = 64, 56 + 8 * widest, 96
    width, height = max(left + n * cell + 24, 9 * len(title) + 40), top + n * cell + 24
    peak = max([count for row in matrix.values() for count in row.values()] + [1])
    parts = [
        f'<text x="{width / 2:.0f}" y="24" text-anchor="middle" font-size="16">'
        f"{escape(title)}</text>",
        f'<text x="{left + n * cell / 2:.0f}" y="{top - 44}" text-anchor="middle">'
        "predicted</text>",
        f'<text x="24" y="{top + n * cell / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 24 {top + n * cell / 2:.0f})">actual</text>',
    ]
    for j, label in enumerate(labels):
        parts.append(f'<text x="{left + j * cell + cell / 2:.0f}" y="{top - 10}" '
                     f'text-anchor="middle">{escape(_short(label))}</text>')
    for i, actual in enumerate(labels):
        y = top + i * cell
        parts.append(f'<text x="{left - 10}" y="{y + cell / 2 + 5:.0f}" text-anchor="end">'
                     f"{escape(_short(actual))}</text>")
        for j, predicted in enumerate(labels):
            count = matrix[actual][predicted]
            shade = count / peak
            fill = f"rgb({255 - int(200 * shade)},{255 - int(140 * shade)},255)"
            ink = "#fff" if shade > 0.6 else "#000"
            x = left + j * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" '
                         f'fill="{fill}" stroke="#888"><title>actual {escape(str(actual))}, '
                         f"predicted {escape(str(predicted))}: {count}</title></rect>")
            parts.append(f'<text x="{x + cell / 2:.0f}" y="{y + cell / 2 + 5:.0f}" '
                         f'text-anchor="middle" fill="{ink}">{count}</text>')
    return _svg(width, height, parts)


def residuals_svg(y_true: np.ndarray, y_pred: np.ndarray, title: str,
                  max_points: int = 2000) -> str:
    """Residual (actual - predicted) against predicted value; a sample of the rows."""
    if len(y_true) > max_points:
        rows = np.random.default_rng(0).choice(len(y_true), max_points, replace=False)
        y_true, y_pred = y_true[rows], y_pred[rows]
    residual = y_true - y_pred
    width, height, left, top, plot_w, plot_h = 560, 400, 70, 40, 460, 300
    x_lo, x_hi = _bounds(y_pred)
    r_peak = max(float(np.max(np.abs(residual))) if len(residual) else 0.0, 1e-12)

    def px(v):
        return left + (v - x_lo) / (x_hi - x_lo) * plot_w

    def py(r):
        return top + plot_h / 2 - r / r_peak * (plot_h / 2)

    parts = [
        f'<text x="{width / 2:.0f}" y="24" text-anchor="middle" font-size="16">'
        f"{escape(title)}</text>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#888"/>',
        f'<line x1="{left}" y1="{py(0):.1f}" x2="{left + plot_w}" y2="{py(0):.1f}" '
        'stroke="#c33"/>',
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 14}" text-anchor="middle">'
        "predicted</text>",
        f'<text x="18" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 18 {top + plot_h / 2:.0f})">actual - predicted</text>',
        f'<text x="{left}" y="{top + plot_h + 18}" text-anchor="middle">{x_lo:.4g}</text>',
        f'<text x="{left + plot_w}" y="{top + plot_h + 18}" text-anchor="middle">'
        f"{x_hi:.4g}</text>",
        f'<text x="{left - 6}" y="{top + 5}" text-anchor="end">{r_peak:.3g}</text>',
        f'<text x="{left - 6}" y="{top + plot_h + 5}" text-anchor="end">{-r_peak:.3g}</text>',
    ]
    for p, r in zip(y_pred.tolist(), residual.tolist()):
        parts.append(f'<circle cx="{px(p):.1f}" cy="{py(r):.1f}" r="2.5" '
                     'fill="#36c" fill-opacity="0.5"/>')
    return _svg(width, height, parts)


def _bounds(values: np.ndarray) -> tuple[float, float]:
    lo, hi = (float(np.min(values)), float(np.max(values))) if len(values) else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _short(label: Any, limit: int = 16) -> str:
    text = str(label)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _svg(width: int, height: int, parts: list[str]) -> str:
    body = "\n  ".join(parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">\n'
            f'  <rect width="{width}" height="{height}" fill="#fff"/>\n  {body}\n</svg>\n')


