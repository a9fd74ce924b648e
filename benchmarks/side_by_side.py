"""Two runs' tables side by side, for RESULTS.md: `python -m benchmarks.side_by_side busy.json quiet.json`.

Each file is what `make bench` writes to benchmarks/latest.json; rows are matched by name, in the
first file's order. Prints a Markdown table: per run the value, the baseline and the ratio, then
the target and whether each run met it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.__main__ import _number


def _rows(path: str) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in json.loads(Path(path).read_text(encoding="utf-8"))}


def _ratio(row: dict[str, Any] | None) -> str:
    return "-" if row is None or row["ratio"] is None else f"{row['ratio']:.3g}x"


def _met(row: dict[str, Any] | None) -> str:
    return "-" if row is None or row["met"] is None else "yes" if row["met"] else "NO"


def table(first: str, second: str, labels: tuple[str, str]) -> str:
    a, b = _rows(first), _rows(second)
    names = list(a) + [name for name in b if name not in a]
    lines = [
        f"| figure | unit | {labels[0]} | baseline | ratio | {labels[1]} | baseline | ratio | target | met |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for name in names:
        x, y = a.get(name), b.get(name)
        some = x or y
        assert some is not None
        cells = [name, some["unit"]]
        for row in (x, y):
            cells += [
                _number(row["value"]) if row else "-",
                _number(row["baseline"]) if row else "-",
                _ratio(row),
            ]
        cells += [some["target"] or "-", f"{_met(x)} / {_met(y)}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 4):
        print("usage: python -m benchmarks.side_by_side FIRST.json SECOND.json [LABEL1 LABEL2]", file=sys.stderr)
        return 2
    labels = (argv[2], argv[3]) if len(argv) == 4 else ("first", "second")
    print(table(argv[0], argv[1], labels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
