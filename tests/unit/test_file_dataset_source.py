"""FileDatasetSource (CSV and Parquet for the offline CLI) and its place behind RoutingDatasetSource."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from adapters.files.dataset_source import CSV_INFER_ROWS, FileDatasetSource
from adapters.frames import PolarsDataset
from adapters.inline.dataset_source import InlineDatasetSource
from adapters.routing_dataset_source import RoutingDatasetSource
from application.errors import PayloadTooLarge
from domain.data import ColumnKind, FileRef, InlineColumns
from domain.errors import ValidationFailed
from entrypoints.container import Container, offline_container
from entrypoints.settings import Settings

BIG = 1_000_000


async def load(spec: FileRef, max_rows: int = BIG) -> pl.DataFrame:
    dataset = await FileDatasetSource().load(spec, max_rows=max_rows)
    assert isinstance(dataset, PolarsDataset)
    return dataset.frame


async def test_csv_columns_get_the_types_inline_data_would(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(
        "id,age,income,region,active,seen,empty\n"
        "1,31,1200.5,north,true,2024-01-02T10:00:00Z,\n"
        "2,,980,south,false,2024-01-03T11:00:00Z,\n"
        '3,45,,"east, coast",true,,\n'
    )
    dataset = await FileDatasetSource().load(FileRef(str(path)), max_rows=BIG)
    assert dataset.row_count == 3
    assert dict(dataset.schema) == {
        "id": ColumnKind.NUMERIC,
        "age": ColumnKind.NUMERIC,
        "income": ColumnKind.NUMERIC,
        "region": ColumnKind.CATEGORICAL,
        "active": ColumnKind.BOOLEAN,
        # Text, as the same timestamp sent inline in JSON would be.
        "seen": ColumnKind.CATEGORICAL,
        # All empty: numeric and missing, like an all-null inline column.
        "empty": ColumnKind.NUMERIC,
    }
    frame = await load(FileRef(str(path)))
    assert frame["age"].to_list() == [31, None, 45]
    assert frame["region"].to_list() == ["north", "south", "east, coast"]
    assert frame["seen"].to_list()[2] is None


async def test_a_late_float_after_many_integers_is_still_read(tmp_path: Path) -> None:
    # The first CSV_INFER_ROWS values look like integers; the last does not.
    path = tmp_path / "late.csv"
    path.write_text("x\n" + "".join(f"{i}\n" for i in range(CSV_INFER_ROWS + 5)) + "2.5\n")
    frame = await load(FileRef(str(path)))
    assert frame.height == CSV_INFER_ROWS + 6
    assert frame["x"].dtype == pl.Float64
    assert frame["x"][-1] == 2.5


async def test_parquet_keeps_its_types_and_normalises_decimals_and_dictionaries(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pl.DataFrame(
        {
            "n": [1, 2, None],
            "price": pl.Series([Decimal("1.25"), Decimal("2.50"), None], dtype=pl.Decimal(10, 2)),
            "tier": pl.Series(["a", "b", "a"], dtype=pl.Categorical),
            "at": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2), None],
            "flag": [True, False, None],
        }
    ).write_parquet(path)
    frame = await load(FileRef(str(path)))
    assert dict(frame.schema) == {
        "n": pl.Int64,
        "price": pl.Float64,
        "tier": pl.String,
        "at": pl.Datetime("us"),
        "flag": pl.Boolean,
    }
    assert frame["price"].to_list() == [1.25, 2.5, None]
    assert frame["tier"].to_list() == ["a", "b", "a"]


async def test_the_format_comes_from_the_extension_unless_given(tmp_path: Path) -> None:
    parquet_named_txt = tmp_path / "export.txt"
    pl.DataFrame({"a": [1, 2]}).write_parquet(parquet_named_txt)
    with pytest.raises(ValidationFailed, match=r"export\.txt.*extension \.txt"):
        await load(FileRef(str(parquet_named_txt)))
    assert (await load(FileRef(str(parquet_named_txt), format="parquet")))["a"].to_list() == [1, 2]
    csv_named_dat = tmp_path / "export.dat"
    csv_named_dat.write_text("a\n3\n")
    assert (await load(FileRef(str(csv_named_dat), format="csv")))["a"].to_list() == [3]
    # The wrong format given: unreadable, and said so with the path.
    with pytest.raises(ValidationFailed, match=r"cannot read '.*export\.dat' as parquet"):
        await load(FileRef(str(csv_named_dat), format="parquet"))


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("garbage.parquet", b"not a parquet file", r"cannot read '.*garbage\.parquet' as parquet"),
        ("binary.csv", bytes(range(256)) * 4, r"cannot read '.*binary\.csv' as csv"),
        ("empty.csv", b"", r"cannot read '.*empty\.csv' as csv"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n", r"cannot read '.*ragged\.csv' as csv"),
    ],
)
async def test_an_unreadable_file_is_a_validation_error_naming_it(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValidationFailed, match=expected) as caught:
        await load(FileRef(str(path)))
    assert "\n" not in caught.value.message  # polars' multi-line hints are cut to their first line


async def test_a_missing_path_or_a_directory_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match=r"'.*nope\.csv' does not exist"):
        await load(FileRef(str(tmp_path / "nope.csv")))
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(ValidationFailed, match="is a directory"):
        await load(FileRef(str(folder)))


async def test_a_glob_pattern_is_not_expanded(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    with pytest.raises(ValidationFailed, match="does not exist"):
        await load(FileRef(str(tmp_path / "*.csv")))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_more_rows_than_max_rows_is_payload_too_large(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"rows.{fmt}"
    frame = pl.DataFrame({"x": list(range(11))})
    frame.write_csv(path) if fmt == "csv" else frame.write_parquet(path)
    assert (await load(FileRef(str(path)), max_rows=11)).height == 11
    with pytest.raises(PayloadTooLarge, match="at most 10"):
        await load(FileRef(str(path)), max_rows=10)


async def test_nested_columns_are_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    pl.DataFrame({"ok": [1], "tags": [[1, 2]]}).write_parquet(path)
    with pytest.raises(ValidationFailed, match="column 'tags'") as caught:
        await load(FileRef(str(path)))
    assert caught.value.details[0]["field"] == "tags"


async def test_routing_reads_files_only_when_given_a_file_source(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x\n1\n2\n")
    without = RoutingDatasetSource(inline=InlineDatasetSource(), table=None)
    with pytest.raises(ValidationFailed, match="does not read files"):
        await without.load(FileRef(str(path)), max_rows=BIG)
    with_files = RoutingDatasetSource(inline=InlineDatasetSource(), table=None, files=FileDatasetSource())
    assert (await with_files.load(FileRef(str(path)), max_rows=BIG)).row_count == 2
    # Inline data still goes to the inline source.
    assert (await with_files.load(InlineColumns({"x": [1, 2, 3]}), max_rows=BIG)).row_count == 3


async def test_only_the_offline_container_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x\n1\n")
    settings = Settings(compute="inline", database_url=None)
    service = Container()
    service.settings.override(settings)
    offline = offline_container(settings)
    for container, reads in ((service, False), (offline, True)):
        source = await container.datasets()  # type: ignore[misc]
        try:
            if reads:
                assert (await source.load(FileRef(str(path)), max_rows=BIG)).row_count == 1
            else:
                with pytest.raises(ValidationFailed, match="does not read files"):
                    await source.load(FileRef(str(path)), max_rows=BIG)
        finally:
            await container.shutdown_resources()  # type: ignore[misc]
