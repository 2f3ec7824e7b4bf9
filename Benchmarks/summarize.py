#!/usr/bin/env python3
"""Summarises a Benchmarks/run.sh result folder: median rates, ratios against
the naive baselines, and allocations per iteration.

    python3 Benchmarks/summarize.py Benchmarks/results/<run>

Reads <run>/raw.jsonl (one line per measured iteration, written by the
benchmarks when MICROPAY_BENCH_RESULTS is set: exact seconds and items) and,
for allocations, the package-benchmark table in <run>/benchmarks.md (the
median of "Malloc (total)"). Standard library only.
"""
import json
import re
import statistics
import sys
from collections import OrderedDict
from pathlib import Path


def human(x):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}" if x / scale < 100 else f"{x / scale:.0f}{unit}"
    return f"{x:.3g}"


def read_raw(path):
    runs = OrderedDict()
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            entry = runs.setdefault(r["benchmark"], {"rate": r["rate"], "items": r["items"], "values": [], "seconds": []})
            entry["values"].append(r["per_second"])
            entry["seconds"].append(r["seconds"])
    return runs


UNIT = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}


def read_mallocs(path):
    """benchmark heading -> median malloc count per iteration, from the markdown tables."""
    mallocs = {}
    heading = None
    if not Path(path).exists():
        return mallocs
    for line in open(path):
        if line.startswith("### "):
            heading = line[4:].strip()
        elif heading and line.startswith("| Malloc (total)"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            m = re.search(r"\((K|M|G)\)", cells[0])
            scale = UNIT[m.group(1)] if m else 1
            header_p50 = 3  # Metric | p0 | p25 | p50 | ...
            try:
                mallocs[heading] = float(cells[header_p50]) * scale
            except (ValueError, IndexError):
                pass
    return mallocs


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run = Path(sys.argv[1])
    raw = read_raw(run / "raw.jsonl")
    mallocs = read_mallocs(run / "benchmarks.md")
    if not raw:
        sys.exit(f"{run}/raw.jsonl holds no measurements")

    groups = OrderedDict()
    for name, entry in raw.items():
        group, _, variant = name.partition(" | ")
        groups.setdefault(group, OrderedDict())[variant or name] = entry

    print(f"{'benchmark':<74} {'runs':>4} {'median/s':>10} {'min/s':>10} {'max/s':>10} {'x naive':>8} {'mallocs/iter':>13}")
    for group, variants in groups.items():
        naive = next((e for v, e in variants.items() if v.startswith("naive")), None)
        naive_median = statistics.median(naive["values"]) if naive else None
        print(f"{group}  [{next(iter(variants.values()))['rate']}, {next(iter(variants.values()))['items']} items/iteration]")
        for variant, e in variants.items():
            med = statistics.median(e["values"])
            ratio = f"{med / naive_median:.2f}" if naive_median and e is not naive else ("1.00" if e is naive else "")
            full = f"{group} | {variant}"
            m = next((v for k, v in mallocs.items() if k.startswith(full)), None)
            mtxt = human(m) if m is not None else ""
            print(f"  {variant:<72} {len(e['values']):>4} {human(med):>10} {human(min(e['values'])):>10} "
                  f"{human(max(e['values'])):>10} {ratio:>8} {mtxt:>13}")


if __name__ == "__main__":
    main()
