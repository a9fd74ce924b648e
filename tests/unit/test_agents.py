"""Humans, bots and AI agents from real User-Agent strings (`community_tracker.agents`), and the
beacon rule that drops the automated ones (`beacons.bot_reason`)."""

from __future__ import annotations

import time

import pytest

from community_tracker.agents import (
    AI_AGENTS,
    MAX_USER_AGENT_CHARS,
    AutomatedKind,
    Classification,
    automated_reason,
    classify,
    record_automated,
)
from community_tracker.beacons import bot_reason
from community_tracker.errors import LiveStateUnavailable

DESKTOPS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 "
    "Edg/131.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
]
PHONES = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 "
    "Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
    "[FBAN/FBIOS;FBAV/440.0.0.33.116;FBBV/541335445;FBDV/iPhone15,3;FBMD/iPhone;FBSN/iOS;FBSV/17.1;FBSS/3;FBID/phone]",
]
# Phones whose model names look like bots to a naive pattern (`bot\b`): CUBOT makes them.
PHONES_NAMED_LIKE_BOTS = [
    "Mozilla/5.0 (Linux; Android 9; CUBOT J3) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/74.0.3729.136 Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (Linux; Android 11; CUBOT KINGKONG 5 Pro) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/100.0.4896.127 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; CUBOT NOTE 7 Build/QP1A.190711.020; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/90.0.4430.210 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; CUBOT_X50) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/108.0.0.0 Mobile "
    "Safari/537.36",
]
TABLETS = [
    "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/120.4.1 like "
    "Chrome/120.0.6099.230 Safari/537.36",
    "Mozilla/5.0 (Android 14; Tablet; rv:133.0) Gecko/133.0 Firefox/133.0",
]
SEARCH_CRAWLERS = {
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)": "Googlebot",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)": "bingbot",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)": "Yandex",  # the part CrawlerDetect matched
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)": "Applebot",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)": "DuckDuckBot",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)": "facebookexternalhit",
}
HEADLESS_AND_LIBRARIES = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36 Lighthouse",
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
    "python-requests/2.32.3",
    "Python-urllib/3.11",
    "python-httpx/0.28.1",
    "aiohttp/3.11.10",
    "curl/8.5.0",
    "Wget/1.21.4",
    "Go-http-client/1.1",
    "okhttp/4.12.0",
    "Java/17.0.9",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "axios/1.7.9",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "Scrapy/2.11.2 (+https://scrapy.org)",
]
AI_AGENT_USER_AGENTS = {
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)": "GPTBot",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot": (
        "ChatGPT-User"
    ),
    "Mozilla/5.0 (compatible; OAI-SearchBot/1.0; +https://openai.com/searchbot)": "OAI-SearchBot",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)": (
        "ClaudeBot"
    ),
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Claude-User/1.0; +Claude-User@anthropic.com)": (
        "Claude-User"
    ),
    "anthropic-ai": "anthropic-ai",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; PerplexityBot/1.0; "
    "+https://perplexity.ai/perplexitybot)": "PerplexityBot",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Perplexity-User/1.0; "
    "+https://perplexity.ai/perplexity-user)": "Perplexity-User",
    "Mozilla/5.0 (compatible; Google-Extended)": "Google-Extended",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Safari/605.1.15 (Applebot-Extended/0.1; +http://www.apple.com/go/applebot)": "Applebot-Extended",
    "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; "
    "Bytespider; spider-feedback@bytedance.com)": "Bytespider",
    "CCBot/2.0 (https://commoncrawl.org/faq/)": "CCBot",
    "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)": "meta-externalagent",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
    "Safari/605.1.15 (Amazonbot/0.1; +https://developer.amazon.com/support/amazonbot)": "Amazonbot",
    "cohere-ai": "cohere-ai",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; MistralAI-User/1.0; "
    "+https://docs.mistral.ai/robots)": "MistralAI-User",
}


@pytest.mark.parametrize("agent", DESKTOPS)
def test_desktop_browsers_are_people(agent: str) -> None:
    assert classify(agent) == Classification(kind="human", name=None, device="desktop")
    assert bot_reason(agent) is None


