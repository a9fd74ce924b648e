"""moto at the scale of one user's 100,000 visits.

moto's DynamoDB does per query what a real table does per partition once: it sorts every item of
the table and walks them up to the start key, then serializes the answer attribute by attribute.
A 100,000-item history (about 35 query pages of 1 MB) then takes minutes. `indexed_queries()`
keeps moto's own answer to a hash-key query of an index (the same items, in moto's order, cut at
moto's 1 MB limit and `Limit`, with moto's `LastEvaluatedKey` and index projection) but computes
the sorted candidates once per table state, finds the start key by a lookup instead of a walk,
and encodes plain DynamoDB answers with `json.dumps`.
`test_export.py::test_the_indexed_queries_answer_as_moto_does` checks it page for page against moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from moto.core import responses as moto_responses
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.comparisons import OpDefault
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models import table as moto_table
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict


def moto_table_of(name: str, region: str) -> Any:
    return dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_table(name)


def _dynamo(value: Any) -> dict[str, Any]:
    """A Python value as DynamoDB JSON (the types a visit item holds), as boto3 would write it."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {key: _dynamo(inner) for key, inner in value.items()}}
    return dict(TypeSerializer().serialize(value))


def bulk_put(name: str, region: str, items: Iterable[dict[str, Any]]) -> None:
    """Items (as boto3's resource takes them) straight into moto's table, no request each (and
    no size check per attribute: these items are small)."""
    table = moto_table_of(name, region)
    for item in items:
        attrs = {key: DynamoType(_dynamo(value)) for key, value in item.items()}
        stored: Any = Item.__new__(Item)
        stored.hash_key, stored.range_key = attrs[table.hash_key_attr], attrs[table.range_key_attr]
        stored.attrs = LimitedSizeDict()
        dict.update(stored.attrs, attrs)
        table.items[stored.hash_key][stored.range_key] = stored


@dataclass(frozen=True, slots=True)
class _Ordered:
    """One index partition in moto's order, with each item's size and position."""

    items: list[Item]
    sizes: list[int]
    positions: dict[tuple[Any, Any], int]


def _table_state(table: Any) -> tuple[int, int]:
    return id(table.items), sum(len(partition) for partition in table.items.values())


@contextmanager
def indexed_queries() -> Iterator[None]:
    original_query = moto_table.Table.query
    original_execute = moto_responses.ActionResult.execute_result
    cache: dict[tuple[Any, ...], _Ordered] = {}

    def candidates(table: Any, index_name: str, attr: str, value: DynamoType, forward: bool) -> _Ordered:
        key = (id(table), index_name, attr, value.cast_value, _table_state(table), forward)
        if key not in cache:
            index = table.get_index(index_name)
            index_keys = [k["AttributeName"] for k in index.schema]
            hash_attrs = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"] + [table.hash_key_attr]
            range_attrs = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"] + [table.range_key_attr]
            matching = [
                item
                for item in table.all_items()
                if all(item.attrs.get(k) is not None for k in index_keys) and item.attrs[attr] == value
            ]
            ordered = table.sorted_items(hash_attrs, range_attrs, matching)
            if not forward:
                ordered.reverse()
            cache[key] = _Ordered(
                ordered,
                [item.size() for item in ordered],
                {(item.hash_key.value, item.range_key.value): n for n, item in enumerate(ordered)},
            )
        return cache[key]

    def query(
        self: Any,
        hash_key: Any,
        range_comparison: Any,
        range_objs: Any,
        limit: Any,
        exclusive_start_key: Any,
        scan_index_forward: Any,
        projection_expressions: Any,
        index_name: Any = None,
        consistent_read: Any = False,
        filter_expression: Any = None,
        hash_key_conditions: Any = None,
        range_key_conditions: Any = None,
        **filter_kwargs: Any,
    ) -> Any:
        plain = (
            index_name is not None
            and not range_comparison
            and not projection_expressions
            and (filter_expression is None or isinstance(filter_expression, OpDefault))
            and not range_key_conditions
            and not filter_kwargs
            and len(hash_key_conditions or []) == 1
        )
        if not plain:
            return original_query(
                self,
                hash_key,
                range_comparison,
                range_objs,
                limit,
                exclusive_start_key,
                scan_index_forward,
                projection_expressions,
                index_name,
                consistent_read,
                filter_expression,
                hash_key_conditions=hash_key_conditions,
                range_key_conditions=range_key_conditions,
                **filter_kwargs,
            )
        attr, value = hash_key_conditions[0]
        indexed_queries.served += 1  # type: ignore[attr-defined]
        ordered = candidates(self, index_name, attr, value, scan_index_forward is not False)
        start = 0
        if exclusive_start_key is not None:
            start_item = (
                DynamoType(exclusive_start_key[self.hash_key_attr]).value,
                DynamoType(exclusive_start_key[self.range_key_attr]).value,
            )
            start = ordered.positions[start_item] + 1
        results: list[Item] = []
        size = 0
        last_evaluated_key = None
        for item, item_size in zip(ordered.items[start:], ordered.sizes[start:], strict=True):
            if len(results) == limit or size + item_size > moto_table.RESULT_SIZE_LIMIT:
                last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
                break
            results.append(item)
            size += item_size
        # moto copies what it answers; nothing changes these answers before they are encoded
        index = self.get_index(index_name)
        return [index.project(r) for r in results], len(results), last_evaluated_key

    def execute_result(self: Any, context: Any) -> Any:
        if context.service_model.service_name == "dynamodb" and isinstance(self.result, dict):
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(self.result)
        return original_execute(self, context)

    moto_table.Table.query = query  # type: ignore[method-assign]
    indexed_queries.served = 0  # type: ignore[attr-defined]
    moto_responses.ActionResult.execute_result = execute_result  # type: ignore[method-assign]
    try:
        yield
    finally:
        moto_table.Table.query = original_query  # type: ignore[method-assign]
        moto_responses.ActionResult.execute_result = original_execute  # type: ignore[method-assign]
