"""A contract model's ValidationError as the details of a 422: one entry per mistake, in the
request's own paths.

A field with several forms (`data` is rows, columns or a table) is a union, and pydantic reports
every form's errors when none fits, each under the form's tag: `limit: 0` in a table came back as
`data.InlineRows.rows: Field required` first. Here the form the input meant is chosen the way a
reader would: the one whose required keys are all there (with the fewest keys it does not know),
or for a scalar union the one of the input's JSON type; only its errors are kept, and the tag is
dropped from the path (`data.limit`). When no form fits at all, one error names the field and the
forms it could have been.
"""

from __future__ import annotations

import types
import typing
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from entrypoints import contract

Loc = tuple[int | str, ...]
_MAX_DETAILS = 50


def validation_details(error: ValidationError) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {**item, "order": i} for i, item in enumerate(error.errors(include_url=False, include_input=False))
    ]
    root = getattr(contract, error.title, None)
    if isinstance(root, type) and issubclass(root, BaseModel):
        items = sorted(_narrowed(root, items), key=lambda item: item["order"])
    return [
        {"field": location(tuple(item["loc"])), "message": item["msg"], "type": item["type"]}
        for item in items[:_MAX_DETAILS]
    ]


def location(loc: Loc) -> str:
    return ".".join(str(part) for part in loc if part not in ("body",)) or "body"


def request_location(error: ValidationError, loc: Loc) -> str:
    """One error's location in the request's own path: without the union members' tags pydantic
    put in it (`data.InlineRows.rows.0.a.float` is `data.rows.0.a`)."""
    root = getattr(contract, error.title, None)
    if isinstance(root, type) and issubclass(root, BaseModel):
        tags = _tags(root, loc, 0)
        loc = tuple(part for i, part in enumerate(loc) if i not in tags)
    return location(loc)


def _narrowed(root: type[BaseModel], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At each union in the paths, outermost first, only the chosen form's errors stay; the tags
    are found on the paths as pydantic wrote them, and dropped at the end."""
    for item in items:
        item["tags"] = sorted(_tags(root, tuple(item["loc"]), 0))
        item["done"] = 0  # how many of its tags are decided
    while True:
        pending = [item for item in items if item["done"] < len(item["tags"])]
        if not pending:
            break
        depth = min(item["tags"][item["done"]] for item in pending)
        unions: dict[Loc, list[dict[str, Any]]] = defaultdict(list)
        for item in pending:
            if item["tags"][item["done"]] == depth:
                unions[tuple(item["loc"][:depth])].append(item)
        decided = {id(item) for group in unions.values() for item in group}
        items = [item for item in items if id(item) not in decided]
        for prefix, group in unions.items():
            items += _one_form(prefix, group)
    for item in items:
        item["loc"] = tuple(part for i, part in enumerate(item["loc"]) if i not in item["tags"])
    return items


def _one_form(prefix: Loc, group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    depth = len(prefix)
    forms: dict[int | str, list[dict[str, Any]]] = defaultdict(list)
    for item in group:
        forms[item["loc"][depth]].append(item)

    def at_key(item: dict[str, Any], kind: str) -> bool:
        return len(item["loc"]) == depth + 2 and item["type"] == kind

    def fits(errors: list[dict[str, Any]]) -> bool:
        # Neither the input as a whole is of another type, nor is a required key missing.
        return not any(len(e["loc"]) == depth + 1 or at_key(e, "missing") for e in errors)

    fitting = [errors for errors in forms.values() if fits(errors)]
    if not fitting:
        return [_no_form(prefix, forms)]
    fewest = min(sum(at_key(e, "extra_forbidden") for e in errors) for errors in fitting)
    return [
        {**e, "done": e["done"] + 1}
        for errors in fitting
        if sum(at_key(e, "extra_forbidden") for e in errors) == fewest
        for e in errors
    ]


def _no_form(prefix: Loc, forms: dict[int | str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One error for a value that is none of the forms, saying what each form would have been."""
    depth = len(prefix)
    expected = []
    for errors in forms.values():
        required = [
            f"`{e['loc'][depth + 1]}`"
            for e in errors
            if len(e["loc"]) == depth + 2 and e["type"] == "missing"
        ]
        whole = [e["msg"].removeprefix("Input should be ") for e in errors if len(e["loc"]) == depth + 1]
        if required:
            expected.append("an object with " + " and ".join(required))
        elif whole and not whole[0].startswith("a valid dictionary"):
            expected.append(whole[0])
        else:
            expected.append("an object")
    first = min((e for errors in forms.values() for e in errors), key=lambda e: e["order"])
    tags = [t for t in first["tags"] if t < depth]
    return {
        "loc": prefix,
        "msg": "Input should be " + " or ".join(dict.fromkeys(expected)),
        "type": "union_no_match",
        "order": first["order"],
        "tags": tags,
        "done": len(tags),
    }


def _tags(annotation: Any, loc: Loc, i: int) -> set[int]:
    """The positions in `loc` where pydantic put a union member's tag, found by walking the
    model's types along the path, so that a column or a filter named like a tag stays a key."""
    annotation = _unwrapped(annotation)
    if i >= len(loc):
        return set()
    if _is_union(annotation):
        return {i} | _tags(_member(typing.get_args(annotation), loc[i]), loc, i + 1)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = annotation.model_fields
        if getattr(annotation, "__pydantic_root_model__", False):
            return _tags(fields["root"].annotation, loc, i)  # a root model adds no path element
        field = next((f for name, f in fields.items() if (f.alias or name) == loc[i]), None)
        return set() if field is None else _tags(field.annotation, loc, i + 1)
    origin = typing.get_origin(annotation)
    if origin is list:
        return _tags(typing.get_args(annotation)[0], loc, i + 1)
    if origin is dict:
        return _tags(typing.get_args(annotation)[1], loc, i + 1)
    return set()


def _unwrapped(annotation: Any) -> Any:
    """Without Annotated, and without the None of an optional (neither adds a path element)."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if _is_union(annotation):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrapped(args[0])
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _member(members: Sequence[Any], tag: int | str) -> Any:
    """The member a tag names: a model by its class name, a list or a dict by its kind (a scalar
    member has nothing below it)."""
    for member in members:
        plain = _unwrapped(member)
        if isinstance(plain, type) and issubclass(plain, BaseModel) and plain.__name__ == tag:
            return plain
        origin = typing.get_origin(plain)
        if origin is not None and str(tag).startswith(f"{origin.__name__}["):
            return plain
    return None
