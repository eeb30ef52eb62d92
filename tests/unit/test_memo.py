"""`memo.Remembered`: answers kept per key, bounded in key length and in count."""

from __future__ import annotations

from authgate.memo import Remembered


def test_an_answer_is_computed_once_per_key_and_long_keys_are_not_kept() -> None:
    calls: list[str] = []

    def compute(key: str) -> int:
        calls.append(key)
        return len(key)

    memo = Remembered(compute, max_length=8)
    assert memo["abc"] == 3 and memo["abc"] == 3
    assert calls == ["abc"]
    long = "x" * 9  # a client chooses how long a host name is: never kept
    assert memo[long] == 9 and memo[long] == 9
    assert calls == ["abc", long, long]
    assert long not in memo and len(memo) == 1


def test_past_max_items_the_lot_is_forgotten() -> None:
    memo = Remembered(str.upper, max_length=8, max_items=3)
    for key in ("a", "b", "c"):
        assert memo[key] == key.upper()
    assert len(memo) == 3
    assert memo["d"] == "D"
    assert dict(memo) == {"d": "D"}
