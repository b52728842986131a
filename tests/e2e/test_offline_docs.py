"""/docs and /redoc work without internet: every asset their pages reference is served by the app
itself (no CDN), and they stay open when an API key is set."""

from __future__ import annotations

import re

import pytest
from tests.support.app import app_client

_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")
_REDOC_SPEC = re.compile(r"""spec-url\s*=\s*["']([^"']+)["']""")


def references(html: str) -> list[str]:
    found = [a or b for a, b in _REFERENCE.findall(html)]
    return found + _REDOC_SPEC.findall(html)


@pytest.mark.parametrize(("page", "marker"), [("/docs", "SwaggerUIBundle("), ("/redoc", "<redoc")])
async def test_a_docs_page_and_every_asset_it_references_come_from_the_app(page: str, marker: str) -> None:
    async with app_client(api_key="s3cret") as client:
        reply = await client.get(page)
        assert reply.status_code == 200
        html = reply.text
        assert marker in html
        linked = references(html)
        assert "/openapi.json" in linked
        assert any(link.endswith(".js") for link in linked), linked
        for link in linked:
            assert link.startswith("/"), f"{page} loads {link} from outside the app"
            asset = await client.get(link)
            assert asset.status_code == 200, link
            assert len(asset.content) > 0, link
        assert "fonts.googleapis" not in html and "cdn." not in html


async def test_an_unknown_asset_is_a_404_in_the_error_envelope() -> None:
    async with app_client() as client:
        reply = await client.get("/docs/assets/..%2Fdocs.py")
        assert reply.status_code == 404
        assert reply.json()["error"]["code"] == "NOT_FOUND"
        css = await client.get("/docs/assets/swagger-ui.css")
        assert css.headers["content-type"].startswith("text/css")
