"""Running an ASGI app with uvicorn: in the foreground, or in a background thread on a free port
(for tests and for judging against a local model in-process)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from traitscope.serve.openai_compat import DEFAULT_HOST


class BackgroundServer:
    """``with BackgroundServer(app) as server: server.base_url`` -> ``http://127.0.0.1:PORT/v1``.

    The socket is bound before the thread starts, so the port is known and free of races; start()
    returns only once the server answers ``probe`` over HTTP."""

    def __init__(self, app: Any, host: str = DEFAULT_HOST, port: int = 0, probe: str | None = "/v1/models") -> None:
        self.app = app
        self.host = host
        self.probe = probe
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread exited during startup")
            if self._server.started and self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server on {self.url} did not answer within {timeout:g} s")

    def _answers(self) -> bool:
        if self.probe is None:
            return True
        try:
            return httpx.get(self.url + self.probe, timeout=2.0).status_code < 500
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run_server(app: Any, host: str = DEFAULT_HOST, port: int = 8000) -> None:
    """Serve in the foreground until interrupted (binds loopback unless a host is given)."""
    uvicorn.run(app, host=host, port=port, log_level="info")
