"""Humans, bots and AI agents (README, "Humans, bots and AI agents"): what a User-Agent is.

`classify(user_agent)` answers `Classification(kind, name, device)`:

- **AI agents** first, from `AI_AGENTS` below: the published tokens of the AI crawlers and
  assistants, as listed by the community-maintained ai.robots.txt project (`robots.json`) and in
  each operator's own documentation (OpenAI "Overview of OpenAI crawlers", Anthropic "Does Anthropic
  crawl data from the web", Perplexity "Perplexity crawlers", Google "Google's common crawlers",
  Apple "About Applebot", Common Crawl "CCBot", Meta "Meta web crawlers", Amazon "Amazonbot").
  A token counts only as a whole word of the User-Agent (`GPTBot/1.2`, not `MyGPTBotany`).
- **Bots**: CrawlerDetect (`crawlerdetect`, the Python port of JayBizzle/Crawler-Detect, whose
  pattern and exclusion lists are maintained by its community and cover crawlers, uptime checkers,
  headless browsers and HTTP libraries). Chosen over a hand-written regex because those lists know
  the phones whose names look like bots (CUBOT phones send `CUBOT J3`, which `bot\\b` takes for a
  crawler) and are kept current upstream; chosen over `is-crawler` (which takes `CUBOT J3` for a
  crawler) and `device-detector` (2 s to import, three native dependencies). Its one cost is speed
  on input it has not seen: about 0.6 ms for a usual User-Agent and, since one of its patterns
  backtracks, much more on long runs of letters; hence the length cap and the per-process cache.
- **Device class** of people: ua-parser (`ua-parser`, the official Python implementation of
  uap-core's regexes, pure Python with `ua-parser-builtins`), which names the OS and the device; the
  class follows from those: iPad, Kindle and the tablets it recognises are tablets; Android without
  the `Mobile` token is a tablet (Google's rule for Android User-Agents: phones send `Mobile`);
  iOS, Android, Windows Phone, KaiOS and the like are mobile; Windows, macOS, Linux and ChromeOS
  are desktop. Its first use compiles its rules (about 0.1 s), which is why `automation()` (what
  screening a beacon needs) never touches it; a page view's live context asks `device_class`
  (about 0.1 ms for a User-Agent not seen before, then cached), and the beacon function compiles
  the rules during its init (`prime_device_rules`); heartbeats and leaves never ask.

Nothing here does I/O; the live counts of automated clients live in `redis/automation.py`, fed
through `record_automated` by the beacon rules.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

from crawlerdetect import CrawlerDetect

from community_tracker.errors import LiveStateUnavailable
from community_tracker.factories import cached_factory
from community_tracker.models import Frozen

Kind = Literal["human", "bot", "ai_agent"]
AutomatedKind = Literal["bot", "ai_agent"]
DeviceClass = Literal["desktop", "mobile", "tablet", "unknown"]
AUTOMATED_KINDS: tuple[AutomatedKind, ...] = ("bot", "ai_agent")

# Only this much of a User-Agent is looked at: real ones are 100-300 characters, and the crawler
# patterns cost time in proportion to the square of a run of letters (8 KB of them: 5 s).
MAX_USER_AGENT_CHARS = 512
NAME_MAX_CHARS = 64


@dataclass(frozen=True, slots=True)
class AiAgent:
    token: str  # as the operator spells it in the User-Agent (and in robots.txt)
    operator: str


# Kept short on purpose: the agents that operators document. Add a token here when an operator
# publishes one (ai.robots.txt's robots.json lists the candidates with their sources).
AI_AGENTS: tuple[AiAgent, ...] = (
    AiAgent("GPTBot", "OpenAI"),
    AiAgent("ChatGPT-User", "OpenAI"),
    AiAgent("OAI-SearchBot", "OpenAI"),
    AiAgent("ClaudeBot", "Anthropic"),
    AiAgent("Claude-User", "Anthropic"),
    AiAgent("Claude-SearchBot", "Anthropic"),
    AiAgent("Claude-Web", "Anthropic"),
    AiAgent("anthropic-ai", "Anthropic"),
    AiAgent("PerplexityBot", "Perplexity"),
    AiAgent("Perplexity-User", "Perplexity"),
    AiAgent("Google-Extended", "Google"),
    AiAgent("Google-CloudVertexBot", "Google"),
    AiAgent("Applebot-Extended", "Apple"),
    AiAgent("Bytespider", "ByteDance"),
    AiAgent("CCBot", "Common Crawl"),
    AiAgent("meta-externalagent", "Meta"),
    AiAgent("meta-externalfetcher", "Meta"),
    AiAgent("Amazonbot", "Amazon"),
    AiAgent("cohere-ai", "Cohere"),
    AiAgent("cohere-training-data-crawler", "Cohere"),
    AiAgent("MistralAI-User", "Mistral AI"),
    AiAgent("DeepSeekBot", "DeepSeek"),
    AiAgent("DuckAssistBot", "DuckDuckGo"),
    AiAgent("YouBot", "You.com"),
    AiAgent("AI2Bot", "Allen Institute for AI"),
    AiAgent("Diffbot", "Diffbot"),
    AiAgent("Timpibot", "Timpi"),
)
_AI_BY_TOKEN = {agent.token.lower(): agent for agent in AI_AGENTS}
# Longest first, so that no token is cut short by another that begins it.
_AI_TOKENS = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(t) for t in sorted(_AI_BY_TOKEN, key=len, reverse=True)) + r")(?![\w-])",
    re.IGNORECASE,
)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")

_MOBILE_OS = frozenset({"iOS", "Windows Phone", "BlackBerry OS", "KaiOS", "Firefox OS", "Symbian OS", "Tizen"})
_DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "Debian", "FreeBSD", "OpenBSD", "NetBSD"}
)
_TABLET_DEVICES = frozenset({"iPad", "Kindle", "Generic Tablet"})


@dataclass(frozen=True, slots=True)
class Classification:
    kind: Kind
    name: str | None  # the agent's or bot's name; None for a person
    device: DeviceClass


@cached_factory
def _crawler_detect() -> CrawlerDetect:
    return CrawlerDetect()


def _name(text: str) -> str:
    """A bot's name as stored and shown: printable, short (it comes from the request)."""
    return _UNSAFE_NAME_CHARS.sub("-", text).strip(" -")[:NAME_MAX_CHARS] or "unnamed"


