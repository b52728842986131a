"""/docs (Swagger UI) and /redoc (ReDoc) from assets shipped in the package: FastAPI's defaults load
them from a CDN, and a worker in a cluster without internet showed a blank page
(`SwaggerUIBundle is not defined`). The assets are vendored by `scripts/vendor-docs-assets`."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

ASSETS_PATH: Final = "/docs/assets"
# A fixed table, not a directory listing: nothing but these names can be asked for.
_MEDIA_TYPES: Final = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
_TITLE: Final = "ML Worker"
_FAVICON: Final = f"{ASSETS_PATH}/favicon-32x32.png"
# A day: the assets change only with a release.
_CACHE_CONTROL: Final = "public, max-age=86400"


@cache
def _asset(name: str) -> bytes:
    return resources.files("entrypoints.http").joinpath("docs_assets", name).read_bytes()


def register_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """The two documentation pages and their assets; open like /openapi.json (no API key)."""

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{_TITLE} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=_FAVICON,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{_TITLE} - ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=_FAVICON,
            with_google_fonts=False,
        )

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        media_type = _MEDIA_TYPES.get(name)
        if media_type is None:
            raise HTTPException(status_code=404, detail=f"no documentation asset {name!r}")
        return Response(_asset(name), media_type=media_type, headers={"Cache-Control": _CACHE_CONTROL})
