"""`vt`: the operator's command line (settings come from the same VT_* variables as the functions).

vt token --sub alice --division montreal [--admin]   a development token (HS256, local secret)
vt import-communities communities.csv                register many communities (CSV or JSON)
vt cleanup                                           run one cleanup pass now
vt openapi [--check]                                 write (or check) the shipped OpenAPI document

While `make run` is up, `vt import-communities` and `vt cleanup` use its Redis and its table when
none of VT_REDIS_URL, VT_USE_LOCALSTACK, LOCALSTACK_HOST, AWS_ENDPOINT_URL is set (it writes them
to .run/local-run-<port>.json; VT_PORT picks one of several local runs).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from community_tracker.errors import DirectoryUnavailable, HistoryUnavailable, LiveStateUnavailable
from community_tracker.factories import reset_factories
from community_tracker.models import Community
from community_tracker.settings import get_settings
from infra.run_state import LocalRunState, chosen_local_run, state_path

WHAT_TO_SET = (
    "While `make run` is up, vt finds it by itself (VT_PORT picks one of several). Otherwise set\n"
    "VT_REDIS_URL, and VT_USE_LOCALSTACK=true with LOCALSTACK_HOST=host:port for an emulator,\n"
    "or AWS credentials and VT_TABLE_NAME for a deployed stack."
)


def read_communities(path: Path) -> Iterator[Community]:
    """Communities from a CSV file (header: community_id,slug,name,division_id, optionally
    time_zone) or a JSON list."""
    text = path.read_text(encoding="utf-8")
    rows = json.loads(text) if path.suffix.lower() == ".json" else list(csv.DictReader(text.splitlines()))
    for number, row in enumerate(rows, start=1):
        try:
            yield Community.model_validate({**row, "division_id": row.get("division_id") or None})
        except ValidationError as error:
            raise SystemExit(f"{path}: entry {number} is not a valid community: {error}") from error


def _token(args: argparse.Namespace) -> int:
    from infra.tokens import mint_token

    roles = ["admin"] if args.admin else []
    print(mint_token(get_settings(), args.sub, division_id=args.division, roles=roles, ttl_seconds=args.ttl))
    return 0


def _import_communities(args: argparse.Namespace) -> int:
    from community_tracker.aws.stores import get_stores
    from community_tracker.communities import register_community
    from community_tracker.redis.live_state import get_tracker
    from community_tracker.timeutil import system_clock

    communities = list(read_communities(Path(args.file)))
    store = get_stores().communities
    for community in communities:
        # As the admin route registers one: a new version, installed in Redis (a division move
        # moves the live visitors); a row without a time zone keeps the one registered.
        register_community(
            community.community_id,
            slug=community.slug,
            name=community.name,
            division_id=community.division_id,
            time_zone=community.time_zone if "time_zone" in community.model_fields_set else None,
            directory=store,
            live=get_tracker(),
            now_ms=system_clock(),
        )
    print(f"registered {len(communities)} communities")
    return 0


def _cleanup(_args: argparse.Namespace) -> int:
    from cleanup.handler import run_pass_now

    print(json.dumps(run_pass_now().model_dump()))
    return 0


def find_local_run(environ: Mapping[str, str]) -> LocalRunState | None:
    """The running `make run` to talk to, when `environ` names no endpoint (infra/run_state.py)."""
    return chosen_local_run(environ)


def _use_the_local_run() -> None:
    run = find_local_run(os.environ)
    if run is None:
        return
    os.environ.update(run.environment())
    # Fake credentials are all the emulator needs; real ones in this shell are left as they are.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    reset_factories()
    print(f"vt: using the local run on port {run.port} ({state_path(run.port)})", file=sys.stderr)


def redacted(url: str) -> str:
    """A URL fit for a message: its password, if any, replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _openapi(args: argparse.Namespace) -> int:
    from infra.openapi import SPEC_PATH, spec_is_current, write_spec

    if args.check:
        if spec_is_current():
            print(f"{SPEC_PATH} is current")
            return 0
        print(f"{SPEC_PATH} is out of date: run `make openapi`", file=sys.stderr)
        return 1
    print(f"wrote {write_spec()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vt", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    token = commands.add_parser("token", help="print a development token")
    token.add_argument("--sub", required=True, help="the user id")
    token.add_argument("--division", help="the user's home division")
    token.add_argument("--admin", action="store_true", help="grant the admin role")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(run=_token)

    importer = commands.add_parser("import-communities", help="register communities from CSV or JSON")
    importer.add_argument("file")
    importer.set_defaults(run=_import_communities, reaches_services=True)

    cleanup = commands.add_parser("cleanup", help="run one cleanup pass")
    cleanup.set_defaults(run=_cleanup, reaches_services=True)

    openapi = commands.add_parser("openapi", help="write the OpenAPI document shipped in the layer")
    openapi.add_argument("--check", action="store_true", help="only check that it is current")
    openapi.set_defaults(run=_openapi)

    args = parser.parse_args(argv)
    if not getattr(args, "reaches_services", False):
        code: int = args.run(args)
        return code
    _use_the_local_run()
    # What cannot be reached is said in one message with what to set, never as a traceback.
    try:
        code = args.run(args)
    except (LiveStateUnavailable, RedisConnectionError, RedisTimeoutError) as error:
        where = redacted(get_settings().redis_url)
        cause = error.__cause__ or error
        print(f"vt {args.command}: cannot reach Redis at {where} ({cause}).\n{WHAT_TO_SET}", file=sys.stderr)
        return 1
    except (HistoryUnavailable, DirectoryUnavailable, BotoCoreError, ClientError) as error:
        table = get_settings().table_name
        print(
            f"vt {args.command}: the DynamoDB call on table {table} failed ({error}).\n{WHAT_TO_SET}", file=sys.stderr
        )
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
