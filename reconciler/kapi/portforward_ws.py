"""The WebSocket-only port-forward protocol (placeholder: answered 400 until written)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from . import views

if TYPE_CHECKING:
    from .portforward import Target


async def serve(request: web.Request, target: Target) -> web.StreamResponse:
    message = "port-forward over WebSocket needs the subprotocol SPDY/3.1+portforward.k8s.io"
    return web.json_response(views.status(400, "BadRequest", message), status=400)
