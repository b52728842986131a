"""Spec fields declared with `bounded` carry their default and range, and are checked against it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from domain.specs import BOUNDS, Bounds, bound_problems, bounded


@dataclass(frozen=True)
class _Caps:
    weekly: int = bounded(10, minimum=1)


@dataclass(frozen=True)
class _Spec:
    size: int = bounded(100, minimum=100, maximum=20_000)
    alpha: float = bounded(0.05, exclusive_minimum=0, exclusive_maximum=1)
    eps: float | None = bounded(None, exclusive_minimum=0)
    caps: _Caps = field(default_factory=_Caps)
    name: str = "plain"


def test_a_bounded_field_carries_its_default_and_range() -> None:
    spec = _Spec()
    assert (spec.size, spec.caps.weekly) == (100, 10)
    size = next(item for item in dataclasses.fields(_Spec) if item.name == "size")
    assert size.metadata[BOUNDS] == Bounds(minimum=100, maximum=20_000)


def test_values_in_range_and_optional_fields_left_unset_pass() -> None:
    assert bound_problems(_Spec()) == []
    assert bound_problems(_Spec(size=20_000, alpha=0.999, eps=0.1)) == []


def test_each_out_of_range_field_is_one_detail_named_by_its_spec_path() -> None:
    problems = bound_problems(_Spec(size=20_001, alpha=1.0, eps=0.0, caps=_Caps(weekly=0)))
    assert problems == [
        {"field": "size", "message": "must be between 100 and 20000"},
        {"field": "alpha", "message": "must be > 0 and < 1"},
        {"field": "eps", "message": "must be > 0"},
        {"field": "caps.weekly", "message": "must be >= 1"},
    ]


def test_non_finite_numbers_are_refused() -> None:
    problems = bound_problems(_Spec(alpha=float("nan")))
    assert problems == [{"field": "alpha", "message": "must be a finite number"}]
