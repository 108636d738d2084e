"""Run every benchmark (`make bench`) and print their figures as one table.

Each benchmark runs as its own script, one after another (they would only measure each other
if run at once on this 2-core machine), with sizes chosen so that the whole run stays under
15 minutes; each writes its figures with `--summary PATH`. The table — benchmark, figure,
value, target, met — goes to the terminal and, as Markdown with the date, the machine's cores
and the load average before and after each benchmark, to bench/results.md (`--markdown` prints
that Markdown instead of the plain table).

Sizes against each script's own defaults (bench/README.md, "make bench"):

- dispatch: 10,000 recipients (20,000);
- fleet: the fast bot and the pair send 10,000 each (20,000), the claim timing's large outbox
  has 100,000 rows (500,000);
- segments: 200,000 customers and 1,000,000 orders (1M, 5M), time targets scaled by 0.2, the
  generated shop kept between runs (`--reuse`, in databases of its own);
- console: the generated shop kept between runs (`--reuse`);
- peers: 1,000 recipients at 25/s (10,000 with `peers.py --full`);
- sandbox, ingest, fanout: their defaults.

    .venv/bin/python bench/run_all.py [--only peers,fleet] [--markdown] [--results PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent

BENCHMARKS: list[tuple[str, list[str]]] = [
    ("sandbox", []),
    ("ingest", []),
    ("dispatch", ["--recipients", "10000"]),
    ("fleet", ["--large", "100000", "--count", "10000"]),
    ("fanout", []),
    (
        "segments",
        [
            *("--customers", "200000", "--orders", "1000000", "--counts", "3", "--reuse"),
            *("--pg-db", "nudge_bench_segments_200k"),
            *("--sqlite-file", "/tmp/nudge_bench_segments_200k.db"),
        ],
    ),
    ("peers", []),
    ("console", ["--reuse"]),
]


def load() -> float:
    """Return the one-minute load average."""
    return os.getloadavg()[0]


def run(name: str, extra: list[str], folder: Path) -> tuple[list[dict[str, Any]], dict]:
    """Run one benchmark script; return its summary rows and how the run went."""
    summary = folder / f"{name}.json"
    command = [sys.executable, str(BENCH / f"{name}.py"), *extra, "--summary", str(summary)]
    print(f"\n=== {name}: {' '.join(command[1:])}  (load average {load():.2f})", flush=True)
    before, started = load(), time.monotonic()
    code = subprocess.run(command, cwd=BENCH.parent, check=False).returncode
    ran = {"name": name, "seconds": time.monotonic() - started, "load": (before, load())}
    rows = json.loads(summary.read_text()) if summary.exists() else []
    if code or not rows:
        failure = f"the script failed (exit code {code})" if code else "no figures written"
        rows.append(
            {
                "benchmark": name,
                "figure": failure,
                "value": None,
                "unit": "",
                "target": "exit code 0",
                "met": False,
            }
        )
    print(f"=== {name}: {ran['seconds']:.0f} s", flush=True)
    return rows, ran


def shown(row: dict[str, Any]) -> str:
    """Return a row's value with its unit, rounded for reading."""
    value = row["value"]
    if value is None:
        return "-"
    unit = row["unit"]
    whole = float(value).is_integer() and unit != "x"
    digits = 0 if whole or abs(value) >= 100 else (1 if abs(value) >= 10 else 2)
    return f"{value:,.{digits}f}" + ("x" if unit == "x" else f" {unit}" if unit else "")


def verdict(met: bool | None) -> str:
    """Return how a figure compares with its target."""
    return "-" if met is None else ("met" if met else "MISSED")


def table(rows: list[dict[str, Any]]) -> str:
    """Return the rows as a plain-text table."""
    cells = [("benchmark", "figure", "value", "target", "met")]
    cells += [
        (r["benchmark"], r["figure"], shown(r), r["target"], verdict(r["met"])) for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]], runs: list[dict], started: datetime) -> str:
    """Return the results as Markdown: how the run went, then the table."""
    total = sum(r["seconds"] for r in runs)
    met = sum(1 for r in rows if r["met"] is True)
    missed = sum(1 for r in rows if r["met"] is False)
    text = [
        f"`make bench`, {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"{total / 60:.1f} minutes in all; targets met: {met}, missed: {missed}.",
        "",
        "| benchmark | seconds | load average before → after |",
        "|---|---|---|",
    ]
    text += [
        f"| {r['name']} | {r['seconds']:.0f} | {r['load'][0]:.2f} → {r['load'][1]:.2f} |"
        for r in runs
    ]
    text += ["", "| benchmark | figure | value | target | met |", "|---|---|---|---|---|"]
    text += [
        f"| {r['benchmark']} | {r['figure']} | {shown(r)} | {r['target']} | {verdict(r['met'])} |"
        for r in rows
    ]
    return "\n".join(text) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmarks to run (default: all)")
    parser.add_argument("--markdown", action="store_true", help="print the Markdown table")
    parser.add_argument("--results", default=str(BENCH / "results.md"), help="Markdown file")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else [name for name, _ in BENCHMARKS]
    started = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="nudge-bench-") as folder:
        for name, extra in BENCHMARKS:
            if name not in chosen:
                continue
            if not (BENCH / f"{name}.py").exists():
                print(f"\n=== {name}: bench/{name}.py is not there; skipped", flush=True)
                continue
            found, ran = run(name, extra, Path(folder))
            rows += found
            runs.append(ran)
    text = markdown(rows, runs, started)
    Path(args.results).write_text(text)
    print()
    print(text if args.markdown else table(rows))
    print(
        f"\n{sum(r['seconds'] for r in runs) / 60:.1f} minutes; load average now {load():.2f}; "
        f"Markdown in {args.results}"
    )


if __name__ == "__main__":
    main()
