"""Compare the run folders of one job run twice (``scripts/identity-check.sh``).

Every output must be the same once what records when and how long is set aside: the job's
timings and creation time, peak memory, durations in the results, the chart panel of seconds
per algorithm. PNGs are compared by pixels, the workbook by cell values, JSON by content.
Usage: python scripts/compare_runs.py BEFORE_OUT AFTER_OUT  (each holding one run_* folder).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import openpyxl

VOLATILE = {"created_at", "finished_at", "timings_s", "seconds", "run_dir", "peak_rss_mb", "database", "config"}
TIMING_FILES = {"algorithm_comparison.png"}  # one panel plots seconds per algorithm


def scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def text(path: Path) -> str:
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        if re.match(r"\s*(Created at|Step |Algorithm \w+:|Peak memory|Database:)", line):
            continue  # when, how long, how much memory, where the database was
        kept.append(line)
    return "\n".join(kept)


def cells(path: Path) -> dict[str, list[list[Any]]]:
    book = openpyxl.load_workbook(path, read_only=True)
    out = {}
    for sheet in book:
        rows = [list(row) for row in sheet.iter_rows(values_only=True)]
        if sheet.title == "Results" and rows:
            seconds = rows[0].index("Seconds")
            rows = [row[:seconds] + row[seconds + 1 :] for row in rows]
        out[sheet.title] = rows
    return out


def same(a: Path, b: Path) -> bool:
    if a.suffix == ".json":
        return scrub(json.loads(a.read_text())) == scrub(json.loads(b.read_text()))
    if a.suffix == ".png":
        return bool(np.array_equal(mpimg.imread(a), mpimg.imread(b)))
    if a.suffix == ".xlsx":
        return cells(a) == cells(b)
    return text(a) == text(b)


def main() -> int:
    before, after = (sorted(Path(p).glob("run_*"))[-1] for p in sys.argv[1:3])
    names = sorted({p.name for p in before.iterdir()} | {p.name for p in after.iterdir()})
    differ = [n for n in names if not ((before / n).exists() and (after / n).exists() and same(before / n, after / n))]
    print(f"{len(names) - len(differ)} of {len(names)} outputs identical")
    unexplained = [n for n in differ if n not in TIMING_FILES]
    for name in differ:
        print(f"  differs: {name}" + (" (its timing panel)" if name in TIMING_FILES else ""))
        if name.endswith(".json") and (before / name).exists() and (after / name).exists():
            a, b = scrub(json.loads((before / name).read_text())), scrub(json.loads((after / name).read_text()))
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    print(f"    {key}: {str(a.get(key))[:60]} → {str(b.get(key))[:60]}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
