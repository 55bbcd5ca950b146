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
import uuid
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
from boite.serving.metrics import Metrics
from boite.serving.oip import encode_outputs, parse_infer
from boite.serving.service import Scored, Service

logger = logging.getLogger("boite.serving")
access = logging.getLogger("boite.access")

_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
JSON = "application/json"


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON, headers=headers)


def _error(exc: BoiteError, request_id: str | None = None) -> Response:
    status = exc.status if isinstance(exc, RequestError) else 400
    body: dict[str, Any] = {"error": exc.message}
    if isinstance(exc, RequestError) and exc.field:
        body["field"] = exc.field
    if exc.hint:
        body["hint"] = exc.hint
    headers = {"x-request-id": request_id} if request_id else None
    if status == 401:
        headers = {**(headers or {}), "www-authenticate": "Bearer"}
    return _json(body, status, headers)


def create_app(
    service: Service,
    *,
    tokens: Tokens | None = None,
    metrics: Metrics | None = None,
    on_shutdown: list[Callable[[], None]] | None = None,
    reload_seconds: float | None = None,
) -> FastAPI:
    metrics = metrics or Metrics()
    limit = service.env.max_body_bytes

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

    # --- shared steps -----------------------------------------------------------------

    def request_id_of(request: Request) -> str:
        given = request.headers.get("x-request-id")
        if given and _REQUEST_ID.match(given):
            return given
        return uuid.uuid4().hex

    def authorize(request: Request) -> None:
        if tokens is not None:
            tokens.check(request.headers.get("authorization"))

    async def body_of(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise RequestError("the Content-Length header is not a number", field="body")
            if int(declared) > limit:
                raise RequestError(
                    f"the body has {int(declared)} bytes; this server takes at most {limit}",
                    field="body",
                    status=413,
                    hint="Send fewer rows per request, or score in bulk with `boite predict`.",
                )
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    f"the body is over {limit} bytes, the most this server takes",
                    field="body",
                    status=413,
                )
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw:
            raise RequestError("the request has no body; send a JSON object", field="body")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RequestError(
                f"the body is not valid JSON: {exc.msg} at character {exc.pos}",
                field="body",
                hint="NaN and Infinity are not JSON; send null for a missing value.",
            ) from None

    def finish(
        endpoint: str,
        started: float,
        request_id: str,
        content: Any,
        scored: Scored | None = None,
        status: int = 200,
        model: str = "",
        version: str = "",
    ) -> Response:
        after = None
        if scored is not None:
            model, version = scored.model.name, str(scored.model.version)
            metrics.rows.labels(model, version, scored.role).inc(len(scored.predictions))
            if scored.after is not None:
                after = BackgroundTask(scored.after)
        response = Response(
            orjson.dumps(content),
            status_code=status,
            media_type=JSON,
            headers={"x-request-id": request_id},
            background=after,
        )
        elapsed = time.perf_counter() - started
        metrics.requests.labels(endpoint, model, version, str(status)).inc()
        metrics.latency.labels(endpoint, model, version).observe(elapsed)
        if access.isEnabledFor(logging.INFO):
            access.info(
                orjson.dumps(
                    {
                        "request_id": request_id,
                        "endpoint": endpoint,
                        "model": model,
                        "version": version,
                        "status": status,
                        "ms": round(elapsed * 1000, 3),
                    }
                ).decode()
            )
        return response

    def failed(
        endpoint: str, started: float, request_id: str, exc: BoiteError, name: str
    ) -> Response:
        response = _error(exc, request_id)
        known = name if name in service.routes else ""
        metrics.requests.labels(endpoint, known, "", str(response.status_code)).inc()
        metrics.latency.labels(endpoint, known, "").observe(time.perf_counter() - started)
        if access.isEnabledFor(logging.INFO):
            access.info(
                orjson.dumps(
                    {
                        "request_id": request_id,
                        "endpoint": endpoint,
                        "model": known,
                        "status": response.status_code,
                        "error": exc.message,
                        "field": getattr(exc, "field", None),
                    }
                ).decode()
            )
        return response

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

    # --- inference ---------------------------------------------------------------------

    async def infer(name: str, version: str | None, request: Request) -> Response:
        started = time.perf_counter()
        request_id = request_id_of(request)
        try:
            authorize(request)
            body = await body_of(request)
            model, _ = service.version(name, version)
            entities, features, given_id, requested = parse_infer(body, model)
            if given_id:
                request_id = given_id
            scored = service.score(
                name, version=version, entities=entities, features=features, request_id=request_id
            )
            content: dict[str, Any] = {
                "model_name": name,
                "model_version": str(scored.model.version),
                "id": request_id,
                "outputs": encode_outputs(scored.model, scored.predictions, requested),
            }
            if scored.warnings:
                content["parameters"] = {"warnings": scored.warnings}
            return finish("infer", started, request_id, content, scored)
        except BoiteError as exc:
            return failed("infer", started, request_id, exc, name)

    @app.post("/v2/models/{name}/infer", tags=["inference"], openapi_extra=schemas.INFER)
    async def infer_champion(name: str, request: Request) -> Response:
        return await infer(name, None, request)

    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        tags=["inference"],
        openapi_extra=schemas.INFER,
    )
    async def infer_version(name: str, version: str, request: Request) -> Response:
        return await infer(name, version, request)

    async def predict(name: str, version: str | None, request: Request) -> Response:
        started = time.perf_counter()
        request_id = request_id_of(request)
        try:
            authorize(request)
            body = await body_of(request)
            entities, features = schemas.parse_predict(body)
            scored = service.score(
                name, version=version, entities=entities, features=features, request_id=request_id
            )
            content: dict[str, Any] = {
                "request_id": request_id,
                "model": name,
                "version": scored.model.version,
                "role": scored.role,
                "predictions": scored.predictions,
            }
            if scored.warnings:
                content["warnings"] = scored.warnings
            return finish("predict", started, request_id, content, scored)
        except BoiteError as exc:
            return failed("predict", started, request_id, exc, name)

    @app.post("/v1/models/{name}/predict", tags=["inference"], openapi_extra=schemas.PREDICT)
    async def predict_champion(name: str, request: Request) -> Response:
        return await predict(name, None, request)

    @app.post(
        "/v1/models/{name}/versions/{version}/predict",
        tags=["inference"],
        openapi_extra=schemas.PREDICT,
    )
    async def predict_version(name: str, version: str, request: Request) -> Response:
        return await predict(name, version, request)

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

    return app
