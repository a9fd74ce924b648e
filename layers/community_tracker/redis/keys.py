"""Every Redis key name and its lifetime (README, "Redis data model").

Every key of one community carries the hash tag `{c:<community_id>}`, so one script can touch all
of them atomically on a single node or in one slot of a Redis Cluster. Community ids are
validated (`models.COMMUNITY_ID_PATTERN`) before they get here, so they never contain braces.
"""

from __future__ import annotations

import zlib

from community_tracker.timeutil import DAY_MS, MINUTE_MS, Bucket

# Calendar keys live a little longer than their bucket, so cleanup can roll a closed peak up.
BUCKET_MARGIN_MS = 2 * DAY_MS
HISTORY_MS = 35 * DAY_MS  # per-day pair history and drop counters
SERIES_HOURS = 48  # per-minute series kept (and readable) this far back
RATE_COUNTER_SECONDS = 120  # a client's per-minute beacon counter outlives its minute
USER_SET_MARGIN_MS = MINUTE_MS  # the per-user set outlives the window a little
SUBSCRIPTION_TTL_MS = 2 * 3_600_000  # API Gateway closes a WebSocket after 2 hours anyway
SUBSCRIPTION_IDLE_MS = 10 * 60_000  # API Gateway's idle timeout; a ping refreshes it


class CommunityKeys:
    __slots__ = ("counts", "divisions", "live", "pairs", "tag", "visitors")

    def __init__(self, community_id: str) -> None:
        self.tag = f"{{c:{community_id}}}"
        self.live = f"{self.tag}:live"  # zset: visitor key -> last activity (ms)
        self.visitors = f"{self.tag}:visitors"  # hash: visitor key -> record (see codec.py)
        self.counts = f"{self.tag}:counts"  # hash: auth, anon, cross, indexed
        self.divisions = f"{self.tag}:divisions"  # hash: home division ('' unknown) -> live count
        self.pairs = f"{self.tag}:pairs"  # hash: "from>to" -> live count

    @property
    def state(self) -> list[str]:
        """KEYS[1..5] of every community script."""
        return [self.live, self.visitors, self.counts, self.divisions, self.pairs]

    @property
    def state_fields(self) -> dict[str, str]:
        """KEYS[1..5] by their contract names (`scripts.CommunityState`)."""
        return {
            "live": self.live,
            "visitors": self.visitors,
            "counts": self.counts,
            "divisions": self.divisions,
            "pairs": self.pairs,
        }

    def peak(self, bucket: Bucket) -> str:
        return self.peak_key(bucket.period, bucket.id)

    def peak_key(self, period: str, bucket_id: str) -> str:
        return f"{self.tag}:peak:{period}:{bucket_id}"  # hash: count, at (ms), rolled

    def unique(self, bucket: Bucket) -> str:
        return f"{self.tag}:uv:{bucket.period}:{bucket.id}"  # HyperLogLog of visitor keys

    def pair_history(self, day_id: str) -> str:
        return f"{self.tag}:pairs:day:{day_id}"  # hash: "from>to" -> page views that day

    def series(self, hour_id: str) -> str:
        return f"{self.tag}:series:{hour_id}"  # hash: epoch minute -> highest live count

    def drops(self, day_id: str) -> str:
        return f"{self.tag}:drops:{day_id}"  # hash: reason -> beacons not counted

    def event(self, event_id: str) -> str:
        return f"{self.tag}:event:{event_id}"  # dedup marker, SET NX EX

    def rate(self, client_key: str, minute: int) -> str:
        return f"{self.tag}:rate:{client_key}:{minute}"  # beacons of one client this minute

    @property
    def subscribers(self) -> str:
        return f"{self.tag}:subscribers"  # zset: WebSocket connection id -> expiry (ms)


def user_communities_key(user_id: str) -> str:
    """Zset: community id -> last activity (ms) of one authenticated user."""
    return f"{{u:{user_id}}}:communities"


def index_shard(community_id: str, shards: int) -> int:
    return zlib.crc32(community_id.encode()) % shards


def index_key(shard: int) -> str:
    """Zset of communities to visit in cleanup: community id -> when it is next due (ms)."""
    return f"{{vt:index:{shard}}}"


CLEANUP_CURSOR_KEY = "vt:cleanup:next-shard"
LIVE_COMMUNITIES_KEY = "{vt:live}:communities"  # zset: community with subscribers -> last subscription
PUSHER_LOCK_KEY = "{vt:live}:pusher"  # string: "holder expires_ms", the pusher's lease
LIVE_RECONNECT_KEY = "{vt:live}:reconnect"  # zset: connection that pinged without a subscription -> when
RECONNECT_KEY_MS = 10 * 60_000  # outlives the pusher's absence; refreshed by each such ping


def subscription_key(connection_id: str) -> str:
    """The community one WebSocket connection listens to."""
    return f"{{vt:live:conn:{connection_id}}}"
