"""Load-test a deployed stage with locust: browsers sending beacons, and dashboards reading stats.

locust is an optional extra (`.venv/bin/pip install -e '.[load]'`); the tests do not need it.

    export VT_LOCUST_COMMUNITIES=quebec-city,laval-centre        # registered community ids
    export VT_LOCUST_TOKENS="$TOKEN_1,$TOKEN_2,$TOKEN_3"          # tokens of the authenticated share
    export VT_LOCUST_STATS_TOKEN="$READER_TOKEN"                 # for the stats readers
    locust -f locustfile.py --host https://abc123.execute-api.ca-central-1.amazonaws.com --users 200 --spawn-rate 20

Add `--headless --run-time 10m` to run without the web UI. Tokens are JWTs the stage accepts (its
`VT_JWT_SECRET`, issuer and audience; or from its identity provider for RS256); each simulated
authenticated visitor uses one of them, so N tokens are at most N distinct live users. With no
token every visitor is anonymous, and the stats readers go without one (answered 401 unless the
stage has `VT_PUBLIC_COUNTS=true`).

Settings (environment):
  VT_LOCUST_COMMUNITIES     comma-separated community ids (default: quebec-city)
  VT_LOCUST_TOKENS          comma-separated JWTs for authenticated visitors (default: none)
  VT_LOCUST_AUTH_SHARE      share of visitors that are authenticated, 0..1 (default: 0.2)
  VT_LOCUST_STATS_TOKEN     JWT for the stats readers (default: the first of VT_LOCUST_TOKENS)
  VT_LOCUST_HEARTBEAT       seconds between a visitor's beacons (default: 30, like beacon.js)

Mind the stage's per-client rate limit (`VT_RATE_LIMIT_PER_MINUTE`, 600 beacons per client and
community per minute by default): every simulated visitor shares this machine's IP and sends
about two beacons a minute, so above about 250 visitors per community, answers turn into 429. Raise the
limit on a test stage, or run locust workers on several machines (`--master` / `--worker`).
"""

from __future__ import annotations

import json
import os
import random
import uuid

from locust import HttpUser, between, task

COMMUNITIES = [c.strip() for c in os.environ.get("VT_LOCUST_COMMUNITIES", "quebec-city").split(",") if c.strip()]
TOKENS = [t.strip() for t in os.environ.get("VT_LOCUST_TOKENS", "").split(",") if t.strip()]
AUTH_SHARE = float(os.environ.get("VT_LOCUST_AUTH_SHARE", "0.2"))
STATS_TOKEN = os.environ.get("VT_LOCUST_STATS_TOKEN") or (TOKENS[0] if TOKENS else "")
HEARTBEAT_SECONDS = float(os.environ.get("VT_LOCUST_HEARTBEAT", "30"))
# A browser's User-Agent: the beacon function answers HTTP libraries (python-requests, locust's
# default) 202 as bots and counts nothing.
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
BEACON_HEADERS = {"Content-Type": "text/plain;charset=UTF-8", "User-Agent": BROWSER_UA}
REFERRERS = [None, "https://www.google.com/", "https://platform.example/", "https://platform.example/communities/"]


def random_hex(length: int = 24) -> str:
    return uuid.uuid4().hex[:length]


class BrowserVisitor(HttpUser):
    """One browser tab on a community page, doing what web/beacon.js does: a page view on load,
    a heartbeat every VT_LOCUST_HEARTBEAT seconds (a page view again when the answer says the
    visitor went stale), now and then another page, and a leave on pagehide."""

    weight = 20
    wait_time = between(HEARTBEAT_SECONDS * 0.8, HEARTBEAT_SECONDS * 1.2)

    def on_start(self) -> None:
        self.community = random.choice(COMMUNITIES)
        self.visitor_id = f"tab-{random_hex()}"
        self.token = random.choice(TOKENS) if TOKENS and random.random() < AUTH_SHARE else None
        self.page_view()

    def on_stop(self) -> None:
        self.leave()

    def send(self, kind: str, extra: dict[str, str | None] | None = None) -> dict[str, object] | None:
        """A beacon as sendBeacon sends it: text/plain JSON, the token in the body."""
        body: dict[str, str | None] = {"event_id": f"evt-{random_hex()}", "visitor_id": self.visitor_id}
        if self.token:
            body["token"] = self.token
        body.update(extra or {})
        path = f"/v1/communities/{self.community}/{kind}"
        with self.client.post(
            path,
            data=json.dumps({key: value for key, value in body.items() if value is not None}),
            headers=BEACON_HEADERS,
            name=f"/v1/communities/[id]/{kind}",
            catch_response=True,
        ) as response:
            if response.status_code == 202 and response.headers.get("X-Beacon-Dropped") == "bot":
                response.failure("dropped as a bot: check the User-Agent")
                return None
            if response.status_code not in (200, 202):
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return None
            response.success()
            answer: dict[str, object] = response.json()
            return answer

    def page_view(self) -> None:
        url = f"https://platform.example/communities/{self.community}/"
        self.send("visits", {"url": url, "referrer": random.choice(REFERRERS)})

    @task(8)
    def heartbeat(self) -> None:
        answer = self.send("heartbeat")
        if answer is not None and answer.get("active") is False:
            self.page_view()

    @task(2)
    def another_page(self) -> None:
        self.page_view()

    @task(1)
    def leave_and_come_back(self) -> None:
        """pagehide, then a new tab (maybe on another community) a moment later."""
        self.leave()
        self.community = random.choice(COMMUNITIES)
        self.visitor_id = f"tab-{random_hex()}"
        self.page_view()

    def leave(self) -> None:
        self.send("leave")


class StatsReader(HttpUser):
    """A dashboard polling like web/stats.html without its WebSocket: the summary every 5 s
    (answered 304 while nothing changed), and now and then the other live views."""

    weight = 1
    wait_time = between(4, 6)

    def on_start(self) -> None:
        self.etags: dict[str, str] = {}
        self.headers = {"User-Agent": BROWSER_UA}
        if STATS_TOKEN:
            self.headers["Authorization"] = f"Bearer {STATS_TOKEN}"

    @task(6)
    def summary(self) -> None:
        community = random.choice(COMMUNITIES)
        headers = dict(self.headers)
        if community in self.etags:
            headers["If-None-Match"] = self.etags[community]
        with self.client.get(
            f"/v1/communities/{community}/summary?minutes=60",
            headers=headers,
            name="/v1/communities/[id]/summary",
            catch_response=True,
        ) as response:
            if response.status_code in (200, 304):
                if "ETag" in response.headers:
                    self.etags[community] = response.headers["ETag"]
                response.success()
            else:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(1)
    def live_views(self) -> None:
        community = random.choice(COMMUNITIES)
        for view in ("stats", "divisions", "cross-division?limit=5", "peaks"):
            self.client.get(
                f"/v1/communities/{community}/{view}",
                headers=self.headers,
                name=f"/v1/communities/[id]/{view.split('?')[0]}",
            )
