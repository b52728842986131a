"""An offline command's options, and the API request they build: the contract model validates it,
so the defaults and bounds are the API's, and a mistake is named by the flag that made it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domain.errors import ValidationFailed, field_error

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def json_object(text: str) -> Any:
    # Parsed here rather than by argparse so that a mistake reads like every other error.
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error})") from None


@dataclass(frozen=True)
class Option:
    """One option of an offline command and the field of the API request it sets."""

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
