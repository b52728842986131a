"""Inline data into polars (rows and columns forms) and the routing data source."""

from __future__ import annotations

import math
from collections.abc import Mapping

import polars as pl
import pytest

from adapters.frames import PolarsDataset
from adapters.inline.dataset_source import MAX_COLUMNS, InlineDatasetSource
from adapters.routing_dataset_source import RoutingDatasetSource
from application.errors import PayloadTooLarge
from application.ports import DatasetSource
from domain.data import ColumnKind, Dataset, DataSpec, InlineColumns, InlineRows, TableRef, describe_spec
from domain.errors import ValidationFailed

pytestmark = pytest.mark.timeout(60)


async def _load(spec: DataSpec, max_rows: int = 1000) -> pl.DataFrame:
    dataset = await InlineDatasetSource().load(spec, max_rows=max_rows)
    assert isinstance(dataset, PolarsDataset)
    return dataset.frame


# ------------------------------------------------------------------------- columns form


async def test_columns_become_typed_polars_columns_in_order() -> None:
    frame = await _load(
        InlineColumns(
            {
                "age": [31, 45, None],
                "income": [1.5, None, 3.25],
                "region": ["north", "south", None],
                "member": [True, False, None],
            }
        )
    )
    assert frame.columns == ["age", "income", "region", "member"]
    assert frame.height == 3
    assert frame.schema["age"].is_integer()
    assert frame.schema["income"] == pl.Float64
    assert frame.schema["region"] == pl.String
    assert frame.schema["member"] == pl.Boolean
    assert frame.get_column("age").to_list() == [31, 45, None]
    assert frame.get_column("region").to_list() == ["north", "south", None]
    dataset = PolarsDataset(frame)
    assert dataset.row_count == 3
    assert dataset.schema == {
        "age": ColumnKind.NUMERIC,
        "income": ColumnKind.NUMERIC,
        "region": ColumnKind.CATEGORICAL,
        "member": ColumnKind.BOOLEAN,
    }


async def test_integers_and_floats_in_one_column_are_one_float_column() -> None:
    frame = await _load(InlineColumns({"x": [1, 2.5, None, 4]}))
    assert frame.schema["x"] == pl.Float64
    assert frame.get_column("x").to_list() == [1.0, 2.5, None, 4.0]


async def test_an_all_null_column_is_numeric_not_null_typed() -> None:
    frame = await _load(InlineColumns({"empty": [None, None], "x": [1, 2]}))
    assert frame.schema["empty"] == pl.Float64
    assert PolarsDataset(frame).schema["empty"] is ColumnKind.NUMERIC


async def test_nan_is_kept_as_a_float() -> None:
    frame = await _load(InlineColumns({"x": [1.0, math.nan]}))
    assert math.isnan(frame.get_column("x")[1])


async def test_numbers_and_text_in_one_column_name_the_column() -> None:
    with pytest.raises(ValidationFailed) as caught:
        await _load(InlineColumns({"ok": [1, 2, 3], "age": [31, "forty", 50]}))
    assert "age" in caught.value.message
    assert [d["field"] for d in caught.value.details] == ["age"]
    assert "int" in caught.value.details[0]["message"] and "str" in caught.value.details[0]["message"]


async def test_columns_of_unequal_length_name_the_odd_one() -> None:
    with pytest.raises(ValidationFailed) as caught:
        await _load(InlineColumns({"a": [1, 2, 3], "b": [1, 2], "c": [1, 2, 3]}))
    assert [d["field"] for d in caught.value.details] == ["b"]
    assert "2 values, expected 3" in caught.value.details[0]["message"]
    assert "b" in caught.value.message


async def test_max_rows_applies_to_columns() -> None:
    spec = InlineColumns({"a": list(range(11))})
    assert (await _load(spec, max_rows=11)).height == 11
    with pytest.raises(PayloadTooLarge) as caught:
        await _load(spec, max_rows=10)
    assert "11 rows" in caught.value.message and "10" in caught.value.message


async def test_too_many_columns_is_refused() -> None:
    columns = {f"c{i}": [1] for i in range(MAX_COLUMNS + 1)}
    with pytest.raises(ValidationFailed) as caught:
        await _load(InlineColumns(columns))
    assert caught.value.details == [{"field": "data", "message": "too many columns"}]


async def test_empty_columns_give_an_empty_dataset() -> None:
    dataset = await InlineDatasetSource().load(InlineColumns({}), max_rows=10)
    assert dataset.row_count == 0
    dataset = await InlineDatasetSource().load(InlineColumns({"a": []}), max_rows=10)
    assert dataset.row_count == 0


# ------------------------------------------------------------------------- rows form


