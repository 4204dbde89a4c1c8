"""Rate limits: the ``"N/s"`` / ``"N/min"`` text users give, and a token bucket per API key."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mleval.core.errors import ValidationError

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|min|minute)\s*$")
_PERIOD_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0}


@dataclass(frozen=True)
class RateLimit:
    """``requests`` per ``period_s`` seconds; bursts up to ``requests`` (at least 1) are allowed."""

    requests: float
    period_s: float

    @property
    def per_second(self) -> float:
        return self.requests / self.period_s

    @property
    def burst(self) -> float:
        return max(1.0, self.requests)

    def __str__(self) -> str:
        count = int(self.requests) if float(self.requests).is_integer() else self.requests
        return f"{count}/{'s' if self.period_s == 1.0 else 'min'}"


def parse_rate_limit(text: str | None) -> RateLimit | None:
    """``"20/s"`` or ``"600/min"`` to a RateLimit; ``None`` means unlimited."""
    if text is None:
        return None
    match = _RATE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValidationError(
            "deployment.rate_limit_format",
            f"rate_limit must look like '20/s' or '600/min' with a positive count; got {text!r}. "
            "Pass rate_limit=None for no limit.",
        )
    return RateLimit(float(match.group(1)), _PERIOD_S[match.group(2)])


class TokenBucket:
    """A token bucket refilled at ``rate_per_s`` up to ``capacity``; time is passed in (monotonic
    seconds) so the bucket is a pure object that tests drive without sleeping."""

    def __init__(self, rate_per_s: float, capacity: float, *, now: float):
        if rate_per_s <= 0 or capacity < 1:
            raise ValueError(f"rate_per_s must be > 0 and capacity >= 1; got {rate_per_s}, {capacity}.")
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self.tokens = capacity
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate_per_s)
            self._last = now

    def take(self, now: float, tokens: float = 1.0) -> float:
        """Take ``tokens``; returns 0.0 when allowed, else the seconds to wait before retrying."""
        self._refill(now)
        if self.tokens >= tokens:
            self.tokens -= tokens
            return 0.0
        return (tokens - self.tokens) / self.rate_per_s


def retry_after_header(wait_s: float) -> str:
    """HTTP Retry-After takes whole seconds; never 0 for a refused request."""
    return str(max(1, math.ceil(wait_s)))


class KeyRateLimiter:
    """One token bucket per API key name, created on first use."""

    def __init__(self, limit: RateLimit | None):
        self.limit = limit
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, key_name: str, now: float) -> float:
        if self.limit is None:
            return 0.0
        bucket = self._buckets.get(key_name)
        if bucket is None:
            bucket = self._buckets[key_name] = TokenBucket(self.limit.per_second, self.limit.burst, now=now)
        return bucket.take(now)
