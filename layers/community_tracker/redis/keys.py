"""Every Redis key name and its lifetime (README, "Redis data model").

Every key of one community carries the hash tag `{c:<community_id>}`, so one script can touch all
of them atomically on a single node or in one slot of a Redis Cluster. A community split into
parts (`Community.parts`) keeps part k's keys under a tag of its own (`part_tag`: part 0 keeps the
plain tag, so a community of one part is what it always was), chosen so the N parts' slots are
evenly spaced over the cluster's slots; each part is a whole live state of its own for the people
whose key falls in it (`part_of`). Calendar keys are named by
their bucket's `key` (`2031-03-05@America/Toronto`) in the community's own calendar. Community ids are
validated (`models.COMMUNITY_ID_PATTERN`) before they get here, so they never contain braces.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from collections.abc import Sequence
from functools import lru_cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from community_tracker.timeutil import DAY_MS, MINUTE_MS, Bucket

# Calendar keys live a little longer than their bucket, so cleanup can roll a closed peak up.
BUCKET_MARGIN_MS = 2 * DAY_MS
HISTORY_MS = 35 * DAY_MS  # per-day pair history and drop counters
SERIES_HOURS = 48  # per-minute series kept (and readable) this far back
RATE_COUNTER_MARGIN_MS = 10_000  # a minute's rate counters outlive it by this (clock skew)
USER_SET_MARGIN_MS = MINUTE_MS  # the per-user set outlives the window a little
SUBSCRIPTION_TTL_MS = 2 * 3_600_000  # API Gateway closes a WebSocket after 2 hours anyway
SUBSCRIPTION_IDLE_MS = 10 * 60_000  # API Gateway's idle timeout; a ping refreshes it
AUTOMATION_MAX_NAMES = 200  # bot / AI agent names kept per class (a name comes from the request)
AUTOMATION_MAX_CLIENTS = 10_000  # clients kept per name and class within the window
ALERT_STATE_TTL_MS = 2 * DAY_MS  # a community's alert state outlives a quiet day
TAB_SHARDS = 16  # a split community's directory of tabs (which part each lives in) is this many sets
TAB_DIRECTORY_MS = DAY_MS  # a tab's entry is kept this long after it was last placed
# A part's slot falls this near the one it aims at (`part_tag`): 512 salts tried per part on average.
PART_SLOT_WINDOW = 32


def _slice_start(index: int, parts: int) -> int:
    """The first slot of the index-th of `parts` equal slices of the cluster's slots."""
    return -(-index * REDIS_CLUSTER_HASH_SLOTS // parts)


@lru_cache(maxsize=4096)
def part_tag(community_id: str, part: int, parts: int) -> str:
    """The hash tag of part `part` of a community kept in `parts` parts (README, "One community in
    N parts"). Part 0 keeps `{c:<id>}` whatever N, so a community of one part is what it always was
    and its `meta` tells any caller the number of parts. The slots are cut into N equal slices;
    part 0 sits where the hash put it, in some slice at some offset, and part k at the same offset
    in the k-th slice after that one: `{c:<id>#k.<salt>}` with the smallest salt whose slot falls
    within `PART_SLOT_WINDOW` of that aim, on the side of the slice's middle, so it stays in its
    slice. A cluster gives each shard a contiguous range of equal length (`redis-cli --cluster
    create`, ElastiCache; `CLUSTER SETSLOT` is not always allowed), whose ends are slice ends when
    the number of shards divides N: each shard then holds N / shards parts exactly, and otherwise
    the shards' parts differ by at most one. The tag depends on N: a change of N moves everyone
    not in part 0 under both (`VisitorTracker._repart`), which re-places people anyway."""
    plain = f"c:{community_id}"
    if part == 0:
        return f"{{{plain}}}"
    if not 0 < part < parts:
        raise ValueError(f"part {part} of a community in {parts} parts")
    home = key_slot(plain.encode())
    home_slice = home * parts // REDIS_CLUSTER_HASH_SLOTS
    offset = home - _slice_start(home_slice, parts)
    index = (home_slice + part) % parts
    start, end = _slice_start(index, parts), _slice_start(index + 1, parts)
    aim = min(start + offset, end - 1)
    low, high = (aim, aim + PART_SLOT_WINDOW) if aim - start < end - aim else (aim - PART_SLOT_WINDOW + 1, aim + 1)
    salt = 0
    while True:
        tag = f"{{{plain}#{part}.{salt}}}"
        if low <= key_slot(tag.encode()) < high:
            return tag
        salt += 1


class CommunityKeys:
    __slots__ = (
        "community_id",
        "conn_people",
        "conns",
        "counts",
        "divisions",
        "live",
        "pairs",
        "part",
        "present",
        "tag",
        "visitors",
    )

    def __init__(self, community_id: str, part: int = 0, parts: int = 1) -> None:
        """The keys of one part of a community kept in `parts` parts (part 0's are the same for any N)."""
        self.community_id = community_id
        self.part = part
        self.tag = part_tag(community_id, part, parts)
        self.live = f"{self.tag}:live"  # zset: person -> when they stop being live, minus the window
        self.visitors = f"{self.tag}:visitors"  # hash: person -> record (see codec.py)
        self.counts = f"{self.tag}:counts"  # hash: auth, anon, cross, indexed (ms of the last registration)
        self.divisions = f"{self.tag}:divisions"  # hash: home division ('' unknown) -> live people
        self.pairs = f"{self.tag}:pairs"  # hash: "from>to" -> live people
        self.conns = f"{self.tag}:conns"  # zset: connection -> when it stops being open, minus the window
        self.conn_people = f"{self.tag}:connp"  # hash: connection -> '1'|'0' (open|left) + person
        self.present = f"{self.tag}:present"  # zset: person -> when they stop being present, minus that window

    @property
    def state_fields(self) -> dict[str, str]:
        """KEYS[1..8] of every community script, by their contract names (`scripts.CommunityState`)."""
        return {
            "live": self.live,
            "visitors": self.visitors,
            "counts": self.counts,
            "divisions": self.divisions,
            "pairs": self.pairs,
            "conns": self.conns,
            "conn_people": self.conn_people,
            "present": self.present,
        }

    @property
    def state(self) -> list[str]:
        """KEYS[1..8] of every community script."""
        return list(self.state_fields.values())

    # The scripts derive these from the hash tag (community.lua): they belong to the state.
    @property
    def groups(self) -> str:
        return f"{self.tag}:groups"  # set: the groups (auth|community division|division) of live people

    def group(self, group: str) -> str:
        return f"{self.tag}:group:{group}"  # zset: person of that group -> their LIVE score

    def context(self, dimension: str) -> str:
        return f"{self.tag}:ctx:{dimension}"  # zset: value -> live people counted under it

    def is_live_state(self, key: str) -> bool:
        """One of the keys that live without an expiry: the live state, kept as long as the community
        has live people, and its registration (`meta`, one small hash per community)."""
        return (
            key in self.state_fields.values()
            or key in (self.groups, self.meta)
            or key.startswith((self.group(""), self.context("")))
        )

    def calendar_fields(self, buckets: Sequence[Bucket]) -> dict[str, str]:
        """The peak and unique-visitor keys of the open day, week and month, `meta` and `closed`:
        what every script that opens buckets takes after the state, by its contracts' names."""
        day, week, month = buckets
        return {
            "peak_day": self.peak(day),
            "peak_week": self.peak(week),
            "peak_month": self.peak(month),
            "unique_day": self.unique(day),
            "unique_week": self.unique(week),
            "unique_month": self.unique(month),
            "meta": self.meta,
            "closed": self.closed,
        }

    def peak(self, bucket: Bucket) -> str:
        return self.peak_key(bucket.period, bucket.key)

    def peak_key(self, period: str, bucket_key: str) -> str:
        return f"{self.tag}:peak:{period}:{bucket_key}"  # hash: count, at (ms), rolled (count written)

    def unique(self, bucket: Bucket) -> str:
        return self.unique_key(bucket.period, bucket.key)

    def unique_key(self, period: str, bucket_key: str) -> str:
        return f"{self.tag}:uv:{period}:{bucket_key}"  # HyperLogLog of visitor keys

    @property
    def meta(self) -> str:
        return f"{self.tag}:meta"  # hash: version, division, calendar, open bucket per period, dirty

    @property
    def restore(self) -> str:
        return f"{self.tag}:uv:restore"  # a checkpointed sketch, only while install.lua merges it

    @property
    def closed(self) -> str:
        return f"{self.tag}:closed"  # zset: "period|key|start|end" -> end (ms), closed, not yet rolled up

    def pair_history(self, day_key: str) -> str:
        return f"{self.tag}:pairs:day:{day_key}"  # hash: "from>to" -> page views that day

    def series(self, hour_id: str) -> str:
        return f"{self.tag}:series:{hour_id}"  # hash: epoch minute -> highest live count

    def drops(self, day_key: str) -> str:
        return f"{self.tag}:drops:{day_key}"  # hash: reason -> beacons not counted

    @property
    def events(self) -> str:
        return f"{self.tag}:events"  # zset: event id digest (event_member) -> when first seen (ms)

    def rates(self, minute: int) -> str:
        return f"{self.tag}:rates:{minute}"  # hash: client key -> its page views this minute

    def client_people(self, client_key: str) -> str:
        return f"{self.tag}:cpeople:{client_key}"  # zset: anonymous person -> when one client made them

    @property
    def subscribers(self) -> str:
        return f"{self.tag}:subscribers"  # zset: WebSocket connection id -> expiry (ms)

    def automation_names(self, kind: str) -> str:
        return f"{self.tag}:auto:{kind}"  # zset: bot / AI agent name -> last seen (ms)

    def automation_clients(self, kind: str, name: str) -> str:
        return f"{self.tag}:auto:{kind}:{name}"  # zset: hashed client -> last seen (ms)

    @property
    def alert_state(self) -> str:
        return f"{self.tag}:alert"  # hash: kind, alert_id, started_ms, last_breach_ms of the alert now


def parts_keys(community_id: str, parts: int) -> list[CommunityKeys]:
    """The keys of every part of a community kept in `parts` parts, part 0 first."""
    return [CommunityKeys(community_id, part, parts) for part in range(parts)]


def part_of(stored: str, parts: int) -> int:
    """The part of a split community a person (their stored key) lives in."""
    return zlib.crc32(stored.encode()) % parts if parts > 1 else 0


def tab_directory_key(community_id: str, connection: str) -> str:
    """Zset of a split community's tabs (stored connection keys) -> when placed (ms) * 128 + their
    part: how a tab that moves to a person of another part (a login) finds the person it leaves."""
    return f"{{c:{community_id}~{zlib.crc32(connection.encode()) % TAB_SHARDS}}}:tabs"


_HEX_DIGEST_KEY = re.compile(r"(a:|c:|c:a:)([0-9a-f]{32})")


def stored_key(key: str) -> str:
    """How Redis spells a person or connection key: a 128-bit hex digest (`a:<32 hex>`,
    `c:<32 hex>`, `c:a:<32 hex>`, as `identity.VisitorHasher` makes them) as 22 base64url
    characters. Every sorted-set member, hash field and record line that holds one then fits an
    allocation 16 bytes smaller (about 110 bytes per live person). Anything else (`u:<user id>`)
    is kept as it is."""
    match = _HEX_DIGEST_KEY.fullmatch(key)
    if match is None:
        return key
    return match[1] + base64.urlsafe_b64encode(bytes.fromhex(match[2])).rstrip(b"=").decode()


def event_member(event_id: str) -> str:
    """An event id as the dedup set keeps it: 72 bits of its SHA-256 in 12 characters (the
    smallest allocation a member can have; ids are 8 to 64 characters). Two different ids of one
    community collide with a chance of about n^2 / 2^73 for n ids in the window."""
    return base64.urlsafe_b64encode(hashlib.sha256(event_id.encode()).digest()[:9]).decode()


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
ALERTS_LOCK_KEY = "{vt:alerts}:lock"  # one alert pass at a time


def subscription_key(connection_id: str) -> str:
    """The community one WebSocket connection listens to."""
    return f"{{vt:live:conn:{connection_id}}}"
