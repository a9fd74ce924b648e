"""What a page view's live context counts (README, "Live context"): paths, referrer domains,
device classes and countries, from what a browser sends."""

from __future__ import annotations

import pytest

from community_tracker import context as live_context
from community_tracker.context import MAX_PAGE_CHARS, page_context, page_path, referrer_domain, viewer_country

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://platform.example/communities/quebec-city/?session=abc#top", "/communities/quebec-city"),
        ("https://platform.example", "/"),
        ("https://platform.example/?q=1", "/"),
        ("https://platform.example//a///b/./c/../d/", "/a/b/d"),
        ("https://platform.example/../../etc", "/etc"),
        ("https://platform.example/a|b c\u00e9", "/a%7Cb%20c%C3%A9"),
        ("https://platform.example/a%7cb", "/a%7Cb"),
        ("/relative/path?x", "/relative/path"),
        ("http://[broken/", "(unknown)"),
    ],
)
def test_a_page_is_its_path_normalised(url: str, path: str) -> None:
    assert page_path(url) == path


def test_a_long_path_is_cut_without_a_broken_escape() -> None:
    cut = page_path("https://platform.example/" + "a" * (MAX_PAGE_CHARS - 3) + "\u00e9\u00e9")

    assert len(cut) <= MAX_PAGE_CHARS
    assert cut.startswith("/aaa")
    assert not cut.rstrip("0123456789ABCDEF").endswith("%")


@pytest.mark.parametrize(
    ("referrer", "domain"),
    [
        (None, "(direct)"),
        ("", "(direct)"),
        ("https://www.Google.com/search?q=quebec", "google.com"),
        ("https://news.example:8443/story/1", "news.example"),
        ("android-app://com.google.android.gm/", "com.google.android.gm"),
        ("https://platform.example/another/page", ""),  # the site itself: the person keeps theirs
        ("https://www.platform.example/", ""),
        ("https://b\u00fccher.example/", "xn--bcher-kva.example"),
        ("not a url", "(direct)"),
        ("https://(evil)/", "(direct)"),
    ],
)
def test_a_referrer_is_its_domain(referrer: str | None, domain: str) -> None:
    assert referrer_domain(referrer, "https://platform.example/communities/quebec-city/") == domain


def test_the_host_cache_is_bounded_and_answers_as_the_first_time() -> None:
    # Given more distinct referrer hosts than the cache keeps
    live_context._domain.cache_clear()
    hosts = [f"site-{i}.example" for i in range(live_context.MAX_CACHED_HOSTS + 50)]

    # When each is seen twice, and an unencodable one too
    first = [referrer_domain(f"https://{host}/", "https://platform.example/") for host in hosts]
    again = [referrer_domain(f"https://{host}/", "https://platform.example/") for host in hosts]

    # Then the cache stays at its bound, and every answer is what an uncached encoding gives
    assert live_context._domain.cache_info().currsize <= live_context.MAX_CACHED_HOSTS
    assert first == again == hosts
    assert referrer_domain("https://" + "a" * 64 + ".example/", None) == "(direct)"  # a label over 63: no IDNA
    assert referrer_domain("https://" + "a" * 64 + ".example/", None) == "(direct)"


def test_a_country_only_from_trusted_location_headers() -> None:
    headers = {"cloudfront-viewer-country": "CA"}

    assert viewer_country(headers, trusted=True) == "CA"
    assert viewer_country(headers, trusted=False) == "unknown"
    assert viewer_country({"cloudfront-viewer-country": "Canada"}, trusted=True) == "unknown"
    assert viewer_country({}, trusted=True) == "unknown"


@pytest.mark.parametrize(
    ("user_agent", "device"), [(IPHONE, "mobile"), (IPAD, "tablet"), (WINDOWS, "desktop"), ("", "other")]
)
def test_a_device_class_from_the_user_agent(user_agent: str, device: str) -> None:
    context = page_context("https://p.example/a", None, user_agent, {}, trust_location=False)

    assert context.model_dump() == {"page": "/a", "referrer": "(direct)", "device": device, "country": "unknown"}
