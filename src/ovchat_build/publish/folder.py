"""The work folder a build fills, and publishing it: a model folder appears whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ovchat_build.checkout import SOURCES_CACHE


def remove_stale_partials(out_dir: Path) -> None:
    """Delete leftovers of builds that were killed (their pid is gone)."""
    for folder in (*out_dir.glob(".partial-*"), *SOURCES_CACHE.glob(".partial-*")):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def partial_folder(out_dir: Path, name: str) -> Iterator[Path]:
    """A hidden work folder that is removed unless the build renames it into place."""
    work = out_dir / f".partial-{name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish(work: Path, target: Path) -> None:
    """Move the finished folder into place, replacing an older build of the same name."""
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    if target.exists():
        target.rename(old)
    work.rename(target)
    shutil.rmtree(old, ignore_errors=True)
