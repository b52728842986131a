"""Frequency bands from customer-weeks: one aggregation per band (and per channel or stratum) into
the sufficient statistics domain.policies.bands tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from domain.policies.bands import BandStats, FrequencyBand, frequency_bands


def band_stats(weeks: pl.DataFrame, bounds: Sequence[int], strata: Sequence[str]) -> list[BandStats]:
    """Every band of `bounds`, empty ones included, with per-stratum statistics when `strata` is set."""
    return to_band_stats(band_table(weeks, strata=len(strata)), bounds, strata)


def _sums(f: str, y: str, prefix: str, converted: pl.Expr) -> list[pl.Expr]:
    fc, yc = pl.col(f), pl.col(y)
    return [
        (fc > 0).sum().alias(f"{prefix}n"),
        converted.sum().alias(f"{prefix}converted"),
        fc.sum().alias(f"{prefix}contacts"),
        yc.sum().alias(f"{prefix}conversions"),
        (yc * yc).sum().cast(pl.Float64).alias(f"{prefix}y2"),
        (fc * fc).sum().cast(pl.Float64).alias(f"{prefix}f2"),
        (yc * fc).sum().cast(pl.Float64).alias(f"{prefix}yf"),
    ]


def band_table(weeks: pl.DataFrame, by: str | None = None, strata: int = 0) -> pl.DataFrame:
    """Sufficient statistics per band (and per `by`), overall and for strata sf{j}/sy{j}."""
    keys = ["band"] if by is None else [by, "band"]
    exprs = _sums("f", "y", "", pl.col("conv") > 0)
    for j in range(strata):
        exprs += _sums(f"sf{j}", f"sy{j}", f"s{j}_", pl.col(f"sy{j}") > 0)
    return weeks.group_by(keys).agg(exprs)


def _stats_from_row(band: FrequencyBand, row: Mapping[str, Any], prefix: str = "") -> BandStats:
    return BandStats(
        band=band,
        customer_weeks=int(row[f"{prefix}n"]),
        converted_weeks=int(row[f"{prefix}converted"]),
        contacts=int(row[f"{prefix}contacts"]),
        conversions=int(row[f"{prefix}conversions"]),
        sum_conversions_sq=float(row[f"{prefix}y2"]),
        sum_contacts_sq=float(row[f"{prefix}f2"]),
        sum_cross=float(row[f"{prefix}yf"]),
    )


def to_band_stats(table: pl.DataFrame, bounds: Sequence[int], strata: Sequence[str] = ()) -> list[BandStats]:
    rows = {row["band"]: row for row in table.iter_rows(named=True)}
    stats = []
    for band in frequency_bands(bounds):
        row = rows.get(band.index)
        if row is None:
            stats.append(BandStats(band, 0, 0, 0, 0))
            continue
        overall = _stats_from_row(band, row)
        by_channel = tuple(
            (name, _stats_from_row(band, row, f"s{j}_"))
            for j, name in enumerate(strata)
            if row[f"s{j}_contacts"] > 0
        )
        stats.append(dataclasses.replace(overall, strata=by_channel))
    return stats
