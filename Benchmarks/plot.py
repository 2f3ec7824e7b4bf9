#!/usr/bin/env python3
"""Draws batch-verification throughput as two SVG charts, by hand (Python 3
standard library only):

    python3 Benchmarks/plot.py RESULTS.json [--out-dir DIR] [--prefix NAME]

writes DIR/NAME-threads.svg (records/s against worker threads, with the
ideal linear scaling from the one-thread point) and DIR/NAME-live-tickets.svg
(records/s against live tickets, log axis when the counts span more than two
decades). DIR defaults to the input's folder, NAME to the input's name
without .json. A chart whose array is missing or empty is skipped.

Input schema ("micropay-throughput/1"), as written by `micropay bench --json`:

    {
      "schema": "micropay-throughput/1",        optional
      "source": "...", "command": "...",        optional, shown under the charts
      "date": "...", "machine": "...",          optional, shown under the charts
      "threads":      [{"threads": 1, "records_per_second": 2.1e6}, ...],
      "live_tickets": [{"tickets": 1000, "records_per_second": 2.0e6}, ...]
    }

Only `threads`/`tickets` and `records_per_second` are read from the points;
other keys are ignored. Points are sorted by x; an x given twice is drawn as
given (no averaging).
"""
import argparse
import json
import math
import sys
from pathlib import Path
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 480
LEFT, RIGHT, TOP, BOTTOM = 90, 30, 50, 125
PAD = 24  # inner margin: points at the ends of the x range stay clear of the axes
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"


def human(x):
    """1234567 -> '1.23M' (SI prefixes, three significant digits)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            v = x / scale
            return (f"{v:.3g}" if v < 100 else f"{v:.0f}") + unit
    return f"{x:.3g}" if x != int(x) else str(int(x))


def nice_ticks(lo, hi, count=5):
    """Round tick values covering [lo, hi] (lo usually 0)."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=10 * magnitude)
    first = math.floor(lo / step) * step
    ticks = [first]
    while ticks[-1] < hi - 1e-9 * step:
        ticks.append(first + len(ticks) * step)
    return ticks


class Axis:
    def __init__(self, lo, hi, pixel_lo, pixel_hi, log=False):
        self.lo, self.hi, self.plo, self.phi, self.log = lo, hi, pixel_lo, pixel_hi, log

    def __call__(self, v):
        if self.log:
            a, b, v = math.log10(self.lo), math.log10(self.hi), math.log10(v)
        else:
            a, b = self.lo, self.hi
        t = 0.5 if b == a else (v - a) / (b - a)
        return self.plo + t * (self.phi - self.plo)


