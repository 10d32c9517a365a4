"""`traitscope serve`: the OpenAI-compatible server, in this process or as a Ray Serve deployment."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from traitscope.cli.app import app, console
from traitscope.cli.common import ADAPTER_OPT
from traitscope.errors import TraitscopeError
from traitscope.models.registry import DEFAULT_MODEL


def check_exposure(host: str, api_key: str | None) -> None:
    """Every interface without a key would hand the model to anyone on the network."""
    from traitscope.serve.guard import LOCAL_HOSTS, is_unspecified

    if is_unspecified(host) and not api_key:
        raise TraitscopeError(
            f"--host {host} serves every network interface; give --api-key KEY (or TRAITSCOPE_API_KEY) "
            "so only clients holding the key get answers, or bind 127.0.0.1"
        )
    if host not in LOCAL_HOSTS and not api_key:
        console.print(f"[yellow]warning:[/] --host {host} without --api-key: anyone who reaches it can use the model")


@app.command()
def serve(
    adapter: Path | None = ADAPTER_OPT,
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Bundled alias, local directory or HF id."),
    run_root: Path | None = typer.Option(
        Path("runs"), "--run-root", help="Holds <model-slug>/<trait>/ run directories (vectors to steer/monitor)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; 0.0.0.0 needs --api-key."),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    max_batch: int = typer.Option(16, "--max-batch", min=1, max=256, help="Requests generated as one batch."),
    max_queue: int = typer.Option(64, "--max-queue", min=1, help="Waiting requests beyond this get 429."),
    batch_wait_ms: float = typer.Option(
        20.0, "--batch-wait-ms", min=0.0, max=1000.0, help="How long a batch waits for requests arriving with it."
    ),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1, help="Cap on a request's max_tokens."),
    timeout: float = typer.Option(300.0, "--timeout", min=0.1, help="Seconds before a request gets 504."),
    api_key: str | None = typer.Option(
        None, "--api-key", help="Require 'Authorization: Bearer KEY' [default: $TRAITSCOPE_API_KEY, else none]."
    ),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Extra Host header names to answer to."),
    replicas: int | None = typer.Option(None, "--replicas", min=1, help="Run N replicas as a Ray Serve deployment."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Join this Ray cluster ('auto': the local one)."
    ),
    device_map: str | None = typer.Option(None, "--device-map", help="'auto': spread the model over devices."),
    max_memory: str | None = typer.Option(None, "--max-memory", help="Per-device caps, e.g. '0=20GiB,cpu=60GiB'."),
) -> None:
    """Serve the model over an OpenAI-compatible API with per-request steering and monitoring.

    Clients send traitscope's options in the request field `traitscope` (see the README); concurrent
    requests are generated together as one batch. Ctrl-C stops it."""
    from traitscope.models.placement import parse_max_memory

    api_key = api_key or os.environ.get("TRAITSCOPE_API_KEY") or None
    check_exposure(host, api_key)
    memory = parse_max_memory(max_memory)
    if run_root is not None and not run_root.is_dir():
        console.print(f"[yellow]note:[/] run root {run_root} does not exist: requests cannot steer or monitor")
    settings = dict(
        run_root=run_root,
        max_tokens_cap=max_tokens,
        max_batch=max_batch,
        max_queue=max_queue,
        batch_wait_s=batch_wait_ms / 1000,
        timeout_s=timeout,
        api_key=api_key,
        host=host,
        extra_hosts=tuple(allow_host),
    )
    if replicas is not None or ray_address is not None:
        from traitscope.serve.ray_app import run_ray

        if adapter is not None:
            raise TraitscopeError("--adapter works with the single-process server; leave out --replicas/--ray-address")

        run_ray(model, settings, replicas or 1, ray_address, port, device_map, memory)
        return
    from traitscope.models import load_model
    from traitscope.serve import create_app
    from traitscope.web.app import bind, make_server

    sock = bind(host, port)  # a busy port fails here, as one line, before the model loads
    with console.status(f"loading {model}"):
        lm = load_model(model, device_map=device_map, max_memory=memory, adapter=adapter)
    application = create_app(lm, **settings)  # type: ignore[arg-type]
    shown = f"[{host}]" if ":" in host else host
    console.print(f"traitscope serve: {lm.name} on [bold]http://{shown}:{sock.getsockname()[1]}/v1[/]")
    try:
        make_server(application, log_level="info").run(sockets=[sock])
    finally:
        application.state.batcher.close()
