"""The status page at ``/esgf-nm/``: static HTML, CSS and a small script, served by every agent.

The page holds no data of its own: its script reads the public status document
(``/esgf-nm/v1/status``) every round or so and draws it (the supernode graph, members by
server, map version, round and leader, the last decisions; on a member, its own view). Nothing
is loaded from elsewhere (nodes may have no internet), and a strict Content-Security-Policy
keeps it that way: scripts, styles and fetches only from the agent itself.

The assets ship as package data (``runtime/static``) and are read once, when the routes are
built.
"""

from __future__ import annotations

from importlib import resources
from typing import Dict, List, Tuple

from esgf_nodemgr.runtime.httpserver import Request, Response, Route, ServerError

#: Base path of the page (the prototype had a placeholder here).
PAGE_PATH = "/esgf-nm/"
STATIC_PREFIX = "/esgf-nm/static/"

#: Asset file name -> Content-Type.
ASSETS: Dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}

#: Same-origin only: no inline script, no external anything, no framing.
SECURITY_HEADERS: Tuple[Tuple[str, str], ...] = (
    ("Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    # Small files; always revalidate so that an upgraded agent serves its new page at once.
    ("Cache-Control", "no-cache"),
)


def load_assets() -> Dict[str, bytes]:
    """The page's files from the installed package (``ServerError`` when one is missing)."""
    folder = resources.files("esgf_nodemgr.runtime").joinpath("static")
    out: Dict[str, bytes] = {}
    for name in ASSETS:
        try:
            out[name] = folder.joinpath(name).read_bytes()
        except OSError as exc:
            raise ServerError(f"status page asset {name} is missing from the package: "
                              f"{exc}") from exc
    return out


def routes() -> List[Route]:
    """Public routes of the page: ``/esgf-nm/``, its assets, and a redirect from ``/esgf-nm``."""
    assets = load_assets()

    def serve(name: str) -> Route:
        body = assets[name]
        ctype = ASSETS[name]
        path = PAGE_PATH if name == "index.html" else STATIC_PREFIX + name

        def handler(_req: Request) -> Response:
            return Response(status=200, body=body, content_type=ctype,
                            headers=SECURITY_HEADERS)

        return Route("GET", path, handler, auth="public")

    def redirect(_req: Request) -> Response:
        return Response(status=308, body=b"", content_type="text/plain; charset=utf-8",
                        headers=(("Location", PAGE_PATH),))

    return [serve(name) for name in ASSETS] + [
        Route("GET", PAGE_PATH.rstrip("/"), redirect, auth="public")]


__all__ = ["ASSETS", "PAGE_PATH", "SECURITY_HEADERS", "load_assets", "routes"]
