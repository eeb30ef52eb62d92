"""The in-process limiter (`RateLimiter`) and the weighted-window arithmetic the SQL one uses."""

from __future__ import annotations

import pytest

from authgate.oauth.ratelimit import RateLimiter, address_key, weighted_wait


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_in_process_limiter_refuses_over_the_limit_and_slides() -> None:
    clock = Clock()
    rl = RateLimiter(2, 60, clock=clock)
    assert [await rl.hit("k") for _ in range(3)] == [True, True, False]
    assert await rl.retry_after("k") == 60  # the first hit leaves the window 60 s after it
    clock.now += 60
    assert await rl.retry_after("k") == 0
    assert await rl.hit("k")
    await rl.reset("k")
    assert [await rl.hit("k") for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    ("previous", "current", "elapsed", "wait"),
    [
        (0, 4, 30, 0),  # under the limit
        (0, 5, 30, 30),  # full: the rest of this window (then 5 * (1 - e/60) < 5 at once)
        (0, 10, 30, 60),  # twice over: half of the next window too
        (5, 0, 0, 1),  # the previous window weighs fully at its end
        (10, 0, 30, 1),  # half of it half-way: 5 < 5 only just after
        (10, 0, 31, 0),
        (10, 2, 30, 12),  # 2 + 10 * (1 - e/60) < 5 once e > 42
    ],
)
def test_weighted_wait(previous: int, current: int, elapsed: float, wait: int) -> None:
    assert weighted_wait(5, 60, previous, current, elapsed) == wait


@pytest.mark.parametrize(
    "address, key",
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:eeee:dddd:cccc", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("-", "-"),
    ],
)
def test_address_key_counts_ipv4_whole_and_ipv6_by_64(address: str, key: str) -> None:
    assert address_key(address) == key
