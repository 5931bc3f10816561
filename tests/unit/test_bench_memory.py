"""bench's peak RSS never trails the resident figure it reports beside it."""

from ovchat.bench import memory_mb


def test_the_peak_covers_memory_just_touched_and_freed() -> None:
    before, _ = memory_mb()
    block = bytearray(64 * 1024 * 1024)  # zero-filled: every page is touched
    resident, peak = memory_mb()
    assert resident - before > 60, (before, resident)
    assert peak >= resident  # one read: VmHWM is max(high-water mark, VmRSS)
    del block
    after, peak_after = memory_mb()
    assert after < resident - 30
    assert peak_after >= after and peak_after - before > 60  # the freed block still counts
