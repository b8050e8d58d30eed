"""``python -m stack [up|down] [--dir DIR]``: ``make stack`` and ``make stack-down``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stack.down import down
from stack.run import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack", description="RabbitMQ, Prometheus and the hub on this machine."
    )
    parser.add_argument(
        "action", nargs="?", choices=("up", "down"), default="up", help="up (default) or down"
    )
    parser.add_argument(
        "--dir", type=Path, default=Path("var/stack"), help="the stack's directory (var/stack)"
    )
    args = parser.parse_args(argv)
    return run(args.dir) if args.action == "up" else down(args.dir)


if __name__ == "__main__":
    sys.exit(main())
