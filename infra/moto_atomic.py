"""`moto_server`, with DynamoDB's writes atomic as DynamoDB's own are.

moto checks a write's conditions and then writes without a lock, while its server answers each
request on a thread: two concurrent transactions guarded by one item can then both pass (measured
in `test_exactly_once`: 16 concurrent writes of one visit, two told they stored it). DynamoDB
applies each conditional write and each transaction atomically, so the emulator takes one write at
a time. Reads are left concurrent. Run as `python -m infra.moto_atomic` with moto_server's own
arguments (infra.aws_emulator does); a LocalStack needs none of this."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
_one_write_at_a_time = threading.RLock()


def _atomic(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    def atomic_write(*args: Any, **kwargs: Any) -> Any:
        with _one_write_at_a_time:
            return write(*args, **kwargs)

    return atomic_write


def make_writes_atomic() -> None:
    for name in _WRITES:
        setattr(DynamoDBBackend, name, _atomic(getattr(DynamoDBBackend, name)))


if __name__ == "__main__":
    make_writes_atomic()
    main()
