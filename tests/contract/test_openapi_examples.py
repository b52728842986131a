"""Every JSON request example in openapi.yaml, sent as written, gets its operation's documented
success: `200` for a training, `202` and then a `completed` job for an analysis. (The content
example once failed its job with INSUFFICIENT_DATA: an example a reader copies must work.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.app import app_client
from tests.support.http import finished_job

CONTRACT = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text(encoding="utf-8"))


def json_examples() -> list[tuple[str, str, str, Any, str]]:
    cases = []
    for path, item in CONTRACT["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):  # path-level `parameters`
                continue
            content = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if not isinstance(content, dict):
                continue
            success = sorted(code for code in operation["responses"] if str(code).startswith("2"))
            examples = {"example": content["example"]} if "example" in content else {}
            examples.update({name: ex["value"] for name, ex in (content.get("examples") or {}).items()})
            for name, body in examples.items():
                cases.append((operation["operationId"], method, path, body, str(success[0]) + ":" + name))
    return cases


EXAMPLES = json_examples()


def test_every_operation_with_a_json_body_has_an_example() -> None:
    with_body = {
        op["operationId"]
        for item in CONTRACT["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "application/json" in (op.get("requestBody") or {}).get("content", {})
    }
    assert with_body == {case[0] for case in EXAMPLES}


@pytest.mark.parametrize(
    ("operation", "method", "path", "body", "expected"), EXAMPLES, ids=[c[4] for c in EXAMPLES]
)
async def test_the_example_gets_its_documented_status(
    operation: str, method: str, path: str, body: Any, expected: str
) -> None:
    status = int(expected.split(":")[0])
    async with app_client() as client:
        reply = await client.request(method.upper(), path, json=body)
        assert reply.status_code == status, f"{operation}: {reply.text[:500]}"
        if status == 202:
            job = await finished_job(client, f"/status/{reply.json()['jobId']}")
            assert job["status"] == "completed", f"{operation}: {job.get('error')}"
