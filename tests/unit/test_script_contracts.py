"""Each Lua script unpacks its KEYS and ARGV into named locals, one line per index, in the order
its contract dataclass in `redis/scripts.py` declares them."""

from __future__ import annotations

import re

import pytest

from community_tracker.redis.scripts import (
    ARG_CONTRACTS,
    COMMUNITY_SCRIPTS,
    KEY_CONTRACTS,
    CommunityState,
    Contract,
    read_script,
)

_UNPACK = re.compile(r"^local (\w+) = (?:tonumber\()?(KEYS|ARGV)\[(\d+)\]\)?\s*$", re.MULTILINE)


def unpacked(script: str, table: str) -> list[str]:
    """The local names a script gives KEYS[1..] or ARGV[1..], checked to be in index order."""
    names = [(int(index), name.lower()) for name, kind, index in _UNPACK.findall(read_script(script)) if kind == table]
    assert [index for index, _ in names] == list(
        range(1 + _offset(script, table), len(names) + 1 + _offset(script, table))
    )
    return [name for _, name in names]


def _offset(script: str, table: str) -> int:
    """Community scripts take KEYS[1..5] from the prelude."""
    shared = table == "KEYS" and script in COMMUNITY_SCRIPTS
    return len(CommunityState.names()) if shared else 0


@pytest.mark.parametrize("contract", KEY_CONTRACTS, ids=lambda c: c.__name__)
def test_keys_are_unpacked_in_contract_order(contract: type[Contract]) -> None:
    names = contract.names()
    if contract.script in COMMUNITY_SCRIPTS:
        assert names[: len(CommunityState.names())] == CommunityState.names()
        names = names[len(CommunityState.names()) :]
    assert unpacked(contract.script, "KEYS") == names


@pytest.mark.parametrize("contract", ARG_CONTRACTS, ids=lambda c: c.__name__)
def test_args_are_unpacked_in_contract_order(contract: type[Contract]) -> None:
    assert unpacked(contract.script, "ARGV") == contract.names()


def test_no_script_indexes_keys_or_args_past_its_header() -> None:
    # Index arithmetic (`ARGV[9 + i]`) is what the named locals replace.
    for contract in (*KEY_CONTRACTS, *ARG_CONTRACTS):
        body = _UNPACK.sub("", read_script(contract.script))
        assert not re.search(r"ARGV\[", body), f"{contract.script}.lua reads ARGV past its header"
