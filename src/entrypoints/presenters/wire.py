"""What every presenter shares: how a request spells its spec's fields, errors rewritten from spec
paths to wire paths, and the one pass that makes a presented document JSON-safe."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from domain.errors import COLUMN_DETAIL, WorkerError

_BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_.]*)`")


def names(items: Sequence[Any] | None) -> tuple[str, ...] | None:
    """A contract list of names (root models or plain strings) as the spec's tuple."""
    return None if items is None else tuple(getattr(item, "root", item) for item in items)


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _nested_spec(spec_type: type | None, name: str) -> type | None:
    """The spec dataclass held by field `name` of `spec_type` (declared with a default_factory)."""
    if spec_type is None or not dataclasses.is_dataclass(spec_type):
        return None
    for item in dataclasses.fields(spec_type):
        if item.name == name:
            factory = item.default_factory
            return factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None
    return None


def _field_names(spec_type: type | None) -> set[str]:
    if spec_type is None or not dataclasses.is_dataclass(spec_type):
        return set()
    return {item.name for item in dataclasses.fields(spec_type)}


@dataclass(frozen=True)
class WireNames:
    """How one request spells its spec's fields. A spec path is a dotted attribute path
    (`min_clusters`, `caps.weekly`, `params.num_leaves`, `fields.2`): each segment that names a field
    of `spec_type` (or of a nested spec) is camelCased, unless `paths` names a prefix otherwise
    (`customer_id` -> `fieldMap.customerId`); other segments (list indices, the caller's own column
    names) are kept as they are. Without `spec_type`, only the first segment is camelCased."""

    spec_type: type | None = None
    paths: Mapping[str, str] = field(default_factory=dict)

    def wire(self, spec_path: str) -> str:
        parts = spec_path.split(".")
        out: list[str] = []
        start = 0
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in self.paths:
                out, start = [self.paths[prefix]], cut
                break
        current = self.spec_type
        for part in parts[:start]:
            current = _nested_spec(current, part)
        for index, part in enumerate(parts[start:], start):
            untyped_head = self.spec_type is None and index == 0
            known = part in _field_names(current) or untyped_head
            out.append(camel(part) if known else part)
            current = _nested_spec(current, part) if known else None
        return ".".join(out)

    def names_spec_field(self, spec_path: str) -> bool:
        head = spec_path.split(".", 1)[0]
        return head in self.paths or spec_path in self.paths or head in _field_names(self.spec_type)

    def message(self, text: str, *, within: str | None = None) -> str:
        """A message as the caller reads it: each spec field it names in backticks (`min_clusters`)
        becomes the request's own name, bare (minClusters), as messages have always read; other
        backticked words (`rows`) are left as written. In a detail about `within` (fieldMap), its
        members are named relative to it (customerId, not fieldMap.customerId)."""

        def spelled(match: re.Match[str]) -> str:
            if not self.names_spec_field(match.group(1)):
                return match.group(0)
            wire = self.wire(match.group(1))
            return wire.removeprefix(f"{within}.") if within else wire

        return _BACKTICKED.sub(spelled, text)

    def error(self, error: WorkerError) -> WorkerError:
        """The same error with its message and its details (field and message) in wire names; a
        detail about one of the caller's columns keeps the column's name."""
        return _renamed(error, self.message(error.message), [self._detail(d) for d in error.details])

    def _detail(self, detail: Mapping[str, Any]) -> dict[str, Any]:
        renamed = {key: value for key, value in detail.items() if key != COLUMN_DETAIL}
        about_a_column = bool(detail.get(COLUMN_DETAIL))
        field = None
        if "field" in detail:
            field = str(detail["field"]) if about_a_column else self.wire(str(detail["field"]))
            renamed["field"] = field
        if isinstance(detail.get("message"), str):
            renamed["message"] = self.message(detail["message"], within=None if about_a_column else field)
        return renamed


def without_marks(error: WorkerError) -> WorkerError:
    """The error as the wire shows it when no request names apply: the details' marks dropped."""
    details = [{key: value for key, value in d.items() if key != COLUMN_DETAIL} for d in error.details]
    return _renamed(error, error.message, details)


def _renamed(error: WorkerError, message: str, details: list[dict[str, Any]]) -> WorkerError:
    renamed = type(error).__new__(type(error))
    renamed.__dict__.update(error.__dict__)
    WorkerError.__init__(renamed, message, details)
    return renamed


def json_ready(value: Any) -> Any:
    """The one pass that makes a presented document JSON-safe: JSON has no NaN or infinity (they
    become null), and numpy scalars or arrays that reached a presenter become Python values."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item) and getattr(value, "ndim", None) == 0:
        return json_ready(item())
    tolist = getattr(value, "tolist", None)  # numpy array
    if callable(tolist):
        return json_ready(tolist())
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
