"""Who may talk to a local server: the Host header (a DNS-rebinding page cannot reach a server on
127.0.0.1 under a foreign name) and, with an API key, ``Authorization: Bearer KEY``.

Bound to every interface (``0.0.0.0``/``::``), the accepted names are the local ones, this
machine's host names and addresses, and any the user adds: never "anything"."""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from traitscope.serve.protocol import ApiError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}

Scope = MutableMapping[str, Any]
ASGI = Callable[..., Awaitable[None]]


def is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _machine_names() -> set[str]:
    names = {socket.gethostname(), socket.getfqdn()}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            names.add(str(info[4][0]))
    except OSError:
        pass
    return {n for n in names if n}


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> set[str]:
    """Host header names to accept for a server bound to ``host``."""
    names = set(LOCAL_HOSTS) | {host.strip("[]")} | set(extra)
    if is_unspecified(host):
        names |= _machine_names()
    return names | {f"[{n}]" for n in names if ":" in n}


def host_name(header: str) -> str:
    if header.startswith("["):
        return header.split("]")[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """Pure ASGI (no buffering, so event streams flow): a foreign Host gets 421, a missing or
    wrong API key 401, both in OpenAI's error shape."""

    def __init__(self, app: ASGI, allowed: set[str], api_key: str | None = None) -> None:
        self.app, self.allowed, self.api_key = app, allowed, api_key

    def problem(self, scope: Scope) -> ApiError | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if host_name(host) not in self.allowed:
            return ApiError(
                421,
                f"unexpected Host header {host!r:.60}; this server answers to {sorted(self.allowed)[:6]}",
                "host",
                "invalid_host",
            )
        if self.api_key is not None:
            auth = headers.get("authorization", "")
            given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if not given or not hmac.compare_digest(given.encode(), self.api_key.encode()):
                what = "missing" if not given else "incorrect"
                return ApiError(
                    401,
                    f"{what} API key: send 'Authorization: Bearer <key>' with the --api-key value",
                    "authorization",
                    "invalid_api_key",
                    "authentication_error",
                )
        return None

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            problem = self.problem(scope)
            if problem is not None:
                await problem.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
