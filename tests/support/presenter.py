"""The job engine's own tests run toy tasks that return plain documents; the service's presenter
takes only the typed results of real analyses, so these tests present through this one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.jobs import EchoedResult
from entrypoints.presenters.jobs import JobResultPresenter, echo_fields
from entrypoints.presenters.wire import json_ready


class DocumentPresenter(JobResultPresenter):
    def present(self, result: object) -> Mapping[str, Any]:
        inner = result.result if isinstance(result, EchoedResult) else result
        if not isinstance(inner, Mapping):
            return super().present(result)
        echo = echo_fields(result.echo) if isinstance(result, EchoedResult) else {}
        document: dict[str, Any] = json_ready({**inner, **echo})
        return document