def chart(title, x_label, points, x_key, footer, ideal=False, integer_x=False):
    """One line chart as an SVG string. points: list of (x, y)."""
    points = sorted(points)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    log_x = min(xs) > 0 and max(xs) / min(xs) > 100
    if log_x:
        x_lo = 10 ** math.floor(math.log10(min(xs)))
        x_hi = 10 ** math.ceil(math.log10(max(xs)))
        x_ticks = [10 ** e for e in range(int(math.log10(x_lo)), int(math.log10(x_hi)) + 1)]
    elif integer_x:
        x_lo, x_hi = min(0, min(xs)), max(max(xs), 2)
        step = max(1, math.ceil((x_hi - x_lo) / 8))
        x_ticks = list(range(int(x_lo), int(x_hi) + 1, step))
        if x_ticks[-1] != x_hi:
            x_ticks.append(int(x_hi))
    else:
        x_ticks = nice_ticks(min(0, min(xs)), max(xs))
        x_lo, x_hi = x_ticks[0], x_ticks[-1]
    if x_hi == x_lo:
        x_hi = x_lo + 1

    y_top = max(ys)
    ideal_points = []
    if ideal and points:
        base_x, base_y = points[0]
        if base_x > 0:
            ideal_points = [(x, base_y * x / base_x) for x in xs]
            y_top = max(y_top, max(p[1] for p in ideal_points))
    y_ticks = nice_ticks(0, y_top * 1.05)
    y_lo, y_hi = y_ticks[0], y_ticks[-1]

    X = Axis(x_lo, x_hi, LEFT + PAD, WIDTH - RIGHT - PAD, log=log_x)
    Y = Axis(y_lo, y_hi, HEIGHT - BOTTOM, TOP)

    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}'>",
        f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>",
        f"<text x='{WIDTH / 2}' y='28' text-anchor='middle' font-size='17' font-weight='bold' {FONT}>{escape(title)}</text>",
    ]
    # Grid and tick labels.
    for t in y_ticks:
        y = Y(t)
        out.append(f"<line x1='{LEFT}' y1='{y:.1f}' x2='{WIDTH - RIGHT}' y2='{y:.1f}' stroke='#e3e3e3'/>")
        out.append(f"<text x='{LEFT - 8}' y='{y + 4:.1f}' text-anchor='end' font-size='12' {FONT}>{human(t)}</text>")
    for t in x_ticks:
        x = X(t)
        out.append(f"<line x1='{x:.1f}' y1='{TOP}' x2='{x:.1f}' y2='{HEIGHT - BOTTOM}' stroke='#eeeeee'/>")
        out.append(f"<text x='{x:.1f}' y='{HEIGHT - BOTTOM + 18}' text-anchor='middle' font-size='12' {FONT}>{human(t)}</text>")
    # Axes.
    out.append(f"<line x1='{LEFT}' y1='{HEIGHT - BOTTOM}' x2='{WIDTH - RIGHT}' y2='{HEIGHT - BOTTOM}' stroke='black'/>")
    out.append(f"<line x1='{LEFT}' y1='{TOP}' x2='{LEFT}' y2='{HEIGHT - BOTTOM}' stroke='black'/>")
    out.append(f"<text x='{(LEFT + WIDTH - RIGHT) / 2}' y='{HEIGHT - BOTTOM + 40}' text-anchor='middle' font-size='13' {FONT}>"
               f"{escape(x_label)}{' (log scale)' if log_x else ''}</text>")
    out.append(f"<text transform='translate(22 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)' text-anchor='middle' "
               f"font-size='13' {FONT}>records / s</text>")
    # Ideal scaling (dashed), then the measured line and points.
    if len(ideal_points) > 1:
        path = " ".join(f"{'M' if i == 0 else 'L'}{X(x):.1f},{Y(y):.1f}" for i, (x, y) in enumerate(ideal_points))
        out.append(f"<path d='{path}' fill='none' stroke='#999999' stroke-width='1.5' stroke-dasharray='6 4'/>")
        lx, ly = ideal_points[-1]
        out.append(f"<text x='{X(lx) - 10:.1f}' y='{Y(ly) + 4:.1f}' text-anchor='end' font-size='11' fill='#777777' {FONT}>"
                   f"ideal linear scaling</text>")
    if len(points) > 1:
        path = " ".join(f"{'M' if i == 0 else 'L'}{X(x):.1f},{Y(y):.1f}" for i, (x, y) in enumerate(points))
        out.append(f"<path d='{path}' fill='none' stroke='#1f5fa8' stroke-width='2.5'/>")
    for x, y in points:
        out.append(f"<circle cx='{X(x):.1f}' cy='{Y(y):.1f}' r='4.5' fill='#1f5fa8'><title>{x_key} {x}: {y:.0f} records/s</title></circle>")
        out.append(f"<text x='{X(x):.1f}' y='{Y(y) - 10:.1f}' text-anchor='middle' font-size='11' fill='#1f5fa8' {FONT}>{human(y)}</text>")
    # Provenance under the chart, wrapped.
    lines = []
    for line in footer:
        while len(line) > 115:
            cut = line.rfind(" ", 0, 115)
            cut = cut if cut > 40 else 115
            lines.append(line[:cut])
            line = "    " + line[cut:].lstrip()
        lines.append(line)
    for i, line in enumerate(lines[:5]):
        out.append(f"<text x='{LEFT}' y='{HEIGHT - BOTTOM + 62 + 14 * i}' font-size='10' fill='#555555' {FONT}>{escape(line)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def points_of(data, key, x_key):
    pts = []
    for i, p in enumerate(data.get(key) or []):
        try:
            x, y = p[x_key], p["records_per_second"]
            x, y = float(x), float(y)
        except (KeyError, TypeError, ValueError):
            sys.exit(f"{key}[{i}]: needs numeric '{x_key}' and 'records_per_second'")
        if x < 0 or y < 0 or not math.isfinite(x) or not math.isfinite(y):
            sys.exit(f"{key}[{i}]: values must be finite and non-negative")
        pts.append((x, y))
    return pts


def main():
    parser = argparse.ArgumentParser(description="Throughput charts (SVG) from a micropay-throughput JSON file.")
    parser.add_argument("input", type=Path)
    parser.add_argument("--out-dir", type=Path)
    parser.add_argument("--prefix")
    args = parser.parse_args()
    data = json.loads(args.input.read_text())
    if not isinstance(data, dict):
        sys.exit("the input must be a JSON object")
    out_dir = args.out_dir or args.input.parent
    prefix = args.prefix or args.input.name.removesuffix(".json")
    out_dir.mkdir(parents=True, exist_ok=True)

    footer = []
    if data.get("source"):
        footer.append(str(data["source"]))
    if data.get("machine") or data.get("date"):
        footer.append(" — ".join(str(data[k]) for k in ("machine", "date") if data.get(k)))
    if data.get("command"):
        footer.append("$ " + str(data["command"]))

    written = []
    threads = points_of(data, "threads", "threads")
    if threads:
        path = out_dir / f"{prefix}-threads.svg"
        path.write_text(chart("Batch verification: throughput vs threads", "worker threads", threads, "threads",
                              footer, ideal=True, integer_x=True))
        written.append(path)
    tickets = points_of(data, "live_tickets", "tickets")
    if tickets:
        path = out_dir / f"{prefix}-live-tickets.svg"
        path.write_text(chart("Batch verification: throughput vs live tickets", "live tickets", tickets, "tickets", footer))
        written.append(path)
    if not written:
        sys.exit("nothing to plot: 'threads' and 'live_tickets' are both missing or empty")
    for p in written:
        print(p)


if __name__ == "__main__":
    main()