@lru_cache(maxsize=4096)
def _automation(user_agent: str) -> tuple[Kind, str | None]:
    if not user_agent:
        return "bot", None
    if found := _AI_TOKENS.search(user_agent):
        return "ai_agent", _AI_BY_TOKEN[found.group(1).lower()].token
    detector = _crawler_detect()
    if detector.is_crawler(user_agent):
        return "bot", _name(detector.get_matches() or "")
    return "human", None


def automation(user_agent: str) -> tuple[Kind, str | None]:
    """Whether a User-Agent is a person, a bot or an AI agent, and its name; no device class.

    What the beacon path needs: it never pays for ua-parser. An empty User-Agent is a bot."""
    return _automation(user_agent.strip()[:MAX_USER_AGENT_CHARS])


@lru_cache(maxsize=4096)
def _device(user_agent: str) -> DeviceClass:
    # Imported here: only the device class needs it, never the beacon path (its import, which
    # loads PyYAML for its rule loaders, is 20 ms of a cold start).
    import ua_parser

    device = ua_parser.parse_device(user_agent)
    family = device.family if device else ""
    if device is not None and (device.brand == "Spider" or family == "Spider"):
        return "unknown"
    if family in _TABLET_DEVICES or (device is not None and device.brand == "Generic_Android_Tablet"):
        return "tablet"
    os = ua_parser.parse_os(user_agent)
    os_family = os.family if os else ""
    if os_family == "Android":
        return "mobile" if "Mobile" in user_agent else "tablet"
    if os_family in _MOBILE_OS or family in {"iPhone", "iPod", "Generic Smartphone"}:
        return "mobile"
    if os_family in _DESKTOP_OS:
        return "desktop"
    return "unknown"


def prime_device_rules() -> None:
    """Compiles ua-parser's rules now (about 0.1 s): a function whose page views need the device
    class calls this at init, which SnapStart keeps in its snapshot, instead of in its first request."""
    _device("Mozilla/5.0 (X11; Linux x86_64)")


def device_class(user_agent: str) -> DeviceClass:
    """The device class alone (the live context of a page view): ua-parser, no crawler check."""
    text = user_agent.strip()[:MAX_USER_AGENT_CHARS]
    return _device(text) if text else "unknown"


def classify(user_agent: str) -> Classification:
    """Human, bot or AI agent, with the name of a non-human and the device class."""
    kind, name = automation(user_agent)
    return Classification(kind=kind, name=name, device=device_class(user_agent))


def automated_reason(user_agent: str) -> str | None:
    """Why a User-Agent is not counted as a person, or None for a person."""
    kind, name = automation(user_agent)
    if kind == "human":
        return None
    if name is None:
        return "no user agent"
    return f"user agent looks automated ({'AI agent' if kind == 'ai_agent' else 'bot'}: {name})"


class NamedClients(Frozen):
    name: str
    clients: int


class AutomatedClients(Frozen):
    """One class (bots or AI agents): distinct clients seen within the live window, and by name."""

    clients: int
    names: list[NamedClients]


class AutomationNow(Frozen):
    """Automated clients of one community now; never counted among its visitors."""

    community_id: str
    window_seconds: int
    bots: AutomatedClients
    ai_agents: AutomatedClients
    timestamp: str


class AutomationLog(Protocol):
    """The live counts of automated clients per community (`redis.automation.AutomationTracker`)."""

    def record(self, community_id: str, kind: AutomatedKind, name: str, client_key: str, now_ms: int) -> None: ...


def record_automated(
    log: AutomationLog | None, community_id: str, client_key: str, user_agent: str, now_ms: int
) -> None:
    """Counts a dropped beacon's client under its class and name (bots and AI agents only).

    Best effort, like the drop counter: a failed write is not worth a failed answer."""
    kind, name = automation(user_agent)
    if log is None or kind == "human":
        return
    with contextlib.suppress(LiveStateUnavailable):
        log.record(community_id, kind, name or "no user agent", client_key, now_ms)
