"""``sensorwatch ui``: the pages, on Starlette, served by uvicorn.

* ``/``: the fleet at a glance: sensors by state, open incidents by severity, the no-model and
  learning counts, then the sensors worst first (``?state=`` narrows them).
* ``/sensor/<sensor>``: one chart over a chosen range (``?range=15m|1h|6h|24h``): window
  means, the score against the threshold, incident spans and model version changes; then
  the sensor's incidents with their explanations. Alerts link here.
* ``/models`` and ``/models/<name>``: the repository's models, each version's state on the
  server, its training report and plots.
* ``/events``: server-sent events; open pages refresh their parts when the fleet changes.
* ``/api/overview``, ``/api/sensors``, ``/api/sensor/<sensor>``: the same facts as JSON.

Pages are rendered on the server (Jinja2 templates, the chart as inline SVG), so a page is one
request and a few kilobytes whatever the fleet's size; the only script follows the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sensorwatch.core.config import Settings
from sensorwatch.core.feedback import verdict_phrase
from sensorwatch.core.incidents import explanation_phrase, severity_band
from sensorwatch.core.retry import wait_until
from sensorwatch.dashboard.chart import render
from sensorwatch.dashboard.feed import TopicFeed
from sensorwatch.dashboard.models import ModelCatalogue
from sensorwatch.dashboard.store import STATES, FleetStore
from sensorwatch.serving.repository import RepositoryError

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
#: The ranges the sensor page offers; any ``<n>s|m|h`` up to ``dashboard.range_s`` is accepted.
RANGES = ("15m", "1h", "6h", "24h")
_RANGE = re.compile(r"(\d+(?:\.\d+)?)([smh])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000}


def parse_range(text: str, longest_s: float) -> int:
    """``"6h"`` -> 21600000 ms; longer than ``longest_s`` is an error, not a silent cut.

    >>> parse_range("15m", 86400)
    900000
    """
    m = _RANGE.fullmatch(text.strip())
    if not m:
        raise HTTPException(400, f"range {text!r}: give a number and s, m or h, e.g. 1h")
    ms = int(float(m.group(1)) * _UNIT_MS[m.group(2)])
    if not 0 < ms <= longest_s * 1000:
        raise HTTPException(400, f"range {text!r}: the dashboard keeps {longest_s / 3600:g} h (dashboard.range_s)")
    return ms


def _utc(ms: float | None) -> str:
    if not ms:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + " UTC"


def build_app(settings: Settings, store: FleetStore, feed: TopicFeed | None = None) -> Starlette:
    """The web application over ``store`` (``feed``: shown on the overview when given)."""
    cfg = settings.dashboard
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(
        utc=_utc, band=severity_band, why=explanation_phrase, verdict=verdict_phrase, ranges=RANGES, states=STATES
    )
    catalogue = ModelCatalogue(settings.serving)

    def feed_facts() -> dict[str, Any]:
        if feed is None:
            return {}
        return {"unreadable": feed.unreadable, "last_error": feed.last_error, "caught_up": feed.caught_up.is_set()}

    def overview() -> dict[str, Any]:
        return {**store.overview(), "feed": feed_facts()}

    async def fleet(request: Request) -> Response:
        state = request.query_params.get("state") or None
        if state is not None and state not in STATES:
            raise HTTPException(400, f"state {state!r}: one of {', '.join(STATES)}")
        ctx = {"ov": overview(), "rows": store.rows(state), "state": state}
        name = "_sensors.html" if request.query_params.get("fragment") else "fleet.html"
        return templates.TemplateResponse(request, name, ctx)

    def chart_of(sensor: str, range_text: str) -> str:
        view = store.series(sensor, parse_range(range_text, cfg.range_s))
        if view is None:
            raise HTTPException(404, f"no records of {sensor!r} yet")
        return render(view)

    async def sensor_page(request: Request) -> Response:
        sensor = request.path_params["sensor"]
        facts = store.sensor(sensor)
        if facts is None:
            raise HTTPException(404, f"no records of {sensor!r} yet")
        rng = request.query_params.get("range", "1h")
        ctx = {"s": facts, "range": rng, "chart": chart_of(sensor, rng)}
        return templates.TemplateResponse(request, "sensor.html", ctx)

    async def chart(request: Request) -> Response:
        svg = chart_of(request.path_params["sensor"], request.query_params.get("range", "1h"))
        return Response(svg, media_type="image/svg+xml")

    async def models(request: Request) -> Response:
        match = request.query_params.get("match", "")
        names = catalogue.names(match)
        ctx = {"names": names[:500], "more": max(0, len(names) - 500), "match": match}
        return templates.TemplateResponse(request, "models.html", ctx)

    async def model_page(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            versions, why = await asyncio.to_thread(catalogue.versions, name)
        except RepositoryError as exc:
            raise HTTPException(404, str(exc)) from exc
        if not versions:
            raise HTTPException(404, f"no model {name!r} in {catalogue.repo.base}")
        ctx = {"name": name, "versions": versions, "server_error": why, "target": settings.serving.target}
        return templates.TemplateResponse(request, "model.html", ctx)

    async def asset(request: Request) -> Response:
        p = request.path_params
        try:
            return FileResponse(catalogue.asset(p["name"], int(p["version"]), p["file"]))
        except RepositoryError as exc:
            raise HTTPException(404, str(exc)) from exc

    async def events(request: Request) -> Response:
        from sse_starlette.sse import EventSourceResponse

        async def stream():
            seen = -1
            while not await request.is_disconnected():
                if store.revision != seen:
                    seen = store.revision
                    yield {"event": "overview", "data": json.dumps(overview())}
                await asyncio.sleep(cfg.live_s)

        return EventSourceResponse(stream(), ping=15)

    async def api_overview(_request: Request) -> Response:
        return JSONResponse(overview())

    async def api_sensors(request: Request) -> Response:
        limit = min(int(request.query_params.get("limit", "200")), 100_000)
        return JSONResponse(store.rows(request.query_params.get("state") or None, limit))

    async def api_sensor(request: Request) -> Response:
        facts = store.sensor(request.path_params["sensor"])
        if facts is None:
            raise HTTPException(404, "no such sensor")
        return JSONResponse(facts)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True, "sensors": len(store), "caught_up": feed_facts().get("caught_up")})

    routes = [
        Route("/", fleet),
        Route("/sensor/{sensor:path}", sensor_page),
        Route("/chart/{sensor:path}", chart),
        Route("/models", models),
        Route("/models/{name}", model_page),
        Route("/models/{name}/{version:int}/{file}", asset),
        Route("/events", events),
        Route("/api/overview", api_overview),
        Route("/api/sensors", api_sensors),
        Route("/api/sensor/{sensor:path}", api_sensor),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        yield
        catalogue.close()

    return Starlette(routes=routes, lifespan=lifespan)


class Dashboard:
    """The feed and the web server together, on threads: what ``sensorwatch ui``, the demo and
    the tests run. ``url`` is where it answers once :meth:`start` returned. ``store`` and
    ``follow=False``: serve a store filled by the caller, with no feed (the benchmark)."""

    def __init__(self, settings: Settings, store: FleetStore | None = None, follow: bool = True):
        import uvicorn

        self.settings = settings
        self.store = store or FleetStore(settings.dashboard, int(settings.job.window_s * 1000))
        self.feed = TopicFeed(settings, self.store) if follow else None
        cfg = settings.dashboard
        self.server = uvicorn.Server(
            uvicorn.Config(
                build_app(settings, self.store, self.feed),
                host=cfg.host,
                port=cfg.port,
                log_level="warning",
                timeout_graceful_shutdown=2,
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        sock = self.server.servers[0].sockets[0].getsockname()
        host = "127.0.0.1" if sock[0] in ("0.0.0.0", "::") else sock[0]
        return f"http://{host}:{sock[1]}"

    def start(self, timeout_s: float = 30.0) -> Dashboard:
        if self.feed is not None:
            self.feed.start()
        thread = self._thread = threading.Thread(target=self.server.run, name="dashboard-http", daemon=True)
        thread.start()
        wait_until(lambda: self.server.started or not thread.is_alive(), timeout_s)
        if not self.server.started:
            self.stop()
            cfg = self.settings.dashboard
            raise RuntimeError(f"the dashboard did not start on {cfg.host}:{cfg.port}")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self.feed is not None:
            self.feed.stop()

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
