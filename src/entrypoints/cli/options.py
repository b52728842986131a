"""An offline command's options, and the API request they build: the contract model validates it,
so the defaults and bounds are the API's, and a mistake is named by the flag that made it.

Every field of the request is an option. Those a command declares (commands.py) have a hand-written
flag and help; any other field gets one from the contract (`inferred_options`), so a field added to
openapi.yaml is on the command line without a change here. Only `EXCLUDED` fields have none."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domain.errors import ValidationFailed, field_error

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

# Request fields without an option, and why.
EXCLUDED: Mapping[str, str] = {
    "data": "the data is the FILE argument, read by the file source (the HTTP API never reads a path)",
}
# Fields of one request only without an option, by contract model, spelled as on the wire.
EXCLUDED_FROM: Mapping[str, Mapping[str, str]] = {
    "TrainGbmRequest": {
        "async": "the CLI trains at once and writes the answer: a job needs the service's job engine",
    },
}


def excluded(request: str) -> Mapping[str, str]:
    """The fields of contract model `request` that have no option, and why."""
    return {**EXCLUDED, **EXCLUDED_FROM.get(request, {})}


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def integers(text: str) -> list[int]:
    try:
        return [int(item) for item in names(text)]
    except ValueError:
        raise ValueError(f"'{text}' is not a comma-separated list of integers") from None


def numbers(text: str) -> list[float]:
    try:
        return [float(item) for item in names(text)]
    except ValueError:
        raise ValueError(f"'{text}' is not a comma-separated list of numbers") from None


def json_object(text: str) -> Any:
    # Parsed here rather than by argparse so that a mistake reads like every other error.
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error})") from None


def json_file(path: str) -> Any:
    """The JSON document in the file at `path` (a model, a reference): read here so that a missing
    or broken file reads like every other error, naming the flag."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ValueError(f"'{path}' does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"'{path}' is not a JSON file ({error})") from None


@dataclass(frozen=True)
class Option:
    """One option of an offline command and the field of the API request it sets. `type=bool` is a
    switch (`--flag` / `--no-flag`); unset, the request keeps the API's default."""

    flag: str
    field: str
    help: str
    type: Callable[[str], Any] = str
    value: Callable[[Any], Any] | None = None  # turns the parsed text into the request's value
    choices: Sequence[str] | None = None
    required: bool = False
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def _flag(field: str) -> str:
    return "--" + re.sub(r"(?<!^)(?=[A-Z])", "-", field).lower()


def _resolved(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema of a value, without `null` (unset is the default) and with a `$ref` inlined."""
    variants = [s for s in schema.get("anyOf", ()) if s.get("type") != "null"]
    if len(variants) == 1:
        schema = variants[0]
    reference = schema.get("$ref")
    if reference:
        schema = definitions[reference.rsplit("/", 1)[-1]]
    return schema


def _help(field: str, schema: Mapping[str, Any]) -> str:
    description = " ".join(str(schema.get("description", "")).split())
    sentence = description.split(". ")[0].rstrip(".")
    # "The x" reads "the x", as the declared help does; "DBSCAN" stays.
    if sentence and not sentence[:2].isupper():
        sentence = sentence[0].lower() + sentence[1:]
    default = schema.get("default")
    shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
    stated = default is not None and not isinstance(default, dict | bool)
    text = (sentence or f"the request's {field}") + (f" ({shown})" if stated else "")
    return text.replace("%", "%%")  # argparse formats help with %: "25%" would break --help


def _inferred(
    field: str, schema: Mapping[str, Any], definitions: Mapping[str, Any], required: bool
) -> Option:
    kind = _resolved(schema, definitions)
    items = _resolved(kind.get("items", {}), definitions)
    flag, help_text = _flag(field), _help(field, schema)
    listed = {"string": names, "integer": integers, "number": numbers}
    if kind.get("type") == "boolean":
        return Option(flag, field, help_text, type=bool)
    if kind.get("type") == "integer":
        return Option(flag, field, help_text, type=int, required=required, metavar="N")
    if kind.get("type") == "number":
        return Option(flag, field, help_text, type=float, required=required, metavar="X")
    if kind.get("type") == "string":
        choices = kind.get("enum")
        metavar = None if choices else "TEXT"
        return Option(flag, field, help_text, choices=choices, required=required, metavar=metavar)
    if kind.get("type") == "array" and items.get("type") in listed:
        return Option(flag, field, help_text, value=listed[items["type"]], required=required, metavar="A,B")
    # Objects, nested models and anything else: JSON, validated by the contract model.
    return Option(flag, field, f"{help_text}, as JSON", value=json_object, required=required, metavar="JSON")


def inferred_options(request: str, declared: Sequence[Option]) -> tuple[Option, ...]:
    """An option for each field of the contract model `request` that `declared` does not set."""
    from entrypoints import contract as c

    model: type[BaseModel] = getattr(c, request)
    schema = model.model_json_schema()
    definitions = schema.get("$defs", {})
    taken = {option.field for option in declared} | set(excluded(request))
    return tuple(
        _inferred(field, schema["properties"][field], definitions, info.is_required())
        for field, info in model.model_fields.items()
        if (info.alias or field) not in taken
    )


def build_request(request: str, options: Sequence[Option], args: argparse.Namespace) -> BaseModel:
    """The contract model `request` (its name in the generated contract) from the options given."""
    from pydantic import ValidationError

    from entrypoints import contract as c

    # Only the options given: everything else keeps the API's default. The data is a placeholder;
    # the file replaces it once the request is valid.
    body: dict[str, Any] = {"data": {"columns": {}}}
    for option in options:
        raw = getattr(args, option.dest)
        if raw is None:
            continue
        try:
            body[option.field] = option.value(raw) if option.value is not None else raw
        except ValueError as error:
            message = f"{option.flag}: {error}"
            raise ValidationFailed(message, [field_error(option.flag, str(error))]) from None
    model: type[BaseModel] = getattr(c, request)
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise _invalid_options(options, error) from None


def _invalid_options(options: Sequence[Option], error: ValidationError) -> ValidationFailed:
    flags = {option.field: option.flag for option in options}
    details = []
    for item in error.errors(include_url=False, include_input=False):
        location = [str(part) for part in item["loc"]]
        where = flags.get(location[0], location[0]) if location else "options"
        inner = ".".join(location[1:])
        details.append(field_error(f"{where} {inner}".strip(), item["msg"]))
    first = details[0]
    return ValidationFailed(f"{first['field']}: {first['message']}", details)
