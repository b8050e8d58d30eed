"""``make stack-down``: stops the stack ``make stack`` runs, by the PID in its PID file.

SIGTERM to the runner, which stops the hub, Prometheus and RabbitMQ by their PIDs (as Ctrl-C
does) and removes the PID file; this waits until the runner is gone.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from stack.run import PID_FILE, running_pid

_WAIT = 120.0


def down(base: Path) -> int:
    """0 once nothing runs (or nothing ran); 1 if the runner outlasts the wait."""
    pid_file = base / PID_FILE
    pid = running_pid(pid_file)
    if pid is None:
        if pid_file.exists():
            pid_file.unlink()
            print(f"no stack running (a stale {pid_file} removed)")
        else:
            print(f"no stack running (no {pid_file})")
        return 0
    print(f"stopping the stack (PID {pid})...", flush=True)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _WAIT
    while running_pid(pid_file) == pid or _alive(pid):
        if time.monotonic() > deadline:
            print(f"the stack (PID {pid}) is still stopping after {_WAIT:.0f} s")
            return 1
        time.sleep(0.1)  # polling a process that is not our child
    print("stack stopped")
    return 0


def _alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :][:1] not in ("Z", "X")
