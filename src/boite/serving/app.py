"""The HTTP app: Open Inference Protocol v2 endpoints, a simple JSON endpoint,
Prometheus metrics, bearer tokens, body limits and JSON errors.

Handlers take the raw ``Request`` and parse the body with orjson themselves:
FastAPI's model validation would cost more than the prediction. The request
schemas are still declared (``openapi_extra``), so the OpenAPI document
describes every endpoint and can drive a fuzzer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.responses import Response

from boite import __version__
from boite.errors import BoiteError, RequestError
from boite.serving import schemas
from boite.serving.auth import Tokens
from boite.serving.endpoints import Answer, Endpoints, FastPath, error_body
from boite.serving.metrics import Metrics
from boite.serving.service import Service

logger = logging.getLogger("boite.serving")

# (model, labels, label column or None, time column or None) -> a JSON-ready summary
Feedback = Callable[[str, list[dict[str, Any]], str | None, str | None], dict[str, Any]]

_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
JSON = "application/json"


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON, headers=headers)


def _error(exc: BoiteError, request_id: str | None = None) -> Response:
    status, body, headers = error_body(exc)
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    response = Response(body, status_code=status)
    response.raw_headers = [*headers, (b"content-length", str(len(body)).encode())]
    return response


def create_app(
    service: Service,
    *,
    tokens: Tokens | None = None,
    metrics: Metrics | None = None,
    on_shutdown: list[Callable[[], None]] | None = None,
    reload_seconds: float | None = None,
    feedback: Feedback | None = None,
) -> BoiteApp:
    metrics = metrics or Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service.log is not None:
            service.log.start()
        watcher = None
        if reload_seconds:
            watcher = asyncio.create_task(_watch(reload_seconds))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if service.log is not None:
                await asyncio.to_thread(service.log.close)
            for hook in on_shutdown or []:
                hook()

    async def _watch(every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                # loading a model reads files: done in a thread, the loop keeps serving
                changed = await asyncio.to_thread(service.refresh)
            except Exception:
                logger.exception("could not follow the aliases; serving the versions loaded")
                continue
            if changed:
                metrics.reloads.set(service.reloads)

    app = FastAPI(
        title="boite model server",
        version=__version__,
        description=f"Serves the {service.env_name} environment: Open Inference Protocol v2 "
        "and a simple JSON endpoint.",
        lifespan=lifespan,
    )

    endpoints = Endpoints(service, tokens=tokens, metrics=metrics)

    def authorize(request: Request) -> None:
        endpoints.authorize(request.headers.get("authorization"))

    def respond(answer: Answer) -> Response:
        response = Response(
            answer.body,
            status_code=answer.status,
            background=None if answer.after is None else BackgroundTask(answer.after),
        )
        response.raw_headers = [
            *answer.headers,
            (b"content-length", str(len(answer.body)).encode()),
        ]
        return response

    async def call(
        endpoint: str,
        name: str,
        version: str | None,
        request: Request,
    ) -> Response:
        request_id = endpoints.request_id(request.headers.get("x-request-id"))
        try:
            authorize(request)
            endpoints.check_length(request.headers.get("content-length"))
            raw = await endpoints.read(request.stream())
        except RequestError as exc:
            return respond(endpoints.failed(endpoint, time.perf_counter(), request_id, exc, name))
        if endpoint == "infer":
            header_length = request.headers.get("inference-header-content-length")
            return respond(endpoints.infer(name, version, request_id, raw, header_length))
        return respond(endpoints.predict(name, version, request_id, raw))

    # --- health and metadata ---------------------------------------------------------

    @app.get("/v2/health/live", tags=["health"])
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready", tags=["health"])
    async def ready() -> Response:
        if service.ready:
            return _json({"ready": True})
        waiting = [n for n, r in service.routes.items() if r.champion is None]
        return _json(
            {"ready": False, "error": "no version to serve yet for " + ", ".join(waiting)}, 503
        )

    @app.get("/v2", tags=["metadata"])
    async def server_metadata(request: Request) -> Response:
        try:
            authorize(request)
        except RequestError as exc:
            return _error(exc)
        return _json({"name": "boite", "version": __version__, "extensions": []})

    def model_metadata(name: str, version: str | None) -> dict[str, Any]:
        model, _ = service.version(name, version)
        meta = model.metadata()
        meta["versions"] = [str(v) for v in service.route(name).versions()]
        return meta

    @app.get("/v2/models/{name}", tags=["metadata"])
    async def model_meta(name: str, request: Request) -> Response:
        try:
            authorize(request)
            return _json(model_metadata(name, None))
        except RequestError as exc:
            return _error(exc)

    @app.get("/v2/models/{name}/versions/{version}", tags=["metadata"])
    async def version_meta(name: str, version: str, request: Request) -> Response:
        try:
            authorize(request)
            return _json(model_metadata(name, version))
        except RequestError as exc:
            return _error(exc)

    async def model_ready(name: str, version: str | None, request: Request) -> Response:
        try:
            authorize(request)
            service.version(name, version)
        except RequestError as exc:
            if exc.status == 503:
                return _json({"name": name, "ready": False, "error": exc.message}, 503)
            return _error(exc)
        return _json({"name": name, "ready": True})

    @app.get("/v2/models/{name}/ready", tags=["health"])
    async def ready_model(name: str, request: Request) -> Response:
        return await model_ready(name, None, request)

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["health"])
    async def ready_version(name: str, version: str, request: Request) -> Response:
        return await model_ready(name, version, request)

    @app.get("/v1/models", tags=["metadata"])
    async def list_models(request: Request) -> Response:
        try:
            authorize(request)
        except RequestError as exc:
            return _error(exc)
        out = []
        for route in service.routes.values():
            entry: dict[str, Any] = {
                "name": route.name,
                route.alias: None if route.champion is None else route.champion.version,
            }
            if route.mode:
                entry["challenger"] = {
                    "alias": route.challenger_alias,
                    "version": None if route.challenger is None else route.challenger.version,
                    "mode": route.mode,
                    **({"share": route.share, "by": route.by} if route.mode == "split" else {}),
                }
            out.append(entry)
        return _json({"environment": service.env_name, "models": out})

    @app.get("/metrics", tags=["metadata"])
    async def prometheus(request: Request) -> Response:
        try:
            authorize(request)
        except RequestError as exc:
            return _error(exc)
        if service.log is not None:
            metrics.log_pending.set(service.log.pending_rows)
            metrics.log_written.set(service.log.written_rows)
        body, media = metrics.render()
        return Response(body, media_type=media)

    # --- inference (the FastPath below answers these first; the routes document them) ---

    @app.post("/v2/models/{name}/infer", tags=["inference"], openapi_extra=schemas.INFER)
    async def infer_champion(name: str, request: Request) -> Response:
        return await call("infer", name, None, request)

    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        tags=["inference"],
        openapi_extra=schemas.INFER,
    )
    async def infer_version(name: str, version: str, request: Request) -> Response:
        return await call("infer", name, version, request)

    @app.post("/v1/models/{name}/predict", tags=["inference"], openapi_extra=schemas.PREDICT)
    async def predict_champion(name: str, request: Request) -> Response:
        return await call("predict", name, None, request)

    @app.post(
        "/v1/models/{name}/versions/{version}/predict",
        tags=["inference"],
        openapi_extra=schemas.PREDICT,
    )
    async def predict_version(name: str, version: str, request: Request) -> Response:
        return await call("predict", name, version, request)

    # --- feedback ------------------------------------------------------------------------

    @app.post("/v1/models/{name}/feedback", tags=["feedback"], openapi_extra=schemas.FEEDBACK)
    async def give_feedback(name: str, request: Request) -> Response:
        """Labels for earlier predictions, by request id (and row) or by entity and time."""
        request_id = endpoints.request_id(request.headers.get("x-request-id"))
        try:
            authorize(request)
            endpoints.check_length(request.headers.get("content-length"))
            body = endpoints.parse(await endpoints.read(request.stream()))
            labels, label_column, timestamp = schemas.parse_feedback(body)
            service.route(name)
            if feedback is None:
                raise RequestError(
                    "this server does not take feedback", field="model_name", status=404
                )
            # joins and ledger writes: off the event loop, which keeps answering
            summary = await asyncio.to_thread(feedback, name, labels, label_column, timestamp)
        except BoiteError as exc:
            return _error(exc, request_id)
        return _json(summary, headers={"x-request-id": request_id})

    # --- errors that never reach a handler ---------------------------------------------

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = {404: "no such endpoint", 405: "this endpoint does not take that method"}.get(
            exc.status_code, str(exc.detail)
        )
        return _json(
            {"error": f"{message}: {request.method} {request.url.path}"},
            exc.status_code,
            dict(exc.headers or {}),
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _json({"error": first.get("msg", "invalid request"), "field": where}, 400)

    return BoiteApp(FastPath(app, endpoints), app, service)


class BoiteApp:
    """The ASGI app to serve: the fast path in front of FastAPI (``.api``)."""

    def __init__(self, asgi: FastPath, api: FastAPI, service: Service) -> None:
        self.asgi = asgi
        self.api = api
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.asgi(scope, receive, send)
