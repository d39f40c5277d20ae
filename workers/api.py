"""The read-only HTTP JSON API `serve` answers queries on: the process that already holds the model and the vectors.

A one-shot `newsclust search` had to import torch and load the model first (13.5 s of a 17 s query on a loaded
2-core machine); serve has both in memory, so a query costs an embedding and a scan of the vector copy. Starlette
endpoints run in uvicorn's thread pool (sync handlers), so a slow query never blocks the server's loop, and none of
them takes the home's write lock: a rebuild in progress does not hold answers up.

Loopback by default; any other address needs `api_token` (sent as `Authorization: Bearer TOKEN`). Where serve
listens is written to HOME/state/api.json (with the resolved home), which the CLI reads to find it.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import threading
from pathlib import Path

from service.api_client import api_file

log = logging.getLogger("newsclust.api")

MAX_K = 1000
MAX_QUERY_CHARS = 2000


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BadRequest(Exception):
    """A query parameter that cannot be used: answered 400 with the reason, never a traceback."""


def _int_param(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r}: a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name}={value}: from {low} to {high}")
    return value


def build_api(app, live_status=None):
    """The Starlette application over a wired App. live_status() gives what only the serving process knows."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import JSONResponse, RedirectResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from service import usecases

    s = app.settings

    def answer(data, status: int = 200):
        return JSONResponse(json.loads(json.dumps(data, default=str)), status_code=status)

    def search(request):
        q = (request.query_params.get("q") or "").strip()
        if not q:
            raise BadRequest("q: the text to look for is missing (GET /search?q=TEXT&k=N)")
        if len(q) > MAX_QUERY_CHARS:
            raise BadRequest(f"q: {len(q)} characters; at most {MAX_QUERY_CHARS}")
        k = _int_param(request, "k", 10, 1, MAX_K)
        try:
            hits = usecases.search(app, q, k)
        except LookupError as exc:
            return answer({"error": str(exc)}, 503)
        return answer({"query": q, "k": k, "hits": hits})

    def _detail(kind: str, fetch, request):
        raw = request.path_params["key"]
        try:
            key = int(raw)
        except ValueError:
            raise BadRequest(f"{kind} id {raw!r}: a whole number") from None
        detail = fetch(app, key)
        if detail is None:
            return answer({"error": f"no {kind} {key}"}, 404)
        return answer(detail)

    def story(request):
        return _detail("story", usecases.story_detail, request)

    def topic(request):
        return _detail("topic", usecases.topic_detail, request)

    def status(request):
        return answer(usecases.status(app, serving_pid=os.getpid(), live=live_status() if live_status else None))

    def alerts(request):
        limit = _int_param(request, "limit", 50, 1, 1000)
        return answer({"alerts": app.alerts.latest(limit)})

    def home(request):
        return RedirectResponse("/report/latest.html")

    async def bad_request(request, exc):
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def http_error(request, exc):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    async def server_error(request, exc):
        log.error("API %s failed: %s: %s", request.url.path, type(exc).__name__, exc, exc_info=exc)
        from service.faults import transient_cause

        cause = transient_cause(exc)
        if cause:
            return JSONResponse({"error": f"{cause}; try again shortly"}, status_code=503)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the serve log has the details"}, status_code=500)

    class TokenCheck(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {s.api_token}".encode()):
                return JSONResponse({"error": "this API needs its token: Authorization: Bearer TOKEN (setting api_token)"}, status_code=401)
            return await call_next(request)

    s.reports_dir.mkdir(parents=True, exist_ok=True)
    routes = [
        Route("/", home),
        Route("/search", search),
        Route("/stories/{key}", story),
        Route("/topics/{key}", topic),
        Route("/status", status),
        Route("/alerts", alerts),
        Mount("/report", StaticFiles(directory=s.reports_dir, html=True, check_dir=False)),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TokenCheck)] if s.api_token else [],
                     exception_handlers={BadRequest: bad_request, HTTPException: http_error, Exception: server_error})


class ApiServer:
    """uvicorn in a thread of serve, announced in HOME/state/api.json while it listens."""

    def __init__(self, app, live_status=None):
        import uvicorn

        s = app.settings
        if not is_loopback(s.api_host) and not s.api_token:
            from service.config import SettingsError

            raise SettingsError(f"api_host = {s.api_host!r} is not a loopback address: set api_token too (or api = false)")
        self.settings = s
        config = uvicorn.Config(build_api(app, live_status), host=s.api_host, port=s.api_port, log_level="warning",
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)
        self.url: str | None = None

    def start(self, timeout: float = 15.0) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the query API did not start on {self.settings.api_host}:{self.settings.api_port} "
                                   "(is the port taken? setting api_port)")
            time.sleep(0.02)
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        write_api_file(self.settings.home, self.url, os.getpid(), bool(self.settings.api_token))
        return self.url

    def stop(self) -> None:
        remove_api_file(self.settings.home, os.getpid())
        self.server.should_exit = True
        self.thread.join(timeout=5)


def write_api_file(home: Path, url: str, pid: int, token: bool) -> None:
    from service.files import atomic_write

    atomic_write(api_file(home), json.dumps({"url": url, "pid": pid, "home": str(Path(home).resolve()), "token": token}))


def remove_api_file(home: Path, pid: int) -> None:
    path = api_file(home)
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass
