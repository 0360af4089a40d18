"""The history checker itself: it must reject the failures the suite relies on it to catch."""

from __future__ import annotations

import pytest

from support import check_history, keyed_messages


def good_history(sent, partitions=3):
    """A correct history: each key on partition hash(key) % partitions, offsets consecutive."""
    by_partition = {p: [] for p in range(partitions)}
    for key, value in sent:
        by_partition[int(key.split("-")[1]) % partitions].append((key, value))
    return [(p, offset, key, value) for p, rows in by_partition.items()
            for offset, (key, value) in enumerate(rows)]


def test_check_history_accepts_a_correct_history():
    """A history with every message once, consecutive offsets and per-key order passes."""
    sent = keyed_messages(300, keys=10)
    offsets = check_history(sent, good_history(sent), 3)
    assert sorted(offsets) == [0, 1, 2]
    assert sum(len(o) for o in offsets.values()) == 300


@pytest.mark.parametrize("damage", ["lose", "duplicate", "reorder", "offset-gap", "key-moves"])
def test_check_history_rejects_damage(damage):
    """Loss, duplication, per-key reordering, offset gaps and keys changing partition all fail."""
    sent = keyed_messages(300, keys=10)
    history = good_history(sent)
    if damage == "lose":
        del history[5]
    elif damage == "duplicate":
        history.append(history[5])
    elif damage == "reorder":
        first, second = [i for i, row in enumerate(history) if row[2] == "key-0"][:2]
        (p1, o1, k1, v1), (p2, o2, k2, v2) = history[first], history[second]
        history[first], history[second] = (p1, o1, k2, v2), (p2, o2, k1, v1)
    elif damage == "offset-gap":
        partition, offset, key, value = history[-1]
        history[-1] = (partition, offset + 1, key, value)
    elif damage == "key-moves":
        partition, offset, key, value = history[-1]
        history[-1] = ((partition + 1) % 3, offset, key, value)
    with pytest.raises(AssertionError):
        check_history(sent, history, 3)
