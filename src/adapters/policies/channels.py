"""Step 2: each channel's impressions, clicks and conversions, its rates and its rank."""

from __future__ import annotations

import polars as pl

from adapters.policies.events import CLICK, CONVERSION, IMPRESSION
from adapters.policies.remarks import Remarks
from domain.policies.channels import ChannelRates, ChannelSummary, channel_rate_summary


def channel_summaries(events: pl.DataFrame, remarks: Remarks) -> list[ChannelSummary]:
    """Ranked by conversions per impression (what a contact on the channel yields), then CTR."""
    table = (
        events.group_by("channel")
        .agg(
            (pl.col("kind") == IMPRESSION).sum().alias("impressions"),
            (pl.col("kind") == CLICK).sum().alias("clicks"),
            (pl.col("kind") == CONVERSION).sum().alias("conversions"),
        )
        .sort("channel")
    )
    total = int(table.get_column("impressions").sum())
    rates = [
        channel_rate_summary(
            str(row["channel"]), int(row["impressions"]), int(row["clicks"]), int(row["conversions"])
        )
        for row in table.iter_rows(named=True)
    ]

    def order(r: ChannelRates) -> tuple[float, float, int, str]:
        return (-(r.conversions_per_impression or 0.0), -(r.ctr or 0.0), -r.impressions, r.channel)

    ranked = [
        ChannelSummary(r, share=r.impressions / total if total else 0.0, rank=rank)
        for rank, r in enumerate(sorted(rates, key=order), start=1)
    ]
    for entry in ranked:
        if entry.rates.cvr is not None and entry.rates.cvr_ci is None:
            remarks.warnings.append(
                f"Channel {entry.rates.channel!r} has more conversions than clicks (conversions without a "
                "click?): its CVR is not a proportion and has no interval."
            )
    return ranked
