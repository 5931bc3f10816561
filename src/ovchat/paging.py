"""Keep the model's memory-mapped weight files out of the process's resident memory (Linux).

OpenVINO maps the IR's weights file, or with a warm compiled-model cache the cache blob, and on
the first inference the CPU plugin repacks the weights into its own layout. The mapped pages stay
resident beside that copy: the weights counted twice (measured: peak RSS of a one-shot answer 396 MB
at 135 M, 1,777 MB at 1.1 B). While the model loads and until its first token, a PageDropper asks
the kernel every few milliseconds to reclaim this process's pages of those files, and once more at
the end, so the two copies are never resident together (measured: 299 MB and 970 MB; the pages stay
in the page cache, and a later read maps them back). llama.cpp has the same idea as
--reclaim-mmap-source.

It uses MADV_PAGEOUT (Linux 5.4), which never loses data: on a file page it drops the mapping, on
any other memory it would swap or do nothing. That matters because mappings come and go while a
model loads (the tokenizer files are mapped, read and unmapped), so a range found a moment ago may
hold heap memory by now; MADV_DONTNEED there would zero it (seen: a crash). On older kernels
madvise refuses MADV_PAGEOUT and the dropper does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

MADV_PAGEOUT = 21  # linux/mman.h: reclaim the pages, never lose their contents
MAPS = Path("/proc/self/maps")
INTERVAL_S = 0.01  # a layer's weights are repacked in well under this: at most one layer resident twice
# Reading /proc/self/maps (hundreds of mappings once OpenVINO is loaded) costs ~2 ms; madvise on the
# known ranges ~5 µs. So the ranges are reread 20 times a second and dropped 100 times a second.
RESCAN_S = 0.05
# A safety net: no dropper outlives a slow load and first inference (a library user may open a model
# and never generate; a server warms up at load).
LIFETIME_S = 120.0


def _madvise() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    function = libc.madvise
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def weight_files(places: Iterable[Path]) -> list[Path]:
    """Where the weights may be mapped from: the files given, and each folder with its files
    (symlinks followed: a model folder can be a folder of links)."""
    found: set[Path] = set()
    for place in places:
        if place.is_file():
            found.add(place.resolve())
        elif place.is_dir():
            found.add(place.resolve())
            found.update(item.resolve() for item in place.iterdir() if item.is_file())
    return sorted(found)


def read_only_mappings(places: list[Path]) -> list[tuple[int, int]]:
    """Address ranges of read-only file mappings of (or under) `places` in this process."""
    wanted = [str(place) for place in places]
    ranges = []
    try:
        lines = MAPS.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "w" in fields[1]:
            continue
        path = fields[5]
        if any(path == place or path.startswith(place + "/") for place in wanted):
            start, end = (int(value, 16) for value in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


class PageDropper:
    """Drops the resident pages of the mapped weight files, now and then every INTERVAL_S until stop()."""

    def __init__(self, places: Iterable[Path]) -> None:
        """`places`: the model (folder or file) and the compiled-model cache folder, if any."""
        self._madvise = _madvise()
        self._places = weight_files(places)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ranges: list[tuple[int, int]] = []

    def drop(self, rescan: bool = True) -> int:
        """Drop the pages once (of the mappings found now, or with `rescan` False, last time); the
        bytes of mapping advised."""
        if self._madvise is None:
            return 0
        if rescan:
            self._ranges = read_only_mappings(self._places)
        advised = 0
        for start, end in self._ranges:
            if self._madvise(start, end - start, MADV_PAGEOUT) == 0:
                advised += end - start
        return advised

    def start(self) -> PageDropper:
        if self._madvise is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ovchat-pages", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop dropping in the background and drop once more (safe to call more than once)."""
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self.drop()

    def _run(self) -> None:
        began = scanned = time.monotonic()
        self.drop()
        while not self._stop.wait(INTERVAL_S):
            now = time.monotonic()
            if now - began > LIFETIME_S:
                self.drop()
                return
            rescan = now - scanned >= RESCAN_S
            scanned = now if rescan else scanned
            self.drop(rescan)
