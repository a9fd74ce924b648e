"""Calendar buckets in a community's own time zone (`timeutil.Calendar`): days of 23 and 25 hours,
ISO weeks and months in any zone, and a change of zone that waits for each open bucket to end."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from community_tracker.timeutil import (
    HOUR_MS,
    PERIODS,
    UTC_CALENDAR,
    Period,
    ZoneChange,
    calendar_from_json,
    calendar_of,
    is_time_zone,
    natural_bucket,
    to_ms,
    zone_calendar,
)

ZONES = ["UTC", "America/Montreal", "Asia/Kolkata", "Pacific/Chatham", "America/Havana", "Australia/Lord_Howe"]


def at(zone: str, *parts: int) -> int:
    """An instant given as a local wall time of `zone` (the first one, if it occurs twice)."""
    return to_ms(datetime(*parts, tzinfo=ZoneInfo(zone)))  # type: ignore[arg-type,misc]


def local_date(ms: int, zone: str) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(zone)).date()


def label(period: Period, day: date) -> str:
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("America/Montreal", date(2031, 3, 9), 23),  # clocks forward at 02:00
        ("America/Montreal", date(2031, 11, 2), 25),  # and back
        ("Pacific/Chatham", date(2031, 9, 28), 23),  # +12:45 -> +13:45 at 02:45
        ("Pacific/Chatham", date(2031, 4, 6), 25),
        ("Asia/Kolkata", date(2031, 3, 9), 24),  # +05:30, no DST
        ("Australia/Lord_Howe", date(2031, 10, 5), 23.5),  # half an hour
        ("America/Havana", date(2031, 3, 9), 23),  # midnight itself is skipped
    ],
)
def test_days_last_as_long_as_the_zone_says(zone: str, day: date, hours: float) -> None:
    found = zone_calendar(zone).bucket("day", at(zone, day.year, day.month, day.day, 12))

    assert found.id == day.isoformat()
    assert found.zone == zone
    assert (found.end_ms - found.start_ms) / HOUR_MS == hours
    assert local_date(found.start_ms, zone) == day
    assert local_date(found.start_ms - 1, zone) == day - timedelta(days=1)
    assert local_date(found.end_ms, zone) == day + timedelta(days=1)


def test_a_skipped_midnight_starts_the_day_when_the_clocks_jump() -> None:
    # Havana skips from 00:00 to 01:00 on 9 March 2031: the day starts at 05:00 UTC, local 01:00
    found = zone_calendar("America/Havana").bucket("day", at("America/Havana", 2031, 3, 9, 12))

    assert datetime.fromtimestamp(found.start_ms / 1000, tz=UTC) == datetime(2031, 3, 9, 5, tzinfo=UTC)


def test_weeks_and_months_in_a_zone() -> None:
    kolkata = zone_calendar("Asia/Kolkata")
    sunday_night = at("Asia/Kolkata", 2031, 3, 9, 23, 59)  # Sunday: still ISO week 10 there
    week = kolkata.bucket("week", sunday_night)
    month = kolkata.bucket("month", at("Asia/Kolkata", 2032, 2, 29, 23))

    assert week.id == "2031-W10"
    assert week.start_ms == at("Asia/Kolkata", 2031, 3, 3)
    assert week.end_ms == sunday_night + 60_000
    assert month.id == "2032-02"
    assert (month.start_ms, month.end_ms) == (at("Asia/Kolkata", 2032, 2, 1), at("Asia/Kolkata", 2032, 3, 1))
    # the same instant is already Monday (week 11) in Chatham and still Sunday in UTC
    assert zone_calendar("Pacific/Chatham").bucket("week", sunday_night).id == "2031-W11"
    assert UTC_CALENDAR.bucket("week", sunday_night).id == "2031-W10"


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    period=st.sampled_from(PERIODS),
    ms=st.integers(min_value=at("UTC", 2030, 1, 1), max_value=at("UTC", 2033, 1, 1)),
)
def test_buckets_tile_time_and_are_named_by_their_local_dates(zone: str, period: Period, ms: int) -> None:
    calendar = zone_calendar(zone)
    found = calendar.bucket(period, ms)

    assert found.start_ms <= ms < found.end_ms
    assert calendar.previous(found).end_ms == found.start_ms
    assert calendar.following(found).start_ms == found.end_ms
    assert found.id == label(period, local_date(found.start_ms, zone))
    assert found.id == label(period, local_date(found.end_ms - 1, zone))
    assert found.id == label(period, local_date(ms, zone))
    assert label(period, local_date(found.end_ms, zone)) != found.id
    assert found == natural_bucket(period, ms, zone)


def test_a_change_of_zone_waits_for_each_open_bucket_to_end() -> None:
    registered = at("UTC", 2031, 3, 5, 15)  # a Wednesday
    calendar = UTC_CALENDAR.with_zone("America/Toronto", registered)

    # What was open when the change was made keeps its boundaries and its zone
    for period in PERIODS:
        assert calendar.bucket(period, registered) == UTC_CALENDAR.bucket(period, registered)
    # The day: UTC to midnight UTC, then the rest of Toronto's 5 March (5 hours), then Toronto days
    stub = calendar.bucket("day", at("UTC", 2031, 3, 6, 1))
    assert (stub.id, stub.zone) == ("2031-03-05", "America/Toronto")
    assert (stub.start_ms, stub.end_ms) == (at("UTC", 2031, 3, 6), at("America/Toronto", 2031, 3, 6))
    assert stub.key != UTC_CALENDAR.bucket("day", registered).key
    toronto = zone_calendar("America/Toronto")
    assert calendar.following(stub) == toronto.bucket("day", at("America/Toronto", 2031, 3, 6, 9))
    # The week switches on the UTC Monday, the month on 1 April UTC
    assert calendar.bucket("week", at("UTC", 2031, 3, 9, 23)).zone == "UTC"
    assert calendar.bucket("week", at("UTC", 2031, 3, 10, 1)).zone == "America/Toronto"
    assert calendar.bucket("month", at("UTC", 2031, 3, 31, 23)).zone == "UTC"
    april = calendar.bucket("month", at("UTC", 2031, 4, 1, 1))
    assert (april.id, april.zone, april.start_ms) == ("2031-03", "America/Toronto", at("UTC", 2031, 4, 1))
    # Every bucket still follows the one before it
    for period in PERIODS:
        current = calendar.bucket(period, registered)
        for _ in range(40):
            following = calendar.following(current)
            assert following.start_ms == current.end_ms
            assert following.key != current.key
            current = following


def test_a_second_change_before_the_first_took_effect_replaces_it() -> None:
    first = at("UTC", 2031, 3, 5, 15)
    calendar = UTC_CALENDAR.with_zone("America/Toronto", first).with_zone("Asia/Kolkata", first + HOUR_MS)

    assert calendar.zone == "Asia/Kolkata"
    assert calendar.bucket("day", first + 2 * HOUR_MS).zone == "UTC"
    after = calendar.bucket("day", at("UTC", 2031, 3, 6, 1))
    assert (after.zone, after.start_ms) == ("Asia/Kolkata", at("UTC", 2031, 3, 6))
    # ... and one made after the first took effect follows it
    later = calendar.with_zone("UTC", at("UTC", 2031, 3, 7, 12))
    assert later.bucket("day", at("UTC", 2031, 3, 7, 12)).zone == "Asia/Kolkata"
    assert later.bucket("day", at("Asia/Kolkata", 2031, 3, 8, 1)).zone == "UTC"


def test_days_by_date_across_a_change_of_zone() -> None:
    calendar = UTC_CALENDAR.with_zone("America/Toronto", at("UTC", 2031, 3, 5, 15))

    assert [(b.zone, b.start_ms) for b in calendar.days_labelled("2031-03-05")] == [
        ("UTC", at("UTC", 2031, 3, 5)),
        ("America/Toronto", at("UTC", 2031, 3, 6)),
    ]
    assert [b.zone for b in calendar.days_labelled("2031-03-07")] == ["America/Toronto"]


def test_a_calendar_round_trips_through_json_and_is_shared() -> None:
    calendar = calendar_of((ZoneChange("UTC", 0), ZoneChange("Pacific/Chatham", 1_900_000_000_000)))

    assert calendar_from_json(calendar.to_json()) is calendar
    assert calendar.with_zone("Pacific/Chatham", 2_000_000_000_000) is calendar


@pytest.mark.parametrize("name", ["UTC", "America/Montreal", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_time_zone_names(name: str) -> None:
    assert is_time_zone(name)


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "../../etc/passwd", "/etc/localtime", "America/", "utc "])
def test_not_time_zone_names(name: str) -> None:
    assert not is_time_zone(name)
