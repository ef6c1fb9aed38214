"""Rate limits shared through Redis by every process, under one key scheme (`notifier:rl:`).

Sends: token buckets taken in chunks by every worker. One bucket per provider holds the
provider-wide rate across all workers; a campaign may add a lower cap of its own. A provider's
throttling reply puts a hold on its bucket, and every worker waits the hold out instead of
failing messages.

Requests: a fixed one-minute window per subject (an API key, a client of the public
verification page), counted by every API process; past the limit, TooManyRequests.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from notifier.errors import TooManyRequests

log = logging.getLogger(__name__)

PREFIX = "notifier:rl:"
WINDOW_SECONDS = 60

# KEYS[1] is the hold key; KEYS[2..] are buckets. ARGV[1] is how many tokens are wanted,
# then a (rate, capacity) pair per bucket. Grants what every bucket can give now (maybe 0)
# and says how long to wait before a quarter of a bucket could be granted (waiting for a
# whole bucket would let it overflow while every worker sleeps). Redis time is used so
# that every worker agrees on the clock.
_TAKE = """
local hold = redis.call('PTTL', KEYS[1])
if hold > 0 then return {0, tostring(hold / 1000)} end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local want = tonumber(ARGV[1])
local grant = want
local tokens, rates, caps = {}, {}, {}
for i = 2, #KEYS do
  local rate = tonumber(ARGV[2 * i - 2])
  local cap = tonumber(ARGV[2 * i - 1])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local have = tonumber(v[1]) or cap
  local ts = tonumber(v[2]) or now
  have = math.min(cap, have + math.max(0, now - ts) * rate)
  tokens[i], rates[i], caps[i] = have, rate, cap
  grant = math.min(grant, math.floor(have))
end
if grant < 0 then grant = 0 end
local wait = 0
for i = 2, #KEYS do
  local left = tokens[i] - grant
  redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], 60000)
  local need = math.min(want - grant, caps[i] / 4) - left
  if need > 0 then wait = math.max(wait, need / rates[i]) end
end
return {grant, tostring(wait)}
"""

# Buckets hold a tenth of a second's worth, so no one-second window sees much over the rate.
BURST_SECONDS = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """A named rate in messages per second."""

    key: str
    rate: float

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate * BURST_SECONDS)


def provider_bucket(channel: str, rate: float) -> Bucket:
    """The bucket every worker shares for one provider."""
    return Bucket(key=f"{PREFIX}{channel}", rate=rate)


def campaign_bucket(campaign_id: str, channel: str, rate: float) -> Bucket:
    """A campaign's own cap on one channel."""
    return Bucket(key=f"{PREFIX}{channel}:{campaign_id}", rate=rate)


class RateLimiter:
    """Takes tokens from one or more buckets at once, waiting when they are empty."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._take = redis.register_script(_TAKE)

    async def take(self, buckets: list[Bucket], want: int) -> int:
        """Wait until at least one token is granted; return how many (at most `want`)."""
        chunk = max(1, min(want, math.floor(min(b.capacity for b in buckets))))
        hold = f"{PREFIX}hold:{buckets[0].key}"
        args: list[float] = [chunk]
        for b in buckets:
            args += [b.rate, b.capacity]
        while True:
            granted, wait = await self._take(keys=[hold, *(b.key for b in buckets)], args=args)
            if int(granted) > 0:
                return int(granted)
            await asyncio.sleep(min(max(float(wait), 0.005), 5.0))

    async def hold(self, bucket: Bucket, seconds: float) -> None:
        """Stop every worker taking from `bucket` for a while (the provider throttled us)."""
        await self._redis.set(
            f"{PREFIX}hold:{bucket.key}", "1", px=max(1, int(seconds * 1000)), nx=True
        )


async def per_minute(redis: Redis, subject: str, *, limit: int, refusal: str) -> None:
    """Count one request of `subject` in the current one-minute window; past `limit`,
    TooManyRequests (saying `refusal`) with the seconds until the window ends. With Redis
    unreachable the request goes through: a limit protects, it must not block."""
    now = time.time()
    counter = f"{PREFIX}window:{subject}:{int(now // WINDOW_SECONDS)}"
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(counter)
            pipe.expire(counter, WINDOW_SECONDS)
            count, _ = await pipe.execute()
    except (OSError, RedisError):
        log.warning("rate limit unavailable; allowing the request")
        return
    if count > limit:
        raise TooManyRequests(
            refusal, retry_after=max(1, WINDOW_SECONDS - int(now) % WINDOW_SECONDS)
        )
