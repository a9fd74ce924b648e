"""The live context of a page view (README, "Live context"): the value of each dimension its person
is counted under, as the live state keeps it.

- **pages**: the URL's path only (query and fragment may carry session ids or tokens, and are
  dropped), dot segments resolved, repeated and trailing slashes dropped, percent-encoded where a
  path needs it (so a value never holds `|`, a space or a newline), at most `MAX_PAGE_CHARS`.
- **referrers**: the referrer's host only, lower case, without `www.`; none, or one that names no
  host, is `(direct)`; one from the page's own site is `''`: the person keeps the referrer they
  came with (their visit's later pages all have the site itself as referrer).
- **devices**: `agents.device_class` (ua-parser), `unknown` shown as `other`.
- **countries**: CloudFront's `CloudFront-Viewer-Country`, only when `VT_TRUST_LOCATION_HEADERS`
  is on (directly exposed, any client could set it); otherwise, or malformed, `unknown`.

Every named value starts with "(" or is a word no path (which starts with "/"), domain or country
code can be, so no page or site can pose as one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import quote, urlsplit

from community_tracker.agents import device_class
from community_tracker.models import PageContext

MAX_PAGE_CHARS = 200
MAX_CACHED_HOSTS = 1024
DIRECT = "(direct)"
UNKNOWN_PAGE = "(unknown)"
UNKNOWN_COUNTRY = "unknown"
OTHER_DEVICE = "other"
COUNTRY_HEADER = "cloudfront-viewer-country"
# RFC 3986 path characters left as they are; "%" too, so an escape is never escaped twice.
_PATH_SAFE = "/!$&'()*+,;=:@-._~%"
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_CUT_ESCAPE = re.compile(r"%[0-9a-fA-F]?$")
_HOST = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def page_path(url: str | None) -> str:
    """The page a URL names, as the pages dimension counts it (`/communities/quebec-city`)."""
    try:
        path = urlsplit(url or "").path
    except ValueError:  # an unparsable host ("http://[x"): still a page, of unknown path
        return UNKNOWN_PAGE
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    normal = quote("/" + "/".join(segments), safe=_PATH_SAFE)
    normal = _ESCAPE.sub(lambda m: m.group(0).upper(), normal)
    if len(normal) > MAX_PAGE_CHARS:
        normal = _CUT_ESCAPE.sub("", normal[:MAX_PAGE_CHARS])
    return normal


def _site(url: str | None) -> str | None:
    """A URL's host as the referrers dimension names it, or None when it names none."""
    try:
        host = urlsplit(url or "").hostname
    except ValueError:
        return None
    return _domain(host) if host else None


# Python's IDNA codec is pure Python (a few us a host, twice a page view: the page's and the
# referrer's); a community's page views come from few sites, so each host is encoded once.
@lru_cache(maxsize=MAX_CACHED_HOSTS)
def _domain(host: str) -> str | None:
    try:
        host = host.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        return None
    host = host.removeprefix("www.")
    return host if len(host) <= 253 and _HOST.match(host) else None


def referrer_domain(referrer: str | None, url: str | None) -> str:
    """`(direct)`, a domain, or '' for a referrer of the page's own site (the person keeps theirs)."""
    site = _site(referrer)
    if site is None:
        return DIRECT
    return "" if site == _site(url) else site


def viewer_country(headers: Mapping[str, str], *, trusted: bool) -> str:
    if not trusted:
        return UNKNOWN_COUNTRY
    country = headers.get(COUNTRY_HEADER, "").strip().upper()
    return country if _COUNTRY.match(country) else UNKNOWN_COUNTRY


def page_context(
    url: str | None, referrer: str | None, user_agent: str, headers: Mapping[str, str], *, trust_location: bool
) -> PageContext:
    device = device_class(user_agent)
    return PageContext(
        page=page_path(url),
        referrer=referrer_domain(referrer, url),
        device=OTHER_DEVICE if device == "unknown" else device,
        country=viewer_country(headers, trusted=trust_location),
    )
