"""PageDropper: mapped read-only files leave RSS, keep their contents, and nothing else is touched."""

from __future__ import annotations

import mmap
import sys
from pathlib import Path

import pytest

from ovchat.model import paging
from ovchat.model.paging import PageDropper, read_only_mappings, weight_files

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc: Linux")
SIZE = 4 * 1024 * 1024


def resident_kb(path: Path) -> int:
    """Rss of this process's mappings of `path`, from /proc/self/smaps."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header line
            inside = len(fields) == 6 and fields[5] == str(path.resolve())
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


def weights(tmp_path: Path) -> Path:
    path = tmp_path / "model" / "openvino_model.bin"
    path.parent.mkdir()
    path.write_bytes(bytes(range(256)) * (SIZE // 256))
    return path


@pytest.fixture(params=["query", "maps"])
def lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the dropper finds the mappings: PROCMAP_QUERY (Linux 6.11), or reading /proc/self/maps."""
    if request.param == "query" and paging._map_query() is None:
        pytest.skip("this kernel has no PROCMAP_QUERY")
    if request.param == "maps":
        monkeypatch.setattr(paging, "_map_query", lambda: None)
    return str(request.param)


def test_a_read_only_mapping_leaves_resident_memory_and_reads_the_same(tmp_path: Path, lookup: str) -> None:
    path = weights(tmp_path)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        checksum = sum(view[::4096])  # touches every page
        assert resident_kb(path) >= SIZE // 1024 * 0.9
        advised = PageDropper([path.parent]).drop()
        assert advised >= SIZE
        assert resident_kb(path) < SIZE // 1024 * 0.1
        assert sum(view[::4096]) == checksum  # read again from the page cache, unchanged


def test_writable_mappings_and_other_files_are_left_alone(tmp_path: Path, lookup: str) -> None:
    path = weights(tmp_path)
    other = tmp_path / "other.bin"
    other.write_bytes(b"x" * SIZE)
    with (
        path.open("r+b") as handle,
        mmap.mmap(handle.fileno(), 0) as writable,
        other.open("rb") as other_handle,
        mmap.mmap(other_handle.fileno(), 0, access=mmap.ACCESS_READ) as elsewhere,
    ):
        writable[0] = 7  # a change to keep
        sum(writable[::4096]) + sum(elsewhere[::4096])
        PageDropper([path.parent]).drop()
        assert writable[0] == 7
        assert resident_kb(path) >= SIZE // 1024 * 0.9
        assert resident_kb(other) >= SIZE // 1024 * 0.9


def test_a_folder_of_links_is_followed_to_the_real_files(tmp_path: Path, lookup: str) -> None:
    path = weights(tmp_path)
    links = tmp_path / "links"
    links.mkdir()
    (links / path.name).symlink_to(path)
    assert path.resolve() in weight_files([links])
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        sum(view[::4096])
        assert read_only_mappings(weight_files([links]))
        PageDropper([links]).drop()
        assert resident_kb(path) < SIZE // 1024 * 0.1


def test_the_background_dropper_stops_and_drops_once_more(tmp_path: Path) -> None:
    path = weights(tmp_path)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        dropper = PageDropper([path.parent]).start()
        sum(view[::4096])
        dropper.stop()
        assert resident_kb(path) < SIZE // 1024 * 0.1
        dropper.stop()  # a second stop is harmless
        sum(view[::4096])
        assert resident_kb(path) >= SIZE // 1024 * 0.9  # stopped: nothing drops them any more


def test_a_dropper_nobody_stops_ends_by_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library user may open a model and never generate: the dropper does not run forever."""
    monkeypatch.setattr(paging, "LIFETIME_S", 0.1)
    path = weights(tmp_path)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        dropper = PageDropper([path.parent]).start()
        assert dropper._thread is not None
        dropper._thread.join(timeout=5)
        assert not dropper._thread.is_alive()
        sum(view[::4096])
        assert resident_kb(path) >= SIZE // 1024 * 0.9  # it has stopped dropping


def test_while_loading_it_drops_only_where_it_checks_each_mapping_as_it_advises_it(
    tmp_path: Path, lookup: str
) -> None:
    """Mappings come and go while a model loads: advising a range found by an earlier scan could zero
    the memory that has replaced it. Without PROCMAP_QUERY the dropper waits until the model is loaded."""
    path = weights(tmp_path)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        dropper = PageDropper([path.parent])
        assert dropper.checks_each_mapping == (lookup == "query")
        dropper.start(loading=True)
        assert (dropper._thread is not None) == (lookup == "query")
        dropper.start()  # loaded: now it drops either way
        sum(view[::4096])
        dropper.stop()
        assert resident_kb(path) < SIZE // 1024 * 0.1
