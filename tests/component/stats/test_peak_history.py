"""Peak history (`GET …/peaks?history=`) in the community's own calendar, with gaps for the buckets
nobody came to."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from community_tracker.aws.stores import get_stores
from community_tracker.communities import register_community
from community_tracker.models import Community
from community_tracker.redis.cleanup_index import get_cleanup_index
from community_tracker.redis.live_state import get_tracker
from community_tracker.settings import get_settings
from community_tracker.timeutil import iso, to_ms
from infra.tokens import mint_token
from stats.handler import lambda_handler
from tests.builders import MINUTE, user, visit
from tests.helpers import api_request, call

TORONTO = "America/Toronto"


def toronto(*parts: int) -> int:
    return to_ms(datetime(*parts, tzinfo=ZoneInfo(TORONTO)))  # type: ignore[arg-type,misc]


def arrive(community: Community, who: str, now_ms: int) -> None:
    planned = visit(community.community_id, user(who, "laval"), community.division_id).model_copy(
        update={"community_version": community.version, "calendar": community.calendar()}
    )
    assert get_tracker().add_visitor(planned, now_ms).status == "counted"


def roll_up(community: Community, now_ms: int) -> None:
    """What the cleanup pass does for one community: prune, write closed buckets, mark them."""
    index = get_cleanup_index()
    [result] = index.cleanup_communities([community.community_id], now_ms)
    for peak in result.unrolled_peaks:
        get_stores().peaks.put_rollup(community.community_id, peak)
        assert index.mark_peak_rolled(community.community_id, peak)


def history(community: Community, period: str, limit: int, now_ms: int) -> list[dict[str, Any]]:
    cid = community.community_id
    answer = call(
        lambda_handler,
        api_request(
            "GET",
            f"/v1/communities/{cid}/peaks",
            template="/v1/communities/{community_id}/peaks",
            path_parameters={"community_id": cid},
            headers={"authorization": f"Bearer {mint_token(get_settings(), 'reader')}"},
            query=f"history={period}&limit={limit}",
            now_ms=now_ms,
        ),
    )
    assert answer.status == 200, answer.body
    result: list[dict[str, Any]] = answer.json()["history"]
    return result


def test_history_is_the_communitys_days_and_weeks_with_gaps(function_env: None) -> None:
    community = register_community(
        "history-qc",
        slug="history-qc",
        name="History",
        division_id="quebec",
        time_zone=TORONTO,
        directory=get_stores().communities,
        live=get_tracker(),
        now_ms=toronto(2031, 3, 1),
    )
    # Sunday 9 March, the 23-hour day: two people; Monday nobody; Tuesday one (not rolled up yet)
    arrive(community, "ann", toronto(2031, 3, 9, 12))
    arrive(community, "bea", toronto(2031, 3, 9, 12, 1))
    roll_up(community, toronto(2031, 3, 10, 0, 5))
    arrive(community, "cy", toronto(2031, 3, 11, 10))

    days = history(community, "day", 4, toronto(2031, 3, 12, 9))
    weeks = history(community, "week", 2, toronto(2031, 3, 12, 9))

    assert [(d["bucket"], d["count"], d["unique_visitors"]) for d in days] == [
        ("2031-03-11", 1, 1),  # closed since cleanup last ran: as Redis keeps it
        ("2031-03-10", 0, 0),  # nobody came
        ("2031-03-09", 2, 2),  # from DynamoDB
        ("2031-03-08", 0, 0),
    ]
    assert all(d["time_zone"] == TORONTO for d in days)
    assert [d["reached_at"] for d in days] == [
        iso(toronto(2031, 3, 11, 10)),
        None,
        iso(toronto(2031, 3, 9, 12, 1)),
        None,
    ]
    sunday = days[2]
    assert (sunday["start"], sunday["end"]) == (iso(toronto(2031, 3, 9)), iso(toronto(2031, 3, 10)))
    assert (
        to_ms(datetime.fromisoformat(sunday["end"])) - to_ms(datetime.fromisoformat(sunday["start"]))
        == 23 * 60 * MINUTE
    )
    assert [(w["bucket"], w["count"], w["start"]) for w in weeks] == [
        ("2031-W10", 2, iso(toronto(2031, 3, 3))),
        ("2031-W09", 0, iso(toronto(2031, 2, 24))),
    ]