@pytest.mark.parametrize("agent", PHONES)
def test_phones_are_people_on_mobile(agent: str) -> None:
    assert classify(agent) == Classification(kind="human", name=None, device="mobile")


@pytest.mark.parametrize("agent", PHONES_NAMED_LIKE_BOTS)
def test_phones_named_like_bots_are_people(agent: str) -> None:
    # The defect: `bot\b` took every CUBOT phone for a crawler and dropped its visits.
    assert bot_reason(agent) is None
    assert classify(agent) == Classification(kind="human", name=None, device="mobile")


@pytest.mark.parametrize("agent", TABLETS)
def test_tablets(agent: str) -> None:
    assert classify(agent) == Classification(kind="human", name=None, device="tablet")


@pytest.mark.parametrize(("agent", "name"), SEARCH_CRAWLERS.items())
def test_search_crawlers_are_bots_by_name(agent: str, name: str) -> None:
    assert classify(agent).kind == "bot"
    assert classify(agent).name == name
    assert bot_reason(agent) == f"user agent looks automated (bot: {name})"


@pytest.mark.parametrize("agent", HEADLESS_AND_LIBRARIES)
def test_headless_browsers_and_http_libraries_are_bots(agent: str) -> None:
    classification = classify(agent)
    assert classification.kind == "bot"
    assert classification.name
    assert bot_reason(agent) is not None


@pytest.mark.parametrize(("agent", "name"), AI_AGENT_USER_AGENTS.items())
def test_ai_agents_are_named_as_such(agent: str, name: str) -> None:
    classification = classify(agent)
    assert (classification.kind, classification.name) == ("ai_agent", name)
    assert bot_reason(agent) == f"user agent looks automated (AI agent: {name})"


def test_every_listed_ai_agent_is_recognised_by_its_token() -> None:
    for agent in AI_AGENTS:
        assert classify(f"Mozilla/5.0 (compatible; {agent.token}/1.0; +https://example.com/bot)").name == agent.token
        assert classify(agent.token.upper()).name == agent.token


def test_an_ai_token_counts_only_as_a_whole_word() -> None:
    # Inside another word it is not the agent (and this is no crawler either).
    assert classify("Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 NotGPTBotany/1.0").kind != "ai_agent"


def test_no_user_agent_is_a_bot() -> None:
    assert classify("") == Classification(kind="bot", name=None, device="unknown")
    assert bot_reason("   ") == automated_reason("") == "no user agent"


def test_a_huge_user_agent_costs_no_more_than_its_first_characters() -> None:
    # The crawler patterns backtrack on long runs of letters: only the first 512 characters count.
    padded = "Mozilla/5.0 " + "a" * 20_000
    started = time.perf_counter()
    classification = classify(padded)
    assert time.perf_counter() - started < 2.0
    assert classification == classify(padded[:MAX_USER_AGENT_CHARS])


class RecordingLog:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, AutomatedKind, str, str, int]] = []
        self.fail = fail

    def record(self, community_id: str, kind: AutomatedKind, name: str, client_key: str, now_ms: int) -> None:
        if self.fail:
            raise LiveStateUnavailable("down")
        self.calls.append((community_id, kind, name, client_key, now_ms))


def test_record_automated_records_bots_and_agents_never_people() -> None:
    log = RecordingLog()

    record_automated(log, "c1", "k1", "Mozilla/5.0 (compatible; GPTBot/1.2; +https://openai.com/gptbot)", 1)
    record_automated(log, "c1", "k2", "curl/8.5.0", 2)
    record_automated(log, "c1", "k3", "", 3)
    record_automated(log, "c1", "k4", DESKTOPS[0], 4)

    assert log.calls == [
        ("c1", "ai_agent", "GPTBot", "k1", 1),
        ("c1", "bot", "curl", "k2", 2),
        ("c1", "bot", "no user agent", "k3", 3),
    ]


def test_record_automated_is_best_effort() -> None:
    record_automated(RecordingLog(fail=True), "c1", "k1", "curl/8.5.0", 1)  # no exception
    record_automated(None, "c1", "k1", "curl/8.5.0", 1)
