"""Hostile values for the property-based tests and bench/fuzz_requests.py: numbers at and beyond the
edges of doubles and 64-bit integers, instants at the calendar's edges and past them, strings that are
empty or odd. Each is something a caller can send in valid JSON; the service must answer with a
user-facing code, never `INTERNAL`."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

EXTREME_FLOATS: tuple[float, ...] = (
    1e308,
    -1e308,
    1.7976931348623157e308,  # the largest double
    -1.7976931348623157e308,
    5e-324,  # the smallest subnormal
    -5e-324,
    2.2250738585072014e-308,  # the smallest normal
    -0.0,
    1e-300,
    1e300,
    0.1,
)
HUGE_INTEGERS: tuple[int, ...] = (
    2**53 + 1,  # the first integer a double cannot hold
    -(2**53) - 1,
    2**31,  # past a C int
    2**63 - 1,
    2**63,  # past int64
    -(2**63) - 1,
    2**64,  # past uint64
    10**30,
    -(10**30),
    0,
)
# As text, the way a log or a CSV export carries instants. Python's datetime holds years 1..9999
# only; polars parses year 0 and beyond.
EDGE_INSTANTS: tuple[str, ...] = (
    "0001-01-01T00:00:00Z",
    "0001-01-01",
    "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
    "0000-01-01T00:00:00Z",
    "0000-01-01",
    "10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "1677-09-21T00:00:00Z",  # just before nanosecond timestamps begin
    "2262-04-12T00:00:00Z",  # just after they end
    "2024-02-30T00:00:00Z",
    "2024-13-01",
    "1969-12-31T23:59:59.999999Z",
)
EDGE_EPOCHS: tuple[float | int, ...] = (
    -62135596800,  # 0001-01-01 in epoch seconds
    -62135596801,
    253402300799,  # 9999-12-31T23:59:59
    253402300800,
    1e308,
    -1e308,
    2**63,
    0,
)
ODD_STRINGS: tuple[str, ...] = (
    "",
    " ",
    "\t\n",
    "\x00",
    "NaN",
    "Infinity",
    "null",
    "1e308",
    "é",
    "\u202e",
    "🎉",
    "a" * 2000,
)
# The literals a JavaScript or Python encoder writes for non-finite numbers. JSON has none.
NON_STANDARD_LITERALS: tuple[str, ...] = ("NaN", "Infinity", "-Infinity")


def hostile_numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(EXTREME_FLOATS),
        st.sampled_from(HUGE_INTEGERS),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(2**70), max_value=2**70),
    )


def hostile_instants() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(EDGE_INSTANTS), st.sampled_from(EDGE_EPOCHS), st.sampled_from(ODD_STRINGS)
    )


def hostile_scalars() -> st.SearchStrategy[Any]:
    """Any one cell a caller may send: a hostile number, instant or string, a boolean or null."""
    return st.one_of(
        hostile_numbers(), hostile_instants(), st.sampled_from(ODD_STRINGS), st.booleans(), st.none()
    )


# How a column of otherwise ordinary data is damaged.
DAMAGES: tuple[str, ...] = ("all", "some", "one", "null", "constant", "empty_strings")


def damaged(values: list[Any], damage: str, value: Any, every: int) -> list[Any]:
    """`values` with `value` written over all cells, every `every`-th cell or the first; or every
    cell null, one repeated ordinary value, or empty strings."""
    if damage == "all":
        return [value] * len(values)
    if damage == "some":
        return [value if i % every == 0 else v for i, v in enumerate(values)]
    if damage == "one":
        return [value, *values[1:]]
    if damage == "null":
        return [None] * len(values)
    if damage == "constant":
        return [values[0]] * len(values)
    return [""] * len(values)
