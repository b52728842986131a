"""The contact-policy analysis on the wire: the request (PoliciesRequest) as a PolicySpec, how it
spells the spec's fields, and the result as openapi.yaml's PolicyAnalysisResult, built on the
generated contract models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from domain.policies.bands import BandSummary
from domain.policies.channels import ChannelCapFinding, ChannelSummary
from domain.policies.cooldown import CooldownFinding, GapSummary
from domain.policies.fatigue import FatigueFinding
from domain.policies.recommendations import CooldownEvidence, FrequencyCapEvidence, PolicyRecommendation
from domain.policies.result import FREQUENCY_SQUARED, ConversionModel, PolicyAnalysisResult, PolicySummary
from domain.policies.spec import COLUMN_ROLES, ContactCaps, PolicySpec
from domain.policies.statistics import Interval, Significance
from entrypoints import contract as c
from entrypoints.presenters.wire import WireNames, iso_time

POLICY_NAMES = WireNames(
    PolicySpec,
    {
        "customer_id": "fieldMap.customerId",
        "channel": "fieldMap.channel",
        "timestamp": "fieldMap.timestamp",
        "interaction_type": "fieldMap.interactionType",
        "offer_id": "fieldMap.offerId",
        COLUMN_ROLES: "fieldMap",
        "impression_values": "interactionValues.impression",
        "click_values": "interactionValues.click",
        "conversion_values": "interactionValues.conversion",
        # The interaction values as a group (none of them matches the data).
        "interaction_values": "interactionValues",
    },
)
# The model's feature names as the result spells them (channel shares keep the channel's name).
_FEATURE_NAMES = {FREQUENCY_SQUARED: "frequencySquared"}


def policy_spec(body: c.PoliciesRequest) -> PolicySpec:
    fields = body.fieldMap or c.FieldMap()
    values = body.interactionValues or c.InteractionValues()
    caps = body.caps or c.Caps()
    return PolicySpec(
        customer_id=fields.customerId,
        channel=fields.channel,
        timestamp=fields.timestamp,
        interaction_type=fields.interactionType,
        offer_id=fields.offerId,
        impression_values=tuple(values.impression),
        click_values=tuple(values.click),
        conversion_values=tuple(values.conversion),
        lookback_days=body.lookbackDays,
        as_of=body.asOf.timestamp() if body.asOf is not None else None,
        caps=ContactCaps(daily=caps.daily, weekly=caps.weekly, monthly=caps.monthly),
        bands=tuple(band.root for band in body.bands),
        min_samples_per_band=body.minSamplesPerBand,
        random_state=body.randomState,
        alpha=body.alpha,
    )


def present_policy_analysis(result: PolicyAnalysisResult) -> dict[str, Any]:
    bands = [_band(b) for b in result.frequency_bands]
    channels = [_channel(entry) for entry in result.channels]
    document = c.PolicyAnalysisResult(
        summary=_summary(result.summary),
        frequencyBands=[_checked(c.FrequencyBand, band) for band in bands],
        fatiguePoint={**_fatigue(result.fatigue), "population": result.fatigue_population},
        channels=[_checked(c.Channel, channel) for channel in channels],
        cooldown=_cooldown(result.cooldown),
        model=_model(result.model) if result.model is not None else None,
        recommendedWeeklyCap=result.recommended_weekly_cap,
        recommendations=[_recommendation(r) for r in result.recommendations],
        notes=[POLICY_NAMES.message(note) for note in result.notes],
        warnings=[POLICY_NAMES.message(warning) for warning in result.warnings],
    ).model_dump()
    # pydantic dumps a model's declared keys before its extra ones; bands and channels interleave
    # them on the wire, so they keep the order they were written in.
    return {**document, "frequencyBands": bands, "channels": channels}


M = TypeVar("M", bound=BaseModel)


def _checked(model: type[M], fields: Mapping[str, Any]) -> M:
    return model.model_validate(fields)


def _interval(interval: Interval | None) -> dict[str, float] | None:
    return None if interval is None else {"lower": interval.lower, "upper": interval.upper}


def _summary(s: PolicySummary) -> dict[str, Any]:
    return {
        "rows": s.rows,
        "rowsUsed": s.rows_used,
        "customers": s.customers,
        "customerWeeks": s.customer_weeks,
        "weeks": s.weeks,
        "dateRange": {"from": iso_time(s.date_range.start), "to": iso_time(s.date_range.end)},
        "window": {
            "from": iso_time(s.window.start),
            "to": iso_time(s.window.end),
            "lookbackDays": s.lookback_days,
        },
        "interactions": {
            "impressions": s.interactions.impressions,
            "clicks": s.interactions.clicks,
            "conversions": s.interactions.conversions,
        },
        "unknownInteractionTypes": dict(s.unknown_interaction_types),
        "unknownInteractionRows": s.unknown_interaction_rows,
        "unparseableTimestamps": s.unparseable_timestamps,
        "missingTimestamps": s.missing_timestamps,
        "missingCustomerIds": s.missing_customer_ids,
        "timestampFormat": s.timestamp_format,
        "outsideLookback": s.outside_lookback,
        **({"offers": s.offers} if s.offers is not None else {}),
        "customerWeeksWithoutContacts": s.customer_weeks_without_contacts,
    }


def _band(b: BandSummary) -> dict[str, Any]:
    return {
        "band": b.label,
        "minContacts": b.min_contacts,
        "maxContacts": b.max_contacts,
        "customerWeeks": b.customer_weeks,
        "convertedWeeks": b.converted_weeks,
        "conversionRate": b.conversion_rate,
        "conversionRateCi": _interval(b.conversion_rate_ci),
        "contacts": b.contacts,
        "conversions": b.conversions,
        "conversionPerContact": b.conversion_per_contact,
        "conversionPerContactCi": _interval(b.conversion_per_contact_ci),
        "conversionsPerCustomerWeek": b.conversions_per_customer_week,
        "sufficient": b.sufficient,
    }


def _significance(s: Significance) -> dict[str, Any]:
    return {
        "relativeDrop": s.relative_drop,
        "adjustedForChannelMix": s.adjusted_for_channel_mix,
        "z": s.z,
        "pValue": s.p_value,
        "alpha": s.alpha,
        "adjustedAlpha": s.adjusted_alpha,
        "comparisons": s.comparisons,
    }


def _fatigue(f: FatigueFinding) -> dict[str, Any]:
    return {
        "testable": f.testable,
        "detected": f.detected,
        "band": f.band,
        "maxContactsBeforeFatigue": f.max_contacts_before_fatigue,
        "fatiguedBand": f.fatigued_band,
        "referenceBands": f.reference_bands,
        "referenceConversionPerContact": f.reference_conversion_per_contact,
        "fatiguedConversionPerContact": f.fatigued_conversion_per_contact,
        **_significance(f.significance),
        "minRelativeDrop": f.min_relative_drop,
        "method": POLICY_NAMES.message(f.method),
        "reason": f.reason,
    }


def _channel(entry: ChannelSummary) -> dict[str, Any]:
    r = entry.rates
    return {
        "channel": r.channel,
        "impressions": r.impressions,
        "clicks": r.clicks,
        "conversions": r.conversions,
        "ctr": r.ctr,
        "ctrCi": _interval(r.ctr_ci),
        "cvr": r.cvr,
        "cvrCi": _interval(r.cvr_ci),
        "conversionsPerImpression": r.conversions_per_impression,
        "conversionsPerImpressionCi": _interval(r.conversions_per_impression_ci),
        "share": entry.share,
        "rank": entry.rank,
        **({"frequencyCap": _channel_cap(entry.frequency_cap)} if entry.frequency_cap is not None else {}),
    }


def _channel_cap(cap: ChannelCapFinding) -> dict[str, Any]:
    return {
        "singleChannelCustomerWeeks": cap.single_channel_customer_weeks,
        "fatigueDetected": cap.fatigue_detected,
        "band": cap.band,
        "fatiguedBand": cap.fatigued_band,
        "pValue": cap.p_value,
        "weeklyCap": cap.weekly_cap,
        "recommended": cap.recommended,
        "reason": cap.reason,
    }


def _gap(g: GapSummary) -> dict[str, Any]:
    return {
        "gap": g.label,
        "minDays": g.min_days,
        "maxDays": g.max_days,
        "contacts": g.contacts,
        "conversions": g.conversions,
        "conversionRate": g.conversion_rate,
        "conversionRateCi": _interval(g.conversion_rate_ci),
        "sufficient": g.sufficient,
    }


def _cooldown(cd: CooldownFinding) -> dict[str, Any]:
    return {
        "testable": cd.testable,
        "recommendedDays": cd.recommended_days,
        "gaps": [_gap(g) for g in cd.gaps],
        "shortGap": cd.short_gap,
        "referenceGap": cd.reference_gap,
        **_significance(cd.significance),
        "attributionDays": cd.attribution_days,
        "method": POLICY_NAMES.message(cd.method),
        "reason": cd.reason,
        "maxWeeklyContacts": cd.max_weekly_contacts,
    }


def _feature(name: str) -> str:
    return _FEATURE_NAMES.get(name, name)


def _model(m: ConversionModel) -> dict[str, Any]:
    return {
        "kind": m.kind,
        "target": m.target,
        "features": [_feature(name) for name in m.features],
        "referenceChannel": m.reference_channel,
        "coefficients": {_feature(name): value for name, value in m.coefficients},
        "oddsRatios": {_feature(name): value for name, value in m.odds_ratios},
        "auc": m.auc,
        "samples": {"train": m.samples.train, "test": m.samples.test, "sampled": m.samples.sampled},
        "peakFrequency": m.peak_frequency,
        "conversionProbabilityAtPeak": m.conversion_probability_at_peak,
    }


def _recommendation(r: PolicyRecommendation) -> c.PolicyRecommendation:
    p = r.payload
    return c.PolicyRecommendation(
        type=r.type,
        title=r.title,
        description=r.description,
        payload=c.Payload(
            ruleType=p.rule_type,
            scope=p.scope,
            channel=p.channel,
            maxContacts=p.max_contacts,
            windowDays=p.window_days,
            config=c.Config(
                maxPerDay=p.config.max_per_day,
                maxPerWeek=p.config.max_per_week,
                maxPerMonth=p.config.max_per_month,
            ),
        ),
        confidence=r.confidence,
        evidence=_evidence(r.evidence),
    )


def _evidence(e: FrequencyCapEvidence | CooldownEvidence) -> dict[str, Any]:
    population = {"population": e.population} if e.population is not None else {}
    if isinstance(e, CooldownEvidence):
        return {
            "shortGap": _gap(e.short_gap),
            "referenceGap": _gap(e.reference_gap),
            "relativeDrop": e.relative_drop,
            "adjustedForChannelMix": e.adjusted_for_channel_mix,
            "pValue": e.p_value,
            "adjustedAlpha": e.adjusted_alpha,
            "attributionDays": e.attribution_days,
            **population,
        }
    model = {"modelPeakFrequency": e.model.peak_frequency, "modelAuc": e.model.auc} if e.model else {}
    return {
        "capBand": e.cap_band,
        "capBandCustomerWeeks": e.cap_band_customer_weeks,
        "capBandConversionRate": e.cap_band_conversion_rate,
        "capBandConversionPerContact": e.cap_band_conversion_per_contact,
        "capBandConversionsPerCustomerWeek": e.cap_band_conversions_per_customer_week,
        "configuredWeeklyCap": e.configured_weekly_cap,
        "fatigue": _fatigue(e.fatigue),
        **model,
        **population,
    }
