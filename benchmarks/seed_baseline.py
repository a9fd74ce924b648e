"""The seed's original Redis design, re-implemented for the benchmarks only (never imported by the
product): the baseline the tracker's ingest is compared with.

What the seed did for each page view, one command and one round trip at a time, no pipeline, no
script (this is what it was, so it is what it is measured as):
- the visitor's record: JSON in a hash (HGET, then HSET);
- membership in one of two sets, authenticated or anonymous (SADD);
- a count per home division (HINCRBY) and per cross-division pair (ZINCRBY), for a new visitor;
- an activity key per visitor with the window as its TTL (SETEX);
- for a user, the set of communities they are in (SADD);
- the live count from the two sets (SCARD twice);
- peaks read-modify-write: GET the day, week and month peak, SET each one that the count exceeds.
That is 13 to 15 round trips per page view, fewer once peaks stop rising.
"""

from __future__ import annotations

import json
from typing import Any

from redis import Redis

from community_tracker.models import Visit
from community_tracker.timeutil import PERIODS, bucket, iso

_PEAK_TTL_SECONDS = {"day": 2 * 86_400, "week": 9 * 86_400, "month": 33 * 86_400}


class SeedVisitorTracker:
    def __init__(self, client: Redis, *, window_seconds: int = 300, prefix: str = "seed") -> None:
        self._client = client
        self._window_seconds = window_seconds
        self._prefix = prefix

    def add_visitor(self, visit: Visit, now_ms: int) -> dict[str, Any]:
        redis = self._client
        visitor = visit.visitor
        base = f"{self._prefix}:community:{visit.community_id}"
        timestamp = iso(now_ms)

        raw = redis.hget(f"{base}:visitors", visitor.key)
        is_new = raw is None
        record: dict[str, Any] = (
            json.loads(raw)
            if raw is not None
            else {
                "user_id": visitor.user_id,
                "is_authenticated": visitor.is_authenticated,
                "division_id": visitor.division_id,
                "joined_at": timestamp,
                "pages_viewed": 0,
            }
        )
        record["pages_viewed"] += 1
        record["last_activity"] = timestamp
        redis.hset(f"{base}:visitors", visitor.key, json.dumps(record))
        redis.sadd(f"{base}:{'authenticated' if visitor.is_authenticated else 'anonymous'}", visitor.key)

        division = visitor.division_id
        community_division = visit.community_division
        is_cross = bool(division and community_division and division != community_division)
        if is_new:
            redis.hincrby(f"{base}:divisions", division or "unknown", 1)
            if is_cross:
                redis.zincrby(f"{base}:cross_division", 1, f"{division}->{community_division}")
        redis.setex(f"{base}:activity:{visitor.key}", self._window_seconds, timestamp)
        if visitor.user_id is not None:
            redis.sadd(f"{self._prefix}:user:{visitor.user_id}:communities", visit.community_id)

        count = int(redis.scard(f"{base}:authenticated")) + int(redis.scard(f"{base}:anonymous"))
        for period in PERIODS:
            key = f"{base}:peak:{period}:{bucket(period, now_ms).id}"
            peak = redis.get(key)
            if peak is None or count > int(peak):
                redis.set(key, count, ex=_PEAK_TTL_SECONDS[period])

        return {
            "current_count": count,
            "is_cross_division": is_cross,
            "visitor_division": division,
            "community_division": community_division,
            "timestamp": timestamp,
        }
