"""The offline commands' options against the request schemas (issue 17, item 3): every field of each
command's request is an option or a stated exclusion, each option sets its field to the value the API
reads, its choices and stated default are the contract's, and a field added to the contract becomes
an option without a code change."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from entrypoints import contract as c
from entrypoints.cli import build_parser
from entrypoints.cli.commands import COMMANDS, Command
from entrypoints.cli.options import (
    EXCLUDED,
    Option,
    build_request,
    excluded,
    integers,
    json_object,
    names,
    numbers,
)
from entrypoints.cli.summaries import policy_summary

BY_NAME = {command.name: command for command in COMMANDS}
PLACEHOLDER = {"data": {"columns": {}}}


def model_of(command: Command) -> type[BaseModel]:
    model: type[BaseModel] = getattr(c, command.request)
    return model


def resolved(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> Mapping[str, Any]:
    # A union is sampled as its first variant that is not null.
    variants = [s for s in schema.get("anyOf", schema.get("oneOf", ())) if s.get("type") != "null"]
    if variants:
        schema = variants[0]
    if "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def sample(schema: Mapping[str, Any], definitions: Mapping[str, Any], default: Any = None) -> Any:
    """A valid value of `schema` that is not `default`, so that setting it shows."""
    kind = resolved(schema, definitions)
    if "enum" in kind:
        return next(value for value in reversed(kind["enum"]) if value != default)
    if kind.get("type") == "boolean":
        return not default
    if kind.get("type") in ("integer", "number"):
        low = kind.get("minimum", kind.get("exclusiveMinimum"))
        high = kind.get("maximum", kind.get("exclusiveMaximum"))
        if kind["type"] == "integer":
            value = int(low if low is not None else 0) + (1 if "exclusiveMinimum" in kind else 0)
            return value + 1 if value == default else value
        value = (low + high) / 2 if low is not None and high is not None else (low or 0) + 1.5
        return float(value)
    if kind.get("type") == "string":
        return "2026-01-02T03:04:05+00:00" if kind.get("format") == "date-time" else "col_x"
    if kind.get("type") == "array":
        first = sample(kind["items"], definitions)
        second = first + 1 if isinstance(first, int) else f"{first}_2"
        return [first, second]
    if kind.get("type") == "object":
        properties = kind.get("properties", {})
        return {key: sample(value, definitions, value.get("default")) for key, value in properties.items()}
    raise AssertionError(f"no sample for {schema}")


def as_arguments(option: Option, value: Any) -> list[str]:
    if option.metavar == "PATH":  # a JSON document read from a file (drift's --model, --reference)
        path = os.path.join(tempfile.gettempdir(), f"ml-worker-cli-option-{option.dest}.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump(value, file)
        return [option.flag, path]
    if option.type is bool:
        return [option.flag if value else "--no-" + option.flag.removeprefix("--")]
    if option.value is json_object:
        return [option.flag, json.dumps(value)]
    if option.value in (names, integers, numbers):
        return [option.flag, ",".join(map(str, value))]
    return [option.flag, json.dumps(value) if isinstance(value, bool) else str(value)]


def samples_of(command: Command) -> dict[str, Any]:
    schema = model_of(command).model_json_schema()
    definitions = schema.get("$defs", {})
    return {
        field: sample(spec, definitions, spec.get("default"))
        for field, spec in schema["properties"].items()
        if field not in excluded(command.request)
    }


def parsed(command: Command, arguments: Sequence[str]) -> BaseModel:
    args = build_parser().parse_args([command.name, "data.csv", "--out", "out.json", *arguments])
    return build_request(command.request, command.all_options, args)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.name)
def test_every_request_field_has_an_option_or_a_stated_exclusion(command: Command) -> None:
    # As on the wire: `async` is the model's `async_`.
    fields = {info.alias or name for name, info in model_of(command).model_fields.items()}
    declared = [option.field for option in command.options]
    assert set(declared) <= fields, "a declared option sets a field the request does not have"
    assert len(declared) == len(set(declared))
    optioned = [option.field for option in command.all_options]
    assert sorted(optioned + list(excluded(command.request))) == sorted(fields)
    assert all(reason.strip() for reason in excluded(command.request).values())
    # The exclusions are real fields of every request, not a list gone stale.
    assert set(EXCLUDED) <= fields


def test_the_fields_the_issue_found_missing_are_declared_options() -> None:
    declared = {(name, option.field) for name, command in BY_NAME.items() for option in command.options}
    assert {
        ("train-gbm", "includeParityFixture"),
        ("segment", "silhouetteSampleSize"),
        ("segment", "maxCategories"),
        ("policies", "alpha"),
    } <= declared
    for name in ("segment", "policies", "content"):
        assert {(name, "schemaId"), (name, "tenantId")} <= declared


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.name)
def test_each_option_sets_its_field_to_the_value_the_api_reads(command: Command) -> None:
    # Every option at once, each with a valid value other than the default (nested models with
    # every one of their fields): what the CLI builds is what the same JSON request gives.
    model = model_of(command)
    values = samples_of(command)
    arguments = [arg for option in command.all_options for arg in as_arguments(option, values[option.field])]
    built = parsed(command, arguments).model_dump()
    expected = model.model_validate({**PLACEHOLDER, **values}).model_dump()
    defaults = model.model_validate({**PLACEHOLDER, **({"label": "y"} if "label" in values else {})})
    for field in values:
        assert built[field] == expected[field], field
        # A default would pass unset too: the sample must show that the option set the field.
        assert expected[field] != defaults.model_dump()[field], f"{field}: its sample is the default"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.name)
def test_unset_options_keep_the_apis_defaults(command: Command) -> None:
    required = [o for o in command.all_options if o.required]
    values = samples_of(command)
    arguments = [arg for option in required for arg in as_arguments(option, values[option.field])]
    body = {**PLACEHOLDER, **{option.field: values[option.field] for option in required}}
    assert parsed(command, arguments) == model_of(command).model_validate(body)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.name)
def test_choices_and_stated_defaults_are_the_contracts(command: Command) -> None:
    schema = model_of(command).model_json_schema()
    for option in command.all_options:
        field = schema["properties"][option.field]
        kind = resolved(field, schema.get("$defs", {}))
        if "enum" in kind:
            assert list(option.choices or ()) == kind["enum"], option.flag
        assert option.required == (option.field in schema.get("required", [])), option.flag
        default = field.get("default")
        # "(50)", "(default: onehot)", "(0: none)": the value before any explanation.
        stated = re.search(r"\((?:default: )?([^():;]*)[^()]*\)$", option.help)
        if default is None or stated is None or isinstance(default, dict):
            continue
        if isinstance(default, bool):
            shown = "on" if default else "off"  # a switch: --flag / --no-flag
        else:
            shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        assert stated.group(1) == shown, f"{option.flag} says ({stated.group(1)}), the contract {shown}"


def test_a_json_option_that_names_its_keys_names_the_nested_models() -> None:
    checked = 0
    for command in COMMANDS:
        schema = model_of(command).model_json_schema()
        for option in command.all_options:
            listed = re.search(r"as JSON: ([\w, ]+)$", option.help)
            if listed is None:
                continue
            nested = resolved(schema["properties"][option.field], schema["$defs"])
            assert names(listed.group(1)) == list(nested["properties"]), option.flag
            checked += 1
    assert checked >= 2  # both field maps


def test_every_option_is_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in COMMANDS:
        with pytest.raises(SystemExit):
            build_parser().parse_args([command.name, "--help"])
        text = capsys.readouterr().out
        for option in command.all_options:
            assert option.flag in text, option.flag


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folds: int = 5
    method: Literal["isotonic", "platt"] = "isotonic"


class _ExtendedSegments(c.SegmentsRequest):
    # Fields a later contract might add: they must reach the request without touching the CLI.
    includeExtras: Annotated[bool, Field(description="Adds 5% more. Second sentence.")] = False
    cvFolds: int | None = None
    calibration: Literal["none", "isotonic", "platt"] = "none"
    weights: list[float] | None = None
    tuning: _Params | None = None


def test_a_field_added_to_the_contract_gets_an_option_without_a_code_change(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(c, "SegmentsRequest", _ExtendedSegments)
    command = BY_NAME["segment"]
    flags = {option.flag for option in command.all_options}
    assert {"--include-extras", "--cv-folds", "--calibration", "--weights", "--tuning"} <= flags
    with pytest.raises(SystemExit):
        build_parser().parse_args(["segment", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--include-extras, --no-include-extras adds 5% more" in shown
    assert "--calibration {none,isotonic,platt} the request's calibration (none)" in shown
    request = parsed(
        command,
        ["--include-extras", "--cv-folds", "4", "--calibration", "platt", "--weights", "0.5,2",
         "--tuning", '{"folds": 3}'],
    )  # fmt: skip
    assert isinstance(request, _ExtendedSegments)
    assert request.includeExtras is True and request.cvFolds == 4 and request.calibration == "platt"
    assert request.weights == [0.5, 2.0] and request.tuning == _Params(folds=3)
    with pytest.raises(SystemExit):  # argparse knows the contract's choices
        parsed(command, ["--calibration", "sigmoid"])


def test_bands_are_integers_as_the_contract_reads_them() -> None:
    # `--bands 1,3,7` used to reach the contract as strings and be refused.
    assert parsed(BY_NAME["policies"], ["--bands", "1,3,7"]).bands == [c.Band(1), c.Band(3), c.Band(7)]  # type: ignore[attr-defined]


def test_policies_prints_the_notes_that_say_why_nothing_is_recommended() -> None:
    result = {
        "recommendedWeeklyCap": None,
        "recommendations": [],
        "notes": ["No frequency cap recommended: 40 customer-weeks, at least 60 are needed"],
        "warnings": [],
    }
    assert policy_summary(result).splitlines() == [
        "recommended weekly cap: none (not enough evidence)",
        "recommendations (0):",
        "notes:",
        "  - No frequency cap recommended: 40 customer-weeks, at least 60 are needed",
    ]
