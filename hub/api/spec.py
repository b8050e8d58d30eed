"""The API's routes and its OpenAPI 3.1 document, from one declaration per operation.

Each handler is declared with :meth:`Api.operation`: its method, path, summary, parameters and
response types (msgspec structs). The same declaration adds the aiohttp route and the document's
entry, so the document served at ``/api/v1/openapi.json`` lists exactly the routes there are,
and the JSON schemas of the answers are those of the structs the handlers encode.

Every operation may also answer what the hub answers before or around any handler
(:data:`COMMON`): the guard's 401, and a 503 when the files it reads cannot be read (a disk
fault, a journal deleted under the hub), said in one log line, never a 500 with a traceback.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Hook = Callable[[web.Application], Awaitable[None]]
Context = Callable[[web.Application], AsyncIterator[None]]
REF = "#/components/schemas/{name}"


class Problem(msgspec.Struct, frozen=True):
    """Every error the API answers: a short code and a sentence for a person."""

    error: str
    detail: str


COMMON: dict[int, tuple[str, type | None]] = {
    401: ("No operator's token, or a wrong one (hub.operator's guard)", Problem),
    503: ("The hub's files cannot be read now (a disk fault): try again", Problem),
}
"""What every operation may answer besides what it declares (which says it better, if both)."""


@dataclass(frozen=True)
class Param:
    """A path or query parameter."""

    name: str
    where: str  # "path" or "query"
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.where,
            "description": self.description,
            "required": self.required or self.where == "path",
            "schema": self.schema,
        }


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    """Relative to the API's prefix, aiohttp's ``{name}`` placeholders (OpenAPI's too)."""
    summary: str
    handler: Handler
    params: Sequence[Param]
    responses: dict[int, tuple[str, type | None]]
    """Status → (description, msgspec struct of the body or None for no JSON body)."""
    body: type | None = None
    """The JSON request body's struct, if any."""
    operation_id: str = ""


class Api:
    """Operations under one prefix; :meth:`install` adds them and ``openapi.json`` to an app."""

    def __init__(self, prefix: str = "/api/v1", *, title: str, version: str) -> None:
        self.prefix = prefix
        self.title = title
        self.version = version
        self.operations: list[Operation] = []
        self.contexts: list[Context] = []
        """Cleanup contexts of the resources' background tasks (the app's ``cleanup_ctx``)."""
        self.on_shutdown: list[Hook] = []
        """Run at shutdown, before any cleanup context closes (the journal's among them)."""

    def operation(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        params: Sequence[Param] = (),
        responses: dict[int, tuple[str, type | None]],
        body: type | None = None,
    ) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method.upper(),
                    path,
                    summary,
                    handler,
                    params,
                    responses,
                    body,
                    operation_id=handler.__name__,
                )
            )
            return handler

        return declare

    def install(self, app: web.Application) -> None:
        for op in self.operations:
            app.router.add_route(op.method, self.prefix + op.path, _unreadable_is_503(op.handler))
        document = orjson.dumps(self.document())

        async def openapi(request: web.Request) -> web.Response:
            return web.Response(body=document, content_type="application/json")

        app.router.add_get(self.prefix + "/openapi.json", openapi)
        app.cleanup_ctx.extend(self.contexts)
        app.on_shutdown.extend(self.on_shutdown)

    def document(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every operation declared."""
        types = sorted(
            {t for op in self.operations for _, t in op.responses.values() if t is not None}
            | {op.body for op in self.operations if op.body is not None}
            | {Problem},
            key=lambda t: t.__name__,
        )
        refs, components = msgspec.json.schema_components(types, ref_template=REF)
        ref_of = dict(zip(types, refs, strict=True))
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            entry: dict[str, Any] = {
                "operationId": op.operation_id,
                "summary": op.summary,
                "parameters": [p.document() for p in op.params],
                "responses": {
                    str(status): (
                        {"description": text}
                        if kind is None
                        else {
                            "description": text,
                            "content": {"application/json": {"schema": ref_of[kind]}},
                        }
                    )
                    for status, (text, kind) in sorted({**COMMON, **op.responses}.items())
                },
            }
            if op.body is not None:
                entry["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": ref_of[op.body]}},
                }
            paths.setdefault(self.prefix + op.path, {})[op.method.lower()] = entry
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}],
        }


def _unreadable_is_503(handler: Handler) -> Handler:
    """The handler, answering 503 when the files it reads fail (SQLite's or the system's error)."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (sqlite3.Error, OSError) as exc:
            name = type(exc).__name__
            log.warning(
                "%s %s: the hub's files could not be read (%s)", request.method, request.path, name
            )
            return problem(503, "unavailable", "the hub's files cannot be read now: try again")

    return guarded


def json_response(value: Any, status: int = 200) -> web.Response:
    """A struct (or list of them) as the API's JSON answer."""
    return web.Response(
        body=msgspec.json.encode(value), status=status, content_type="application/json"
    )


def problem(status: int, error: str, detail: str) -> web.Response:
    return json_response(Problem(error, detail), status)
