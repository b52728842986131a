"""JSON request bodies into the contract model, fast for the large inline forms. It runs in a worker
thread (bodies.py), never on the event loop.

Validating millions of cells one by one against the contract's scalar union cost 19 s of a 34 s
training at 1,000,000 x 20, so the two inline forms skip it and are typed by column where the frame
is built (the inline data source: strict per column, integers and floats one float column, numbers
and text refused naming the column, nested values refused, ragged columns refused):

- `{"columns": {name: [...]}}`: the whole body decoded by msgspec (steadier and faster than orjson
  here, see bench/decode_json.py), the lists handed on as they are;
- `{"rows": [{...}, ...]}` whose cells are scalars: each row decoded into a msgspec Struct of the
  first row's keys (no dict per row), then turned into columns. A row with another key, or a cell
  that is not a scalar, sends the body down the generic path.

The rest of the request, and any body that is not plainly one of those forms (a table, bad shapes,
JSON msgspec refuses), is validated by the contract model itself, as it always was: same answers,
same errors. Decoded integers stay integers in every form (rows the contract model validated take
their cells from msgspec's decoding), as in the Arrow and Parquet bodies.
"""

from __future__ import annotations

import re
from operator import attrgetter
from typing import Any, TypeVar

import msgspec
from pydantic import BaseModel

from entrypoints import contract as c

M = TypeVar("M", bound=BaseModel)
CellType = str | int | float | bool | None
# Where to look for the rows form: it is only a hint for which decoder to try first (a miss costs
# speed, never correctness), so a few kilobytes of the body's start are enough.
_HINT_BYTES = 64 * 1024
_ROWS_HINT = re.compile(rb'"data"\s*:\s*\{\s*"rows"\s*:')
_ROWS_START = re.compile(rb'\s*\{\s*"rows"\s*:\s*\[\s*')
# How many closing braces may be tried as the end of the first row (a brace inside a text cell
# is not its end), and how far into the data.
_FIRST_ROW_TRIES = 64
_FIRST_ROW_WINDOW = 1024 * 1024


def decode_json_request(body: bytes | bytearray, model: type[M]) -> M:
    """The request, its `data` as `c.InlineColumns` (rows turned into columns) on the fast paths.

    Raises pydantic's ValidationError (invalid JSON, or content the contract refuses)."""
    if _ROWS_HINT.search(body, 0, _HINT_BYTES):
        fast = _rows_request(body, model)
        if fast is not None:
            return fast
    try:
        document = msgspec.json.decode(body)
    except msgspec.MsgspecError:
        # NaN, numbers out of range, broken JSON: the contract's own parser decides, as before.
        return model.model_validate_json(body)
    columns = _plain_columns(document)
    if columns is None:
        # In JSON mode, as the contract is written: python mode words errors for Python types
        # ("a valid list" for a JSON array). Only small or table requests come here.
        return _with_decoded_rows(model.model_validate_json(body), document)
    return _with_columns(model, {**document, "data": {"columns": {}}}, columns)


def _with_decoded_rows(parsed: M, document: Any) -> M:
    """Rows the contract validated, with their cells as msgspec decoded them. The contract's scalar
    type reads an integer as a float, so these rows gave a float column where the same data in any
    other form gives an integer one, and a mixed column read `(float, str)` here, `(int, str)` there."""
    if isinstance(getattr(parsed, "data", None), c.InlineRows):
        # Valid as InlineRows (extra keys forbidden), so `data` is exactly {"rows": [...]}.
        parsed.data = c.InlineRows.model_construct(rows=document["data"]["rows"])  # type: ignore[attr-defined]
    return parsed


def _with_columns(model: type[M], rest: dict[str, Any], columns: dict[str, list[Any]]) -> M:
    parsed = model.model_validate(rest)
    # The cells are typed (and refused by column name) when the data source builds its frame.
    parsed.data = c.InlineColumns.model_construct(columns=columns)  # type: ignore[attr-defined]
    return parsed


def _plain_columns(document: Any) -> dict[str, list[Any]] | None:
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or list(data) != ["columns"] or not isinstance(data["columns"], dict):
        return None
    columns = data["columns"]
    if not all(isinstance(values, list) for values in columns.values()):
        return None
    return columns


def _rows_request(body: bytes | bytearray, model: type[M]) -> M | None:
    try:
        top = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    except msgspec.MsgspecError:
        return None
    data = top.pop("data", None)
    columns = _rows_as_columns(data) if data is not None else None
    if columns is None:
        return None
    try:
        rest = {key: msgspec.json.decode(raw) for key, raw in top.items()}
    except msgspec.MsgspecError:
        # A spec field msgspec refuses (1e400 is out of its range): the generic path answers it.
        return None
    return _with_columns(model, {**rest, "data": {"columns": {}}}, columns)


def _first_row_keys(data: memoryview, start: int) -> list[str] | None:
    end = start
    window = bytes(data[: start + _FIRST_ROW_WINDOW])
    for _ in range(_FIRST_ROW_TRIES):
        end = window.find(b"}", end + 1)
        if end < 0:
            return None
        try:
            return list(msgspec.json.decode(window[start : end + 1], type=dict[str, CellType]))
        except msgspec.MsgspecError:
            continue
    return None


def _rows_as_columns(data: msgspec.Raw) -> dict[str, list[Any]] | None:
    view = memoryview(data)
    opening = _ROWS_START.match(view)
    if opening is None or view[opening.end() : opening.end() + 1].tobytes() != b"{":
        return None
    keys = _first_row_keys(view, opening.end())
    if not keys:
        return None
    names = [f"c{index}" for index in range(len(keys))]
    try:
        # gc=False: a million rows the cycle collector would otherwise walk again and again.
        row = msgspec.defstruct(
            "Row",
            [(name, CellType, None) for name in names],
            rename=dict(zip(names, keys, strict=True)),
            forbid_unknown_fields=True,
            gc=False,
        )
    except ValueError:  # a key msgspec cannot map (a quote, a backslash, a control character)
        return None
    rows_type = msgspec.defstruct("Rows", [("rows", list[row])], forbid_unknown_fields=True)  # type: ignore[valid-type]
    try:
        rows = msgspec.json.decode(data, type=rows_type).rows  # type: ignore[attr-defined]
    except msgspec.MsgspecError:
        return None
    return {key: list(map(attrgetter(name), rows)) for name, key in zip(names, keys, strict=True)}
