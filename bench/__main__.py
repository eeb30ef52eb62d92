"""All of authgate's benchmarks in one run, side by side with FastMCP and the MCP SDK (issue 18).

    python -m bench all [--quick] [--write] [--rounds N] [--seconds S] [--note TEXT] [--json FILE]
    python -m bench library|gateway|flows|footprint …   (one or more sections)

Sections (each a module of bench/; docs/benchmarks.md says what each measures and its targets):
library (library_mode.py), gateway (gateway_mode.py), flows (flows_compare.py over flows.py),
footprint (footprint.py). Every server is a child of this process (one process tree, all
ended on exit); rounds are interleaved and medians reported. Each row starts with the date,
the machine (cores, CPU model), the versions (authgate, mcp, fastmcp, Python), the run's
size and the load average when it began.

`--quick`: one short round with tiny loads (the CI smoke test: every row produced, numbers
meaningless). `--write`: the rows go into docs/benchmarks.md, under each table's marker.
Needs wrk, taskset and the FastMCP venv: `bash scripts/bench-deps.sh`. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import common

SECTIONS = ("library", "gateway", "flows", "footprint")


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float  # each wrk run
    warmup: float  # wrk before each measured run
    steps: int  # requests per step phase (flows)
    flows: int  # whole flows per round
    workers: int  # flow driver processes
    checkpoints: list[int]  # RSS after this many flows, on one server each
    requests: int  # MCP requests before the RSS reading (footprint)
    settle: float  # idle seconds before the idle RSS reading
    ready: float  # seconds for the flow drivers to spawn and warm before their common start

    @classmethod
    def quick(cls) -> Plan:
        return cls(1, 1, 0, 5, 24, 2, [], 500, 1, 1.5)

    @classmethod
    def full(cls) -> Plan:
        return cls(3, 10, 2, 200, 600, 4, [10_000, 100_000], 100_000, 3, 3.0)


def run_cell(stamp: common.Stamp, plan: Plan, quick: bool, note: str) -> str:
    load = os.getloadavg()[0]
    size = (
        "quick: 1 short round, tiny loads"
        if quick
        else f"{plan.rounds} round{'s' if plan.rounds > 1 else ''} × {plan.seconds:g} s, {plan.requests} requests, "
        f"RSS at {'/'.join(map(str, plan.checkpoints)) or 'no'} flows"
    )
    parts = [stamp.date, stamp.machine, stamp.versions, size, f"load {load:.1f} at start"]
    return " · ".join(parts + ([note] if note else []))


def sections(names: list[str], plan: Plan, cell: str) -> list[common.Table]:
    tables: list[common.Table] = []
    for name in names:
        start = time.perf_counter()
        print(f"== {name} …", file=sys.stderr, flush=True)
        if name == "library":
            from bench import library_mode

            tables.append(library_mode.rows(library_mode.run(plan.rounds, plan.seconds, plan.warmup), cell))
        elif name == "gateway":
            from bench import gateway_mode

            tables += gateway_mode.rows(gateway_mode.run(plan.rounds, plan.seconds, plan.warmup), cell)
        elif name == "flows":
            from bench import flows, flows_compare

            flows.DRIVERS_READY_AFTER = plan.ready

            result = flows_compare.run(plan.rounds, plan.steps, plan.flows, plan.workers, plan.checkpoints)
            tables += flows_compare.rows(result, cell)
        elif name == "footprint":
            from bench import footprint

            tables += footprint.rows(footprint.run(plan.rounds, plan.requests, plan.settle), cell)
        print(f"== {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sections", nargs="+", choices=("all", *SECTIONS), metavar="all|" + "|".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="one short round, tiny loads (the CI smoke test)")
    parser.add_argument("--write", action="store_true", help="add the rows to docs/benchmarks.md")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; --quick: 1)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run (default 10; --quick: 1)")
    parser.add_argument("--requests", type=int, help="MCP requests before the RSS reading (default 100000)")
    parser.add_argument(
        "--checkpoints", help="RSS after this many flows, comma-separated (default 10000,100000; --quick: none)"
    )
    parser.add_argument("--note", default="", help='said in every row, e.g. "noisy: concurrent load"')
    parser.add_argument("--json", type=Path, help="also write the tables as JSON to this file")
    args = parser.parse_args(argv)
    names = list(SECTIONS) if "all" in args.sections else [s for s in SECTIONS if s in args.sections]
    plan = Plan.quick() if args.quick else Plan.full()
    changes = {k: v for k, v in (("rounds", args.rounds), ("seconds", args.seconds), ("requests", args.requests)) if v}
    if args.checkpoints is not None:
        changes["checkpoints"] = [int(n) for n in args.checkpoints.split(",") if n.strip()]
    plan = Plan(**{**plan.__dict__, **changes})
    started = time.perf_counter()
    common.need_tools()
    common.bench_python()
    cell = run_cell(common.Stamp.now(), plan, args.quick, args.note)
    tables = sections(names, plan, cell)
    for table in tables:
        print("\n" + table.render())
    rows = sum(len(t.rows) for t in tables)
    print(f"\n{len(tables)} tables, {rows} rows in {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps({t.key: {"title": t.title, "columns": t.columns, "rows": t.rows} for t in tables}, indent=1)
        )
    if args.write:
        common.write_tables(tables)
        print(f"rows written to {common.DOC.relative_to(common.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
