"""File systems that fail on purpose, for disk-fault tests (as root): a small tmpfs that can be
filled, an ext4 file system on a loop device that ``fsfreeze`` can stall (it cannot freeze a
tmpfs). Every command has a time bound; each context undoes what it did on exit (thaw, unmount,
detach), whatever happened inside.

Outside CI a machine without root or these commands skips the test, saying why; with
``CI=true`` it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["frozen", "loop_ext4", "require", "tmpfs"]

_COMMAND_WAIT = 30.0


def require(*commands: str) -> None:
    """Skips the test (fails it with ``CI=true``) without root or one of ``commands``."""
    missing = [c for c in commands if shutil.which(c) is None]
    reason = "needs root" if os.geteuid() != 0 else ""
    if missing:
        reason = f"needs {', '.join(missing)}"
    if not reason:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"disk-fault test cannot run: {reason}")
    pytest.skip(f"disk-fault test {reason} (with CI=true this is a failure)")


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=_COMMAND_WAIT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout.strip()


def _unmount(mountpoint: Path) -> None:
    try:
        _run("umount", str(mountpoint))
    except RuntimeError:  # still busy: detach it now, the kernel frees it once unused
        _run("umount", "-l", str(mountpoint))


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted on ``mountpoint`` (created)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint))
    try:
        yield mountpoint
    finally:
        _unmount(mountpoint)


@contextlib.contextmanager
def loop_ext4(image: Path, mountpoint: Path, size: int = 64 << 20) -> Iterator[Path]:
    """An ext4 file system in the file ``image`` (``size`` bytes), on a loop device, mounted on
    ``mountpoint``."""
    with open(image, "wb") as f:
        f.truncate(size)
    _run("mkfs.ext4", "-q", "-F", str(image))
    device = _run("losetup", "--find", "--show", str(image))
    try:
        mountpoint.mkdir(parents=True, exist_ok=True)
        _run("mount", device, str(mountpoint))
        try:
            yield mountpoint
        finally:
            _unmount(mountpoint)
    finally:
        _run("losetup", "-d", device)


@contextlib.contextmanager
def frozen(mountpoint: Path, at_most: float = 60.0) -> Iterator[None]:
    """``fsfreeze`` on ``mountpoint``: every write and sync to it waits until the exit. A guard
    process of our own thaws it after ``at_most`` seconds, should the test itself hang (a
    process that touches a frozen file system cannot be interrupted)."""
    guard = subprocess.Popen(
        ["sh", "-c", f'sleep {at_most:.0f}; exec fsfreeze -u "$0"', str(mountpoint)],
        start_new_session=True,
    )
    try:
        _run("fsfreeze", "-f", str(mountpoint))
        try:
            yield
        finally:
            with contextlib.suppress(RuntimeError):  # thawed already (by the guard)
                _run("fsfreeze", "-u", str(mountpoint))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(guard.pid, signal.SIGKILL)  # its own session: the guard and its sleep
        guard.wait(timeout=_COMMAND_WAIT)
