"""The dashboard: a FastAPI app serving a static front end and a read-only JSON API over a run
root (``<run-root>/<model-slug>/<trait>/``), plus the Live view's event stream.

API (GET unless said; names are single path segments, checked and resolved inside the run root):
  /api/runs                              models, their traits (what each has) and traces
  /api/extraction/{model}/{trait}        evaluation.json as layer × method grids per site
  /api/steering/{model}/{trait}          steering/results.jsonl as layer × strength grids + answers
  /api/trace/{path}                      one monitor trace (path relative to the run root)
  /api/live/info/{model}                 traits with vectors, whether steering is available
  POST /api/live/v1/{model}/chat/completions   the serving endpoint of `traitscope serve` for this model
                          (OpenAI chat completions + the `traitscope` field; stream: true for SSE)
Missing or damaged files give 200 with a ``problems`` list, so a view shows what is missing.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.datastructures import MutableHeaders

from traitscope.errors import TraitscopeError
from traitscope.models.loader import LoadedModel
from traitscope.report.data import NO_STEERING, extraction_grids, steering_grids
from traitscope.steering.ab import MAX_NLL_DELTA
from traitscope.store.layout import RunDir
from traitscope.web.files import OutsideRoot, RunRoot, read_json, read_jsonl
from traitscope.web.live import LiveEngine

STATIC = Path(__file__).parent / "static"
MAX_URL_CHARS = 8192
MAX_BODY_BYTES = 16 * 1024
DEFAULT_HOST = "127.0.0.1"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Everything is served from here; no CDN, no inline script.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
}


class Guard:
    """Pure-ASGI wrapper (no buffering, so event streams flow): refuses long URLs, request
    bodies and Host headers other than the bound one (a DNS-rebinding page cannot then read a
    local dashboard), and adds the security headers to every response."""

    def __init__(self, app: Any, allowed_hosts: set[str]) -> None:
        self.app = app
        self.allowed = allowed_hosts

    def _problem(self, scope: dict) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        size = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        host = headers.get("host", "")
        host_name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        length = headers.get("content-length", "0").strip() or "0"
        if size > MAX_URL_CHARS:
            return 414, "request URL too long"
        if not length.isdigit() or int(length) > MAX_BODY_BYTES or "chunked" in headers.get("transfer-encoding", ""):
            return 413, "request body too large"
        if self.allowed and host_name not in self.allowed:
            return 421, f"unexpected Host header {host!r:.60}"
        return None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS.items():
                    headers.setdefault(k, v)
            await send(message)

        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send_secured)
        else:
            await JSONResponse({"error": problem[1]}, status_code=problem[0])(scope, receive, send_secured)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    run_root: Path,
    loader: Callable[[str], LoadedModel] | None = None,
    host: str = DEFAULT_HOST,
) -> FastAPI:
    """The dashboard app over ``run_root``. ``loader(model_slug)`` loads a model for the Live
    view (default: :func:`traitscope.models.load_model` of the name recorded in the vectors)."""
    root = RunRoot(run_root)
    live = LiveEngine(root, loader, host)
    app = FastAPI(title="traitscope", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.root = root
    app.state.live = live

    @app.exception_handler(OutsideRoot)
    async def outside(_: Request, exc: OutsideRoot) -> JSONResponse:
        return _error(404, f"not found ({exc})")

    @app.exception_handler(TraitscopeError)
    async def bad_input(_: Request, exc: TraitscopeError) -> JSONResponse:
        return _error(400, str(exc))

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/runs")
    def runs() -> dict[str, Any]:  # sync: file reads run in the thread pool, not the event loop
        models = []
        for m in root.models():
            traits = []
            for t in root.traits(m):
                d = RunDir(root.path(m, t))
                traits.append(
                    {
                        "name": t,
                        "evaluation": d.evaluation.is_file(),
                        "steering": d.steering_results.is_file(),
                        "vectors": len(root.vector_files(m, t)),
                    }
                )
            models.append({"slug": m, "traits": traits, "traces": root.traces(m)})
        problems = [] if root.root.is_dir() else [f"run root {root.root} does not exist"]
        if root.root.is_dir() and not models:
            problems.append("the run root holds no model folders yet; run `traitscope extract` first")
        return {"root": root.root.name or str(root.root), "models": models, "problems": problems}

    def _trait_dir(model: str, trait: str) -> Path | JSONResponse:
        d = root.path(model, trait)
        if not d.is_dir():
            return _error(404, f"no run for trait {trait!r} of model {model!r} in the run root")
        return d

    @app.get("/api/extraction/{model}/{trait}")
    def extraction(model: str, trait: str) -> Any:
        d = _trait_dir(model, trait)
        if isinstance(d, JSONResponse):
            return d
        read = read_json(RunDir(d).evaluation, f"{model}/{trait}/evaluation.json")
        out: dict[str, Any] = {"model": model, "trait": trait, "problems": list(read.problems), "available": False}
        if isinstance(read.data, dict):
            try:
                out |= extraction_grids(read.data) | {"available": True, "model": model}
            except (TypeError, ValueError, AttributeError) as exc:
                out["problems"].append(f"evaluation.json has an unexpected shape ({exc})")
            if out.get("skipped_rows"):
                out["problems"].append(f"{out['skipped_rows']} result row(s) lack method/site/layer; skipped")
        elif read.data is not None:
            out["problems"].append("evaluation.json is not a JSON object")
        out["vectors"] = root.vector_files(model, trait)
        if not out["vectors"]:
            out["problems"].append("no vector files (vectors/<position>/<site>/<method>.safetensors)")
        return out

    @app.get("/api/steering/{model}/{trait}")
    def steering(model: str, trait: str) -> Any:
        d = _trait_dir(model, trait)
        if isinstance(d, JSONResponse):
            return d
        path = RunDir(d).steering_results
        if not path.is_file():
            return {"model": model, "trait": trait, "present": False, "message": NO_STEERING, "problems": []}
        read = read_jsonl(path, f"{model}/{trait}/steering/results.jsonl")
        rows = read.data or []
        out = {
            "model": model, "trait": trait, "present": True, "rows": rows, "problems": list(read.problems),
            "ab_fluency_limit": MAX_NLL_DELTA,  # the pick_ab rule's limit, shown on A/B heatmaps
        }  # fmt: skip
        try:
            out |= steering_grids(rows)
        except (TypeError, ValueError, AttributeError) as exc:
            out["problems"].append(f"results.jsonl rows have an unexpected shape ({exc})")
            out |= {"groups": [], "baselines": []}
        if not rows:
            out["problems"].append("results.jsonl holds no complete rows yet")
        return out

    @app.get("/api/trace/{path:path}")
    def trace(path: str) -> Any:
        p = root.rel_path(path)
        if p.suffix != ".json" or "monitor" not in p.relative_to(root.root).parts:
            return _error(404, "not a monitor trace")
        read = read_json(p, path)
        if read.data is None:
            return {"path": path, "trace": None, "problems": read.problems}
        from traitscope.monitor.trace import validate_trace

        try:
            if isinstance(read.data, dict) and str(read.data.get("schema", "")).startswith("traitscope.diff/"):
                d = read.data  # base-vs-finetuned (`traitscope diff`): two monitor traces on the same tokens
                return {
                    "path": path,
                    "diff": d | {k: validate_trace(d.get(k), f"{path} ({k})") for k in ("base", "finetuned")},
                    "problems": [],
                }
            return {"path": path, "trace": validate_trace(read.data, path), "problems": []}
        except TraitscopeError as exc:
            return {"path": path, "trace": None, "problems": [str(exc)]}

    @app.get("/api/live/info/{model}")
    async def live_info(model: str) -> Any:
        if not root.path(model).is_dir():
            return _error(404, f"no model folder {model!r} in the run root")
        return await asyncio.to_thread(live.info, model)

    @app.post("/api/live/v1/{model}/chat/completions", response_model=None)
    async def live_chat(model: str, request: Request) -> Any:
        """The serving endpoint (``traitscope serve``'s) for this run root's model folder."""
        from traitscope.serve.protocol import ApiError, ChatRequest, bad, param_path

        if not root.path(model).is_dir():
            return _error(404, f"no model folder {model!r} in the run root")
        try:
            req = ChatRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = param_path(first.get("loc", ()))
            return bad(f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}", where).response()
        server = await asyncio.to_thread(live.server, model)
        req.model = None  # the model is the folder's
        try:
            return await (server.stream(req) if req.stream else server.complete(req))
        except ApiError as exc:
            return exc.response()

    app.add_middleware(Guard, allowed_hosts=allowed_hosts(host))
    return app


def allowed_hosts(host: str) -> set[str]:
    """Host headers to accept: the local names and the bound address; bound to every interface,
    also this machine's names and addresses (:func:`traitscope.serve.guard.allowed_hosts`), never
    "anything"."""
    from traitscope.serve.guard import allowed_hosts as serving_hosts

    return serving_hosts(host)


def bind(host: str = DEFAULT_HOST, port: int = 0) -> socket.socket:
    """A listening socket, bound before the server starts, so a busy port is one clear error
    and port 0 gives a free port whose number is known."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise TraitscopeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def make_server(app: Any, log_level: str = "warning") -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off", timeout_graceful_shutdown=2))


def serve(run_root: Path, host: str = DEFAULT_HOST, port: int = 8000) -> None:
    """Run the dashboard in the foreground (Ctrl-C stops it)."""
    sock = bind(host, port)
    make_server(create_app(run_root, host=host)).run(sockets=[sock])
