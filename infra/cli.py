"""`vt`: the operator's command line (settings come from the same VT_* variables as the functions).

vt token --sub alice --division montreal [--admin]   a development token (HS256, local secret)
vt import-communities communities.csv                register many communities (CSV or JSON)
vt cleanup                                           run one cleanup pass now
vt openapi [--check]                                 write (or check) the shipped OpenAPI document
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import ValidationError

from community_tracker.models import Community
from community_tracker.settings import get_settings


def read_communities(path: Path) -> Iterator[Community]:
    """Communities from a CSV file (header: community_id,slug,name,division_id) or a JSON list."""
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

    communities = list(read_communities(Path(args.file)))
    store = get_stores().communities
    for community in communities:
        store.put(community)
    print(f"registered {len(communities)} communities")
    return 0


def _cleanup(_args: argparse.Namespace) -> int:
    from cleanup.handler import run_pass_now

    print(json.dumps(run_pass_now().model_dump()))
    return 0


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
    importer.set_defaults(run=_import_communities)

    cleanup = commands.add_parser("cleanup", help="run one cleanup pass")
    cleanup.set_defaults(run=_cleanup)

    openapi = commands.add_parser("openapi", help="write the OpenAPI document shipped in the layer")
    openapi.add_argument("--check", action="store_true", help="only check that it is current")
    openapi.set_defaults(run=_openapi)

    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
