"""Keep the mapped weight files out of RSS while the CPU plugin repacks the weights.

OpenVINO maps the IR's weights file, or with a warm compiled-model cache the cache blob, and on
the first inference the CPU plugin repacks the weights into its own layout. The mapped pages stay
resident beside that copy: the weights counted twice (measured: peak RSS of a one-shot answer 396 MB
at 135 M, 1,777 MB at 1.1 B). While the model loads and until its first token, a PageDropper tells
the kernel every few milliseconds that this process no longer needs its pages of those files
(madvise MADV_DONTNEED), and once more at the end, so the two copies are never resident together
(measured: 299 MB and 970 MB). The pages stay in the page cache, and a later read maps them back.
llama.cpp has the same idea as --reclaim-mmap-source.

MADV_DONTNEED on a read-only file mapping loses nothing; on memory that has replaced it, it would
zero that memory. Mappings come and go while a model loads (the tokenizer files are mapped, read
and unmapped), so a range found a moment ago may hold heap
memory by now (seen: a crash). So while loading, each mapping is looked up with PROCMAP_QUERY
(Linux 6.11) and advised microseconds later; where the kernel lacks that query, the dropper starts
only once the model is loaded and its mappings stay put. MADV_PAGEOUT, which checks the memory
itself, is no way out: it evicts the file from the page cache (measured: 807 of 807 MB gone, and the
next start about 2 s slower at 1.1 B).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

MADV_DONTNEED = 4
MAPS = Path("/proc/self/maps")
INTERVAL_S = 0.01  # a layer's weights are repacked in well under this: at most one layer resident twice
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


class _Query(ctypes.Structure):
    """struct procmap_query (linux/fs.h)."""

    _fields_ = [
        ("size", ctypes.c_uint64),
        ("query_flags", ctypes.c_uint64),
        ("query_addr", ctypes.c_uint64),
        ("vma_start", ctypes.c_uint64),
        ("vma_end", ctypes.c_uint64),
        ("vma_flags", ctypes.c_uint64),
        ("vma_page_size", ctypes.c_uint64),
        ("vma_offset", ctypes.c_uint64),
        ("inode", ctypes.c_uint64),
        ("dev_major", ctypes.c_uint32),
        ("dev_minor", ctypes.c_uint32),
        ("vma_name_size", ctypes.c_uint32),
        ("build_id_size", ctypes.c_uint32),
        ("vma_name_addr", ctypes.c_uint64),
        ("build_id_addr", ctypes.c_uint64),
    ]


# _IOWR('f', 17, struct procmap_query); the flags: the covering mapping or the next, file-backed only.
PROCMAP_QUERY = (3 << 30) | (ctypes.sizeof(_Query) << 16) | (ord("f") << 8) | 17
QUERY_NEXT_FILE_MAPPING = 0x10 | 0x20
VMA_WRITABLE = 0x02


class _MapQuery:
    """This process's file mappings one at a time, each as it is at the moment of the call."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._ioctl = libc.ioctl
        self._ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
        self._ioctl.restype = ctypes.c_int
        self._file = MAPS.open("rb", buffering=0)
        self._name = ctypes.create_string_buffer(4096)

    def next_mapping(self, address: int) -> tuple[int, int, bool, str] | None:
        """The first file mapping at or above `address`: start, end, writable, path."""
        query = _Query(size=ctypes.sizeof(_Query), query_flags=QUERY_NEXT_FILE_MAPPING)
        query.query_addr = address
        query.vma_name_size = ctypes.sizeof(self._name)
        query.vma_name_addr = ctypes.addressof(self._name)
        if self._ioctl(self._file.fileno(), PROCMAP_QUERY, ctypes.byref(query)) != 0:
            return None  # ENOENT: no more; ENOTTY/EINVAL: a kernel without PROCMAP_QUERY
        name = self._name.value.decode(errors="replace")
        return query.vma_start, query.vma_end, bool(query.vma_flags & VMA_WRITABLE), name

    def close(self) -> None:
        self._file.close()


def _map_query() -> _MapQuery | None:
    """A PROCMAP_QUERY on this kernel, or None (before Linux 6.11, or not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        query = _MapQuery()
    except OSError:
        return None
    if query.next_mapping(0) is None:  # this module's own interpreter maps files: none means no query
        query.close()
        return None
    return query


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


def _inside(path: str, places: list[str]) -> bool:
    return any(path == place or path.startswith(place + "/") for place in places)


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
        if _inside(fields[5], wanted):
            start, end = (int(value, 16) for value in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


class PageDropper:
    """Drops the resident pages of the mapped weight files, now and then every INTERVAL_S until stop()."""

    def __init__(self, places: Iterable[Path]) -> None:
        """`places`: the model (folder or file) and the compiled-model cache folder, if any."""
        self._madvise = _madvise()
        self._places = weight_files(places)
        self._query = _map_query() if self._madvise is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def checks_each_mapping(self) -> bool:
        """Whether each mapping is looked up as it is advised (safe while mappings come and go)."""
        return self._query is not None

    def drop(self) -> int:
        """Drop the pages once; the bytes of mapping advised."""
        if self._madvise is None:
            return 0
        wanted = [str(place) for place in self._places]
        advised = 0
        if self._query is not None:
            address = 0
            while (found := self._query.next_mapping(address)) is not None:
                start, end, writable, path = found
                # Advised microseconds after the lookup, not the milliseconds a scan of /proc/self/maps takes.
                if (
                    not writable
                    and _inside(path, wanted)
                    and self._madvise(start, end - start, MADV_DONTNEED) == 0
                ):
                    advised += end - start
                address = end
            return advised
        for start, end in read_only_mappings(self._places):
            if self._madvise(start, end - start, MADV_DONTNEED) == 0:
                advised += end - start
        return advised

    def start(self, loading: bool = False) -> PageDropper:
        """Drop in the background from now on. `loading`: the model is being loaded, its mappings
        come and go; then the dropper only starts where it checks each mapping as it advises it
        (call start() again once loaded)."""
        if loading and not self.checks_each_mapping:
            return self
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
        began = time.monotonic()
        self.drop()
        while not self._stop.wait(INTERVAL_S):
            self.drop()
            if time.monotonic() - began > LIFETIME_S:
                return
