"""The base of the generated contract models a request body is read into (scripts/generate-contract
maps them here).

JSON has no NaN or infinity: `NaN`, `Infinity` and `-Infinity` are not JSON, and a literal beyond
the double range (1e400) can only be read as an infinity. The fast columns path (orjson) refuses
them; pydantic's JSON reader accepts them unless told otherwise, so the request models refuse
non-finite numbers and both paths agree. `null` is the missing value. The error handler answers these
refusals with 400, as for any other body that is not JSON (http/errors.py). Integer fields refuse
them whatever the config; result models keep pydantic's default, their presenters' concern.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestModel(BaseModel):
    # A subclass's own model_config (extra='forbid', ...) is merged with this one by pydantic.
    model_config = ConfigDict(allow_inf_nan=False)
