"""Binary bodies (Arrow IPC stream, Parquet) into frames: the inline source's decoding, with the
column types every source gives, the limits, and no copy of the body where Arrow allows it."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adapters.columnar import MAX_COLUMNS
from adapters.frames import PolarsDataset
from adapters.inline.dataset_source import InlineDatasetSource
from application.errors import PayloadTooLarge
from domain.data import ColumnKind, EncodedData, describe_spec
from domain.errors import UnreadableInput, ValidationFailed

pytestmark = pytest.mark.timeout(60)


def arrow_stream(table: pa.Table, max_chunksize: int | None = None) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max_chunksize)
    return sink.getvalue()


def parquet_file(table: pa.Table, row_group_size: int | None = None) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


async def load(content: bytes, fmt: str = "arrow", max_rows: int = 1000) -> pl.DataFrame:
    dataset = await InlineDatasetSource().load(EncodedData(content, fmt), max_rows=max_rows)  # type: ignore[arg-type]
    assert isinstance(dataset, PolarsDataset)
    return dataset.frame


MIXED = pa.table(
    {
        "n": pa.array([1, 2, None], pa.int32()),
        "big": pa.array([1, 2, 3], pa.uint64()),
        "price": pa.array([Decimal("1.25"), Decimal("2.50"), None], pa.decimal128(10, 2)),
        "wide": pa.array([Decimal("1.5"), None, Decimal("-2")], pa.decimal256(50, 2)),
        "half": pa.array([1.5, None, 2.0], pa.float32()).cast(pa.float16()),
        "tier": pa.array(["a", "b", "a"]).dictionary_encode(),
        "name": pa.array(["x", None, "z"], pa.large_string()),
        "empty": pa.nulls(3),
        "at": pa.array(
            [dt.datetime(2024, 1, 1), None, dt.datetime(2024, 1, 3)], pa.timestamp("ms", tz="UTC")
        ),
        "day": pa.array([dt.date(2024, 1, 1)] * 3, pa.date32()),
        "flag": pa.array([True, False, None]),
    }
)


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
async def test_columns_get_the_types_the_other_sources_give(fmt: str) -> None:
    content = arrow_stream(MIXED) if fmt == "arrow" else parquet_file(MIXED)
    frame = await load(content, fmt)
    assert dict(frame.schema) == {
        "n": pl.Int32,
        "big": pl.UInt64,
        "price": pl.Float64,
        "wide": pl.Float64,  # polars cannot take a 256-bit decimal: cast before it sees one
        "half": pl.Float32,
        "tier": pl.String,
        "name": pl.String,
        "empty": pl.Float64,
        "at": pl.Datetime("ms", "UTC"),
        "day": pl.Date,
        "flag": pl.Boolean,
    }
    assert frame["price"].to_list() == [1.25, 2.5, None]
    assert frame["wide"].to_list() == [1.5, None, -2.0]
    assert frame["tier"].to_list() == ["a", "b", "a"]
    assert frame["empty"].to_list() == [None, None, None]
    assert PolarsDataset(frame).schema == {
        "n": ColumnKind.NUMERIC,
        "big": ColumnKind.NUMERIC,
        "price": ColumnKind.NUMERIC,
        "wide": ColumnKind.NUMERIC,
        "half": ColumnKind.NUMERIC,
        "tier": ColumnKind.CATEGORICAL,
        "name": ColumnKind.CATEGORICAL,
        "empty": ColumnKind.NUMERIC,
        "at": ColumnKind.TEMPORAL,
        "day": ColumnKind.TEMPORAL,
        "flag": ColumnKind.BOOLEAN,
    }


async def test_a_numeric_column_of_a_stream_is_the_bodys_own_memory() -> None:
    content = arrow_stream(pa.table({"x": pa.array([0.5 * i for i in range(10_000)]), "t": ["a"] * 10_000}))
    frame = await load(content, max_rows=10_000)
    body = pa.py_buffer(content)
    (values,) = [b for b in frame["x"].to_arrow().buffers() if b is not None]
    assert body.address <= values.address < body.address + body.size  # not a copy
    assert frame["x"][9999] == 4999.5


async def test_a_stream_of_many_batches_is_one_frame_in_order() -> None:
    table = pa.table({"x": list(range(25)), "s": [str(i) for i in range(25)]})
    frame = await load(arrow_stream(table, max_chunksize=4))
    assert frame["x"].to_list() == list(range(25))
    assert frame["s"].to_list() == [str(i) for i in range(25)]


async def test_an_empty_stream_keeps_its_columns_and_has_no_rows() -> None:
    frame = await load(arrow_stream(pa.table({"x": pa.array([], pa.float64())})))
    assert frame.columns == ["x"] and frame.height == 0


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        (pa.array([[1, 2], [3]]), "list"),
        (pa.array([{"a": 1}, {"a": 2}]), "struct"),
        (pa.array([[("k", 1)], [("j", 2)]], pa.map_(pa.string(), pa.int64())), "map"),
        (pa.array([b"x", b"y"]), "binary"),
        (pa.array([b"x", b"y"], pa.binary(1)), "fixed_size_binary"),
        (pa.array([b"x", b"y"]).dictionary_encode(), "dictionary"),
        (pa.array([dt.timedelta(days=1)] * 2, pa.month_day_nano_interval()), "month_day_nano_interval"),
    ],
)
@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
async def test_a_column_of_an_unsupported_type_is_refused_by_name(
    fmt: str, column: pa.Array, kind: str
) -> None:
    table = pa.table({"ok": [1.0, 2.0], "odd": column})
    if fmt == "parquet" and kind == "month_day_nano_interval":
        pytest.skip("Parquet has no such type")
    content = arrow_stream(table) if fmt == "arrow" else parquet_file(table)
    with pytest.raises(ValidationFailed) as caught:
        await load(content, fmt)
    assert not isinstance(caught.value, UnreadableInput)
    assert [d["field"] for d in caught.value.details] == ["odd"]
    assert "column 'odd' of the body" in caught.value.message


async def test_two_columns_of_one_name_are_refused() -> None:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(ValidationFailed, match="two columns of one name"):
        await load(arrow_stream(table))


async def test_too_many_columns_are_refused_before_decoding() -> None:
    table = pa.table({f"c{i}": [1] for i in range(MAX_COLUMNS + 1)})
    with pytest.raises(ValidationFailed) as caught:
        await load(arrow_stream(table))
    assert caught.value.details == [{"field": "data", "message": "too many columns"}]


async def test_rows_past_max_rows_are_refused_whatever_the_batches() -> None:
    table = pa.table({"x": list(range(11))})
    assert (await load(arrow_stream(table, max_chunksize=3), max_rows=11)).height == 11
    with pytest.raises(PayloadTooLarge, match="at most 10"):
        await load(arrow_stream(table, max_chunksize=3), max_rows=10)
    with pytest.raises(PayloadTooLarge, match="11 rows; this worker accepts at most 10"):
        await load(parquet_file(table), "parquet", max_rows=10)


async def test_a_parquet_body_is_refused_by_its_footer_before_its_data_is_read() -> None:
    table = pa.table({"x": [float(i) for i in range(1000)]})
    content = bytearray(parquet_file(table))
    # Wreck the column data but not the footer: over the limit, the footer alone answers; under
    # it, the data is read and found broken.
    content[8:400] = b"\xff" * 392
    with pytest.raises(PayloadTooLarge):
        await load(bytes(content), "parquet", max_rows=999)
    with pytest.raises(UnreadableInput):
        await load(bytes(content), "parquet", max_rows=1000)


@pytest.mark.parametrize(
    ("fmt", "content", "reason"),
    [
        ("arrow", b"", "an Arrow IPC stream"),
        ("arrow", b"not arrow at all, just text", "an Arrow IPC stream"),
        ("arrow", arrow_stream(pa.table({"x": [1.0] * 100}))[:-40], "an Arrow IPC stream"),
        ("parquet", b"PAR1 garbage PAR1", "a Parquet file"),
        ("parquet", parquet_file(pa.table({"x": [1.0] * 100}))[:-30], "a Parquet file"),
        ("parquet", arrow_stream(pa.table({"x": [1.0]})), "a Parquet file"),
    ],
)
async def test_bytes_that_are_not_the_format_are_unreadable_input(
    fmt: str, content: bytes, reason: str
) -> None:
    with pytest.raises(UnreadableInput) as caught:
        await load(content, fmt)
    assert caught.value.message.startswith(f"the body is not {reason}: ")
    assert [d["field"] for d in caught.value.details] == ["body"]
    assert "\n" not in caught.value.message


async def test_the_arrow_file_format_is_refused_with_the_way_to_the_stream_format() -> None:
    sink = io.BytesIO()
    table = pa.table({"x": [1.0]})
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    with pytest.raises(UnreadableInput, match="file format; send the IPC stream format"):
        await load(sink.getvalue())


def test_describe_spec_never_carries_the_body() -> None:
    content = arrow_stream(pa.table({"secret": ["x"]}))
    spec = EncodedData(content, "arrow")
    assert describe_spec(spec) == {"source": "arrow", "bytes": len(content)}
    assert "secret" not in repr(spec) and "content" not in repr(spec)
