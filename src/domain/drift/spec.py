"""The drift analysis request: the trained model (or its drift reference alone), the new rows, and an
optional label column of 0/1 outcomes; and how a request is checked against the data's schema."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.data import ColumnKind
from domain.errors import ValidationFailed, column_error, field_error
from domain.gbm.model_state import CATEGORICAL, NUMERIC, validate_model_state
from domain.gbm.reference import validate_reference

# The data kinds a numeric reference field reads (booleans are 1/0, as in training).
_NUMERIC_KINDS = frozenset({ColumnKind.NUMERIC, ColumnKind.BOOLEAN})


@dataclass(frozen=True)
class DriftSpec:
    """Exactly one of `model_state` (which must carry `reference`) and `reference`."""

    model_state: Mapping[str, Any] | None = None
    reference: Mapping[str, Any] | None = None
    label: str | None = None


def drift_reference(spec: DriftSpec) -> Mapping[str, Any]:
    """The reference the rows are compared with (the spec is validated: one of the two is there)."""
    if spec.reference is not None:
        return spec.reference
    assert spec.model_state is not None
    reference: Mapping[str, Any] = spec.model_state["reference"]
    return reference


def validate_drift_spec(spec: DriftSpec, schema: Mapping[str, ColumnKind]) -> None:
    """Raise ValidationFailed naming the spec field (or the data's column) at fault: the model or the
    reference first, since the columns can only be checked against a valid reference."""
    if (spec.model_state is None) == (spec.reference is None):
        message = "send exactly one of `model_state` (a trained model with its reference) and `reference`"
        raise ValidationFailed(message, [field_error("model_state", message)])
    reference = _checked_reference(spec)
    errors = list(_column_problems(reference, schema))
    if spec.label is not None and spec.label not in schema:
        errors.append(field_error("label", f"'{spec.label}' is not a column of the data"))
    elif spec.label is not None and schema[spec.label] is ColumnKind.TEMPORAL:
        errors.append(field_error("label", "must hold 0/1 outcomes, got a temporal column"))
    if errors:
        raise ValidationFailed("the drift analysis request does not fit the data", errors)


def _checked_reference(spec: DriftSpec) -> Mapping[str, Any]:
    if spec.model_state is not None:
        # A model's reference is checked with it, against its input features.
        _within("model_state", validate_model_state, spec.model_state)
        if "reference" not in spec.model_state:
            message = (
                "the model carries no drift `reference`: train it again (the reference is recorded "
                "at training) or send its `reference` alone"
            )
            raise ValidationFailed(message, [field_error("model_state.reference", message)])
        reference: Mapping[str, Any] = spec.model_state["reference"]
        return reference
    _within("reference", _validate_alone, spec.reference)
    assert spec.reference is not None
    return spec.reference


def _validate_alone(block: Any) -> None:
    """A reference without its model: checked against the input features it describes itself."""
    fields = block.get("fields") if isinstance(block, Mapping) else None
    if isinstance(fields, list):
        if not fields:
            raise ValidationFailed(
                "reference: fields must not be empty", [field_error("reference", "no fields")]
            )
        names = [entry.get("name") if isinstance(entry, Mapping) else None for entry in fields]
        if not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
            message = "reference: every field needs a distinct string name"
            raise ValidationFailed(message, [field_error("reference", message)])
        kinds = {entry.get("kind") for entry in fields}
        if not kinds <= {NUMERIC, CATEGORICAL}:
            message = f"reference: a field's kind must be {NUMERIC!r} or {CATEGORICAL!r}"
            raise ValidationFailed(message, [field_error("reference", message)])
    features = [
        {"name": entry["name"], "kind": entry["kind"], "categories": entry.get("categories")}
        for entry in fields or ()
    ]
    validate_reference(block, features)


def _within(path: str, validate: Any, block: Any) -> None:
    """Run a block's own validation, its details named from the request's field down (the block's
    keys are its own, snake_case: `model_state.trees`, `reference.fields`)."""
    try:
        validate(block)
    except ValidationFailed as error:
        head = path.rsplit(".", 1)[-1]
        details = [
            {**detail, "field": _under(path, head, str(detail.get("field", "")))} for detail in error.details
        ]
        raise type(error)(error.message, details or [field_error(path, error.message)]) from None


def _under(path: str, head: str, field: str) -> str:
    if not field or field in (head, path):
        return path
    return f"{path}.{field.removeprefix(f'{head}.')}"


def _column_problems(reference: Mapping[str, Any], schema: Mapping[str, ColumnKind]) -> list[dict[str, Any]]:
    errors = []
    for field in reference["fields"]:
        name, kind = field["name"], field["kind"]
        if name not in schema:
            errors.append(column_error(name, "the reference's field is missing from the data"))
        elif kind == NUMERIC and schema[name] not in _NUMERIC_KINDS:
            errors.append(
                column_error(name, f"the reference's field is numeric; the data holds {schema[name].value}")
            )
    return errors
