"""A request's body into the contract model and its data, timed: `upload` (reading the body, its
first byte to its last) and `decode` (the part of turning it into data that happens here).

A JSON body carries every field. A binary body (an Arrow IPC stream or a Parquet file) is the data
itself, handed on still encoded (the data source decodes it, in a thread); its other fields travel
as one JSON object in the query parameter `request`. Nothing here decodes on the event loop but that
small parameter.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
from pydantic import BaseModel
from starlette.requests import Request

from domain.data import DataSpec
from domain.errors import UnreadableInput, ValidationFailed, field_error
from entrypoints.http.json_body import decode_json_request
from entrypoints.presenters.data import BINARY_MEDIA_TYPES, data_spec, encoded_data_spec

M = TypeVar("M", bound=BaseModel)
JSON_MEDIA_TYPES = ("application/json", "")
FIELDS_PARAMETER = "request"
# A stand-in for `data` while the contract model checks the other fields of a binary request.
_NO_DATA: dict[str, Any] = {"columns": {}}


class UnsupportedMediaType(ValidationFailed):
    code = "UNSUPPORTED_MEDIA_TYPE"

    def __init__(
        self,
        message: str = (
            "the body must be application/json, application/vnd.apache.arrow.stream or "
            "application/vnd.apache.parquet"
        ),
    ) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class ParsedRequest(Generic[M]):
    fields: M  # the contract model; its `data` is a stand-in for a binary body: use `data`
    data: DataSpec
    upload_ms: float
    decode_ms: float


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _media_type(request: Request, binary: bool) -> str:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not binary and media_type not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType("the body must be application/json: this operation carries a model in it")
    if media_type not in JSON_MEDIA_TYPES and media_type not in BINARY_MEDIA_TYPES:
        raise UnsupportedMediaType()
    return media_type


def _fields_of_binary_request(text: str | None, model: type[M]) -> M:
    try:
        fields = msgspec.json.decode(text or "{}")
    except msgspec.MsgspecError as error:
        message = f"the `request` query parameter is not valid JSON: {error}"
        raise UnreadableInput(message, [field_error(FIELDS_PARAMETER, str(error))]) from None
    if not isinstance(fields, dict):
        raise ValidationFailed(
            "the `request` query parameter must be a JSON object of the request's fields",
            [field_error(FIELDS_PARAMETER, "not a JSON object")],
        )
    if "data" in fields:
        raise ValidationFailed(
            "`request.data` is not accepted with a binary body: the body is the data",
            [field_error(f"{FIELDS_PARAMETER}.data", "the body is the data; leave `data` out")],
        )
    return model.model_validate({**fields, "data": _NO_DATA})


async def read_body(request: Request) -> bytes | bytearray:
    """The whole body, appended to one buffer as its chunks arrive: Starlette's `request.body()`
    keeps them all and joins them at the end, so a large body would be in memory twice. The buffer
    grows with what arrived, never to the declared Content-Length up front: 500 slow clients
    declaring 415 MB each would otherwise cost 200 GB before sending a byte (the middleware has
    refused any declared length over the limit; large reallocations are remapped, not copied)."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        return await request.body()
    expected = int(declared)
    buffer = bytearray()
    async for chunk in request.stream():
        if len(buffer) + len(chunk) > expected:  # uvicorn's parser never lets this happen; others might
            raise UnreadableInput(
                "the body is longer than its Content-Length", [field_error("body", "longer than declared")]
            )
        buffer += chunk
    # The HTTP parser holds a body to its Content-Length; a short one ends in a disconnect above.
    return buffer


async def read_request(request: Request, model: type[M], *, binary: bool = True) -> ParsedRequest[M]:
    """`binary=False`: a JSON body only (any other media type is refused before the body is read)."""
    media_type = _media_type(request, binary)
    started = time.perf_counter()
    body = await read_body(request)
    received = time.perf_counter()
    parameter = request.query_params.get(FIELDS_PARAMETER)
    data: DataSpec
    if media_type in BINARY_MEDIA_TYPES:
        fields = _fields_of_binary_request(parameter, model)
        data = encoded_data_spec(body, media_type)
    else:
        if parameter is not None:
            raise ValidationFailed(
                "the `request` query parameter goes with a binary body; a JSON body holds its fields",
                [field_error(FIELDS_PARAMETER, "only with an Arrow or Parquet body")],
            )
        fields = await asyncio.to_thread(decode_json_request, body, model)
        data = data_spec(fields.data)  # type: ignore[attr-defined]
    return ParsedRequest(fields, data, _ms(received - started), _ms(time.perf_counter() - received))
