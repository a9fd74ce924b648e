"""`make bench`: every figure in one run on one redis-server of its own, then the table (stdout)
and benchmarks/latest.json. Progress goes to stderr.

`python -m benchmarks beacons reads` runs only those figures (by module name) and writes their
rows to benchmarks/partial.json instead, leaving latest.json to whole runs."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from redis import Redis

from benchmarks import beacons, cleanup_pass, cold_start, fanout, handler_ingest, http_gateway, ingest, reads, split
from benchmarks.harness import Figure, product_client, progress, redis_server

LATEST = Path(__file__).resolve().parent / "latest.json"
FLUSH_TIMEOUT_SECONDS = 120
PARTIAL = LATEST.with_name("partial.json")


def _fresh(redis_url: str, title: str) -> None:
    """Each figure starts on an empty Redis, so none inherits another's keys or memory. Flushed
    synchronously (figure 8 measures memory) by a client that waits for it: freeing a figure's
    millions of entries can take longer than the functions' 1 s timeout on a busy machine."""
    progress(title)
    with Redis.from_url(redis_url, socket_timeout=FLUSH_TIMEOUT_SECONDS) as client:
        client.flushall()


def _machine() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.2f} {five:.2f} {fifteen:.2f}"


def _number(value: float | None) -> str:
    """Three significant digits or more, thousands separated: 0.0712, 41.3, 5,068."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.1f}"
    return f"{value:.3g}"


def table(figures: Sequence[Figure]) -> str:
    rows = [("figure", "value", "unit", "baseline", "ratio", "target", "met")]
    for f in figures:
        met = "-" if f.met is None else "yes" if f.met else "NO"
        ratio = "-" if f.ratio is None else f"{f.ratio:.3g}x"
        rows.append((f.name, _number(f.value), f.unit, _number(f.baseline), ratio, f.target or "-", met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 3, 4}
    lines = [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def write_json(figures: Sequence[Figure], path: Path = LATEST) -> None:
    """Written whole or not at all (a temporary file, then renamed)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps([f.as_json() for f in figures], indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def main(only: Sequence[str] = ()) -> int:
    started = time.monotonic()
    figures: list[Figure] = []
    unknown = set(only) - set(FIGURES)
    if unknown:
        progress(f"no such figure: {', '.join(sorted(unknown))} (figures: {', '.join(FIGURES)})")
        return 2
    with redis_server() as server:
        url = server.url
        with product_client(url) as client:
            version = client.info("server")["redis_version"]
        # Other work on the machine moves every figure; the load average says how much there was.
        progress(f"redis-server {version}, Python {platform.python_version()}, {_machine()}")
        tracker_rate: float | None = None
        handler_rate: float | None = None
        for name, title in FIGURES.items():
            if only and name not in only:
                continue
            _fresh(url, title)
            if name == "ingest":
                ingested = ingest.run(url)
                figures += ingested.figures
                tracker_rate = ingested.tracker_rate
            elif name == "handler_ingest":
                if tracker_rate is None:
                    progress("handler_ingest compares with ingest: run both")
                    continue
                handler_figures, handler_rate = handler_ingest.run(url, tracker_rate)
                figures += handler_figures
            elif name == "http_gateway":
                if handler_rate is None:
                    progress("http_gateway compares with handler_ingest: run both")
                    continue
                figures += http_gateway.run(url, handler_rate)
            else:
                figures += RUNS[name](url)
    print(table(figures), flush=True)
    path = PARTIAL if only else LATEST
    write_json(figures, path)
    missed = [f.name for f in figures if f.met is False]
    progress(f"done in {time.monotonic() - started:.0f} s; wrote {path}; {_machine()}")
    progress(f"{len(missed)} target(s) missed" + (": " + "; ".join(missed) if missed else ""))
    return 0


FIGURES = {
    "ingest": "figure 1: ingest through the tracker, vs the seed design and the no-op EVALSHA ceiling",
    "handler_ingest": "figure 2: the track_visit handler in-process, vs the tracker call alone",
    "reads": "figure 3: stats reads on one community of 100 000 live visitors",
    "cleanup_pass": "figure 4: cleanup of 10 000 communities",
    "cold_start": "figure 5: cold start of each handler",
    "http_gateway": "figure 6: HTTP end to end through the local gateway",
    "fanout": "figure 7: live push, one tick to 5,000 subscribers over a fake management API",
    "beacons": "figure 8: redis-server time per beacon kind and memory per live person, with heartbeats",
    "split": "figure 9: one hot community in parts, ingest on the 3-master test cluster",
}
RUNS: dict[str, Callable[[str], list[Figure]]] = {
    "reads": reads.run,
    "cleanup_pass": cleanup_pass.run,
    "cold_start": cold_start.run,
    "fanout": fanout.run,
    "beacons": beacons.run,
    "split": split.run,
}


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