async def test_rows_become_columns_in_first_seen_order_and_missing_keys_are_nulls() -> None:
    frame = await _load(
        InlineRows(
            [
                {"age": 31, "region": "north"},
                {"region": "south", "score": 0.5},
                {"age": 45},
            ]
        )
    )
    assert frame.columns == ["age", "region", "score"]
    assert frame.get_column("age").to_list() == [31, None, 45]
    assert frame.get_column("region").to_list() == ["north", "south", None]
    assert frame.get_column("score").to_list() == [None, 0.5, None]


async def test_rows_and_columns_forms_load_the_same_frame() -> None:
    rows = [{"a": i, "b": f"v{i % 3}", "c": i / 4} for i in range(20)]
    columns = {"a": list(range(20)), "b": [f"v{i % 3}" for i in range(20)], "c": [i / 4 for i in range(20)]}
    assert (await _load(InlineRows(rows))).equals(await _load(InlineColumns(columns)))


async def test_mixed_types_across_rows_name_the_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        await _load(InlineRows([{"x": 1, "y": "a"}, {"x": "two", "y": "b"}]))
    assert [d["field"] for d in caught.value.details] == ["x"]


async def test_max_rows_applies_to_rows() -> None:
    rows = [{"a": i} for i in range(6)]
    assert (await _load(InlineRows(rows), max_rows=6)).height == 6
    with pytest.raises(PayloadTooLarge):
        await _load(InlineRows(rows), max_rows=5)


async def test_empty_rows_give_an_empty_dataset() -> None:
    dataset = await InlineDatasetSource().load(InlineRows([]), max_rows=10)
    assert dataset.row_count == 0
    assert dict(dataset.schema) == {}


async def test_inline_source_refuses_a_table_reference() -> None:
    with pytest.raises(ValidationFailed) as caught:
        await InlineDatasetSource().load(TableRef("ds_customers"), max_rows=10)
    assert caught.value.details[0]["field"] == "data"
    assert await InlineDatasetSource().check() is None


def test_describe_spec_never_carries_the_data() -> None:
    assert describe_spec(InlineRows([{"secret": "x"}] * 3)) == {"source": "rows", "rows": 3}
    assert describe_spec(InlineColumns({"secret": ["x"]})) == {"source": "columns", "columns": 1}
    assert describe_spec(TableRef("ds_a", limit=5)) == {"source": "table", "table": "ds_a", "limit": 5}


# ------------------------------------------------------------------------- routing


class _RecordingTableSource(DatasetSource):
    def __init__(self, reason: str | None = None) -> None:
        self.loaded: list[tuple[DataSpec, int]] = []
        self.reason = reason

    async def load(self, spec: DataSpec, *, max_rows: int) -> Dataset:
        self.loaded.append((spec, max_rows))
        return PolarsDataset(pl.DataFrame({"from_table": [1, 2]}))

    async def check(self) -> str | None:
        return self.reason


async def test_a_table_without_a_database_names_data_table() -> None:
    source = RoutingDatasetSource(inline=InlineDatasetSource(), table=None)
    with pytest.raises(ValidationFailed) as caught:
        await source.load(TableRef("ds_customers", columns=("age",)), max_rows=100)
    assert [d["field"] for d in caught.value.details] == ["data.table"]
    assert "DATABASE_URL" in caught.value.message
    assert await source.check() is None


async def test_routing_sends_tables_to_the_table_source_and_inline_data_inline() -> None:
    table = _RecordingTableSource()
    source = RoutingDatasetSource(inline=InlineDatasetSource(), table=table)
    ref = TableRef("ds_customers", filters={"tenantId": "t1"}, limit=5)
    loaded = await source.load(ref, max_rows=77)
    assert loaded.schema == {"from_table": ColumnKind.NUMERIC}
    assert table.loaded == [(ref, 77)]
    inline = await source.load(InlineColumns({"a": [1, 2, 3]}), max_rows=77)
    assert inline.row_count == 3
    assert len(table.loaded) == 1  # the inline data never reached the table source
    with pytest.raises(PayloadTooLarge):  # and max_rows is passed on to the inline source
        await source.load(InlineColumns({"a": [1, 2, 3]}), max_rows=2)


async def test_routing_health_is_the_table_sources() -> None:
    source = RoutingDatasetSource(
        inline=InlineDatasetSource(), table=_RecordingTableSource("connection refused")
    )
    assert await source.check() == "connection refused"


def _schema(frame: Mapping[str, list[object]]) -> dict[str, ColumnKind]:
    return dict(PolarsDataset(pl.DataFrame(frame)).schema)


def test_temporal_columns_are_reported_as_temporal() -> None:
    from datetime import datetime

    assert _schema({"t": [datetime(2024, 1, 1)]}) == {"t": ColumnKind.TEMPORAL}
