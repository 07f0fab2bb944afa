"""One benchmark of two checkouts in the same run: before and after a change.

Runs ``bench/<script>`` from each checkout (with that checkout's own venv)
in alternating rounds, so both see the same machine, and prints every ratio
the benchmark reports (the lines ending in ``1.23x``: daebus against its
baseline, measured in the same run) as each checkout's median and the
rounds' spread.

    .venv/bin/python bench/compare.py --before /tmp/old --after . --rounds 5 rpc.py --only pubsub

A checkout's venv is ``<checkout>/.venv`` (``./dev test`` makes it).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

RATIO = re.compile(r"^(?P<label>\S.*?)\s{2,}.*?(?P<ratio>\d+\.\d+)x(\s+\(.*\))?\s*$")


def ratios(output: str, section: str = "") -> dict[str, float]:
    """``{label: ratio}`` of each ratio line; a label is prefixed with the
    header line above it, so that parts reporting the same label stay apart."""
    found = {}
    for line in output.splitlines():
        if line.startswith(" " * 12) and line.strip():  # a table's header: what it compares
            section = " ".join(line.split())
            continue
        match = RATIO.match(line)
        if match:
            found[f"{section} | {match['label'].strip()}"] = float(match["ratio"])
    return found


def run(checkout: Path, script: str, args: list[str]) -> str:
    python = checkout / ".venv/bin/python"
    done = subprocess.run([str(python), str(checkout / "bench" / script), *args], cwd=checkout,
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        sys.exit(f"compare: {checkout}/bench/{script} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the checkout before the change")
    parser.add_argument("--after", type=Path, required=True, help="the checkout after the change")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("script", help="a benchmark in bench/, e.g. rpc.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    options = parser.parse_args()
    seen: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    for n in range(options.rounds):
        for side in ("before", "after") if n % 2 == 0 else ("after", "before"):
            out = run(getattr(options, side).resolve(), options.script, options.args)
            for label, value in ratios(out).items():
                seen[side].setdefault(label, []).append(value)
            print(f"round {n + 1} {side}: done", file=sys.stderr, flush=True)
    print(f"{options.script} {' '.join(options.args)}: {options.rounds} alternating rounds")
    print(f"{'ratio':56}{'before: median (spread)':>26}{'after: median (spread)':>26}")
    for label in seen["before"]:
        cells = []
        for side in ("before", "after"):
            values = seen[side].get(label)
            cells.append(f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"
                         if values else "-")
        print(f"{label[:56]:56}{cells[0]:>26}{cells[1]:>26}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
