"""bench's peak RSS never trails the resident figure it reports beside it."""

import mmap

from ovchat.model.bench import memory_mb

# Twice what the assertions need: other threads of the test process (a model unloaded by an earlier
# test) may free a few MB while it measures (a fresh-clone run saw 58 MB grow for 64 touched).
SIZE = 128 * 1024 * 1024


def test_the_peak_covers_memory_just_touched_and_freed() -> None:
    # An anonymous mapping of its own, not the heap: the allocator in use (OpenVINO's TBB one, once a
    # model was loaded in this process) may keep freed heap memory resident.
    before, _ = memory_mb()
    block = mmap.mmap(-1, SIZE)
    for offset in range(0, SIZE, mmap.PAGESIZE):  # every page touched
        block[offset] = 1
    resident, peak = memory_mb()
    assert resident - before > 60, (before, resident)
    assert peak >= resident  # one read: VmHWM is max(high-water mark, VmRSS)
    block.close()  # unmapped: the pages leave RSS at once
    after, peak_after = memory_mb()
    assert after < resident - 30, (resident, after)
    assert peak_after >= after and peak_after - before > 60  # the freed block still counts
