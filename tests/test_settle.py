"""The settle and delete timers (pure; the clock is an argument)."""

from simulator.core import index_diff
from simulator.core.settle import Debouncer


def test_a_file_settles_once_size_and_mtime_hold_still_for_the_quiet_time() -> None:
    timers = Debouncer()  # times in eighths of a second: exact in binary floating point
    timers.settle("a", now=0.0, quiet_s=0.25)
    timers.settle("a", now=0.125, quiet_s=0.25)  # written again: the quiet time restarts
    assert timers.settle_due(0.25) == [] and timers.next_due() == 0.375
    assert timers.settle_due(0.375) == ["a"]
    assert timers.still_changing("a", 10, 1, now=0.375, quiet_s=0.25)  # first look
    assert timers.settle_due(0.5) == [] and timers.settle_due(0.625) == ["a"]
    assert not timers.still_changing("a", 10, 1, now=0.625, quiet_s=0.25)
    assert not timers and timers.next_due() is None


def test_a_delete_waits_and_a_put_in_between_cancels_it() -> None:
    timers = Debouncer()
    timers.delete_later("a", now=0.0, quiet_s=0.25)
    timers.delete_later("b", now=0.0, quiet_s=0.25)
    timers.forget("a")  # the editor wrote it back: an overwrite, not a delete
    assert timers.deletes_due(0.125) == []
    assert timers.deletes_due(0.25) == ["b"]
    assert not timers


def test_the_rescan_diff_finds_new_changed_and_gone_keys() -> None:
    index = {"same": (1, 1), "touched": (1, 1), "grown": (1, 1), "gone": (1, 1)}
    found = {"same": (1, 1), "touched": (1, 2), "grown": (2, 1), "new": (5, 5)}
    assert index_diff.diff(index, found) == (["touched", "grown", "new"], ["gone"])
