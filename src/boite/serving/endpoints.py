"""The inference endpoints without a web framework: headers and body bytes in, status,
body bytes and headers out.

The app calls them two ways: through FastAPI routes (which give the OpenAPI
document) and, for the two inference paths, through a plain ASGI fast path in
front of FastAPI, which skips its middleware, routing and request objects —
on a one-row request those cost more than reading the features and scoring.
Both ways run exactly this code.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from boite.errors import BoiteError, NotFoundError, RequestError, UserError
from boite.serving import accesslog, schemas
from boite.serving.auth import Tokens
from boite.serving.metrics import Metrics
from boite.serving.oip import encode_outputs, parse_infer, split_binary
from boite.serving.service import Scored, Service

_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass
class Answer:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]
    after: Callable[[], None] | None = None


def error_body(exc: BoiteError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    if isinstance(exc, RequestError):
        status = exc.status
    elif isinstance(exc, UserError):
        status = 404 if isinstance(exc, NotFoundError) else 400
    else:
        status = 500  # a fault of boite's, not of the request
    body: dict[str, Any] = {"error": exc.message}
    if isinstance(exc, RequestError) and exc.field:
        body["field"] = exc.field
    if exc.hint:
        body["hint"] = exc.hint
    headers = list(JSON_HEADERS)
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    return status, orjson.dumps(body), headers


class Endpoints:
    def __init__(self, service: Service, *, tokens: Tokens | None, metrics: Metrics) -> None:
        self.service = service
        self.tokens = tokens
        self.metrics = metrics
        self.limit = service.env.max_body_bytes
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}

    # --- the steps every request takes -------------------------------------------------

    @staticmethod
    def request_id(given: str | None) -> str:
        if given and _REQUEST_ID.match(given):
            return given
        return os.urandom(16).hex()

    def authorize(self, header: str | None) -> None:
        if self.tokens is not None:
            self.tokens.check(header)

    def check_length(self, declared: str | None) -> None:
        if declared is None:
            return
        if not declared.isdigit():
            raise RequestError("the Content-Length header is not a number", field="body")
        if int(declared) > self.limit:
            raise RequestError(
                f"the body has {int(declared)} bytes; this server takes at most {self.limit}",
                field="body",
                status=413,
                hint="Send fewer rows per request, or score in bulk with `boite predict`.",
            )

    async def read(self, chunks: AsyncIterator[bytes]) -> bytes:
        parts = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > self.limit:
                raise RequestError(
                    f"the body is over {self.limit} bytes, the most this server takes",
                    field="body",
                    status=413,
                )
            parts.append(chunk)
        return b"".join(parts)

    @staticmethod
    def parse(raw: bytes) -> Any:
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

    # --- inference ---------------------------------------------------------------------

    def infer(
        self,
        name: str,
        version: str | None,
        request_id: str,
        raw: bytes,
        header_length: str | None = None,
    ) -> Answer:
        started = time.perf_counter()
        try:
            head, binary = split_binary(raw, header_length)
            body = self.parse(head)
            model, _ = self.service.version(name, version)
            entities, features, given_id, requested = parse_infer(body, model, binary)
            if given_id:
                request_id = given_id
            scored = self.service.score(
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
            return self.answer("infer", started, request_id, content, scored)
        except BoiteError as exc:
            return self.failed("infer", started, request_id, exc, name)

    def predict(self, name: str, version: str | None, request_id: str, raw: bytes) -> Answer:
        started = time.perf_counter()
        try:
            entities, features = schemas.parse_predict(self.parse(raw))
            scored = self.service.score(
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
            return self.answer("predict", started, request_id, content, scored)
        except BoiteError as exc:
            return self.failed("predict", started, request_id, exc, name)

    def answer(
        self, endpoint: str, started: float, request_id: str, content: Any, scored: Scored
    ) -> Answer:
        model, version = scored.model.name, str(scored.model.version)
        key = (endpoint, model, version, scored.role)
        children = self._children.get(key)
        if children is None:
            # looking a labelled child up costs a lock and a tuple hash per metric
            metrics = self.metrics
            children = self._children[key] = (
                metrics.rows.labels(model, version, scored.role),
                metrics.requests.labels(endpoint, model, version, "200"),
                metrics.latency.labels(endpoint, model, version),
            )
        rows, requests, latency = children
        rows.inc(len(scored.predictions))
        elapsed = time.perf_counter() - started
        requests.inc()
        latency.observe(elapsed)
        log = accesslog.current()
        if log is not None:
            rid = orjson.dumps(request_id).decode()
            log.write(
                f'{{"request_id":{rid},"endpoint":"{endpoint}","model":"{model}",'
                f'"version":{version},"status":200,"ms":{elapsed * 1000:.3f}}}'
            )
        return Answer(
            200,
            orjson.dumps(content),
            [*JSON_HEADERS, (b"x-request-id", request_id.encode())],
            scored.after,
        )

    def failed(
        self, endpoint: str, started: float, request_id: str, exc: BoiteError, name: str
    ) -> Answer:
        status, body, headers = error_body(exc)
        known = name if name in self.service.routes else ""
        self.metrics.requests.labels(endpoint, known, "", str(status)).inc()
        self.metrics.latency.labels(endpoint, known, "").observe(time.perf_counter() - started)
        log = accesslog.current()
        if log is not None:
            log.write(
                orjson.dumps(
                    {
                        "request_id": request_id,
                        "endpoint": endpoint,
                        "model": known,
                        "status": status,
                        "error": exc.message,
                        "field": getattr(exc, "field", None),
                    }
                ).decode()
            )
        headers.append((b"x-request-id", request_id.encode()))
        return Answer(status, body, headers)


# --- the ASGI fast path ------------------------------------------------------------------

ASGIApp = Callable[..., Any]


def _route(path: str) -> tuple[str, str, str | None] | None:
    """(endpoint, model, version) for the inference paths, else None."""
    parts = path.split("/")
    # ['', 'v1', 'models', NAME, 'predict'] or with 'versions', V before the action
    if len(parts) == 5 and parts[2] == "models" and parts[3]:
        if parts[1] == "v1" and parts[4] == "predict":
            return "predict", parts[3], None
        if parts[1] == "v2" and parts[4] == "infer":
            return "infer", parts[3], None
    elif len(parts) == 7 and parts[2] == "models" and parts[4] == "versions" and parts[3]:
        if parts[5] and parts[1] == "v1" and parts[6] == "predict":
            return "predict", parts[3], parts[5]
        if parts[5] and parts[1] == "v2" and parts[6] == "infer":
            return "infer", parts[3], parts[5]
    return None


class FastPath:
    """Answers POSTs to the inference paths directly; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp, endpoints: Endpoints) -> None:
        self.app = app
        self.endpoints = endpoints

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        found = _route(scope["path"])
        if found is None:
            return await self.app(scope, receive, send)
        endpoint, name, version = found
        given_id = authorization = length = header_length = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                given_id = value.decode("latin-1")
            elif key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"content-length":
                length = value.decode("latin-1")
            elif key == b"inference-header-content-length":
                header_length = value.decode("latin-1")
        ep = self.endpoints
        request_id = ep.request_id(given_id)
        try:
            ep.authorize(authorization)
            ep.check_length(length)
            raw = await ep.read(_chunks(receive))
        except RequestError as exc:
            answer = ep.failed(endpoint, time.perf_counter(), request_id, exc, name)
        else:
            if endpoint == "predict":
                answer = ep.predict(name, version, request_id, raw)
            else:
                answer = ep.infer(name, version, request_id, raw, header_length)
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
        )
        await send({"type": "http.response.body", "body": answer.body})
        if answer.after is not None:
            import asyncio

            # the shadow scores after the answer has gone, on a worker thread
            asyncio.get_running_loop().run_in_executor(None, answer.after)


async def _chunks(receive: Any) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
