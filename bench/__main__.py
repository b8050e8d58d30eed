"""``python -m bench`` (``make bench``): the hub against its ceilings, in one run.

Starts a throwaway RabbitMQ node, the reference servers and the hub on loopback, drives each with
wrk, prints a table with the issue's targets (PASS/MISS) and writes ``bench-results/<time>.json``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import report, table
from bench.run import Run
from bench.servers import Config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds per step (smoke run)")
    parser.add_argument("--seconds", type=float, help="length of one wrk step (default 4)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; --quick: 1)")
    parser.add_argument(
        "--sustained", type=float, help="seconds of the RSS run (default 300; --quick: 10)"
    )
    parser.add_argument("--outage", type=float, help="seconds of load with the broker down")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--no-pin", action="store_true", help="no CPU pinning (taskset)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="results dir")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--under-load", type=float, help="seconds of one callbacks-under-lookups run (default 10)"
    )
    parser.add_argument("--under-load-rounds", type=int, help="its rounds (3; --quick: 1)")
    parser.add_argument(
        "--read-model",
        action="store_true",
        help="only the read model's steps: lookups, console pages, callbacks under lookups",
    )
    parser.add_argument(
        "--shared-index",
        action="store_true",
        help="only the shared index's step: the pipeline worker with the local index alone and"
        " with PostgreSQL beside it (no wrk)",
    )
    parser.add_argument(
        "--shared-events", type=int, help="events of one run of that step (50 000; --quick: 10 000)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if shutil.which("wrk") is None and not args.shared_index:
        print("wrk is missing: apt-get install wrk (or make system-packages)", file=sys.stderr)
        return 2

    quick = args.quick
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    config = Config(
        seconds=args.seconds or (2.0 if quick else 4.0),
        rounds=args.rounds or (1 if quick else 3),
        sustained=args.sustained or (10.0 if quick else 300.0),
        outage=args.outage or (3.0 if quick else 30.0),
        connections=args.connections,
        server_cpu=None if args.no_pin else 0,
        client_cpu=None if args.no_pin else 1,
        raw_count=10_000 if quick else 30_000,
        raw_window=1024,
        parser_seconds=0.4 if quick else 2.0,
        workdir=workdir,
        lookup_events=100_000 if quick else 1_000_000,
        lookups=100 if quick else 300,
        under_load_seconds=args.under_load or (3.0 if quick else 10.0),
        under_load_rounds=args.under_load_rounds or (1 if quick else 3),
        read_model_only=args.read_model,
        shared_events=args.shared_events or (10_000 if quick else 50_000),
        shared_rounds=args.rounds or (1 if quick else 3),
        shared_index_only=args.shared_index,
    )
    started = time.monotonic()
    run = Run(config)
    try:
        results = run.execute()
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["setup"]["wall_seconds"] = round(time.monotonic() - started, 1)
    results["setup"]["quick"] = quick
    path = report.write(results, args.out)
    print(table.table(results))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
