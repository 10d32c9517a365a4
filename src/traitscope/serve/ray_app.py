"""The same server as a Ray Serve deployment: ``traitscope serve --replicas N`` (a local Ray
cluster) or ``--ray-address ADDR`` (join a running one).

Each replica loads the model and runs the app from :func:`traitscope.serve.create_app`, with its
own batcher; Ray Serve's proxy, router (load balancing) and health checks sit in front. A replica
asks for one GPU where the cluster has GPUs, else one CPU. Ray is imported only here, and only
when asked for, so traitscope works without it installed."""

from __future__ import annotations

from typing import Any

from traitscope.errors import TraitscopeError

APP_NAME = "traitscope"


def require_ray() -> Any:
    try:
        import ray
        from ray import serve  # noqa: F401
    except ImportError:
        raise TraitscopeError(
            "--replicas / --ray-address / --backend ray need Ray Serve, which is not installed; "
            "`pip install 'traitscope[ray]'` (or 'ray[serve]'), or run without them in one process"
        ) from None
    return ray


def _builder(model: str, settings: dict[str, Any], device_map: str | None, max_memory: dict | None) -> Any:
    """Runs on each replica: load the model, build the app."""

    def build() -> Any:
        import torch

        from traitscope.models import load_model
        from traitscope.serve.openai_compat import create_app

        torch.set_num_threads(1)  # replicas share the machine's cores; more threads only spin
        lm = load_model(model, device_map=device_map, max_memory=max_memory)
        return create_app(lm, **settings)

    return build


def deployment(
    model: str,
    settings: dict[str, Any],
    replicas: int,
    device_map: str | None = None,
    max_memory: dict | None = None,
    num_gpus: float | None = None,
    num_cpus: float = 1.0,
) -> Any:
    """The bound Ray Serve application (pass to ``serve.run``)."""
    ray = require_ray()
    from ray import serve

    if num_gpus is None:
        num_gpus = 1.0 if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) >= 1 else 0.0

    class TraitscopeReplica:
        """One model, one batcher; Ray routes requests here."""

    ingress = serve.ingress(_builder(model, settings, device_map, max_memory))(TraitscopeReplica)
    queue = int(settings.get("max_queue", 64)) + int(settings.get("max_batch", 16))
    dep = serve.deployment(
        ingress,
        name="TraitscopeReplica",
        num_replicas=replicas,
        max_ongoing_requests=queue,  # Ray's default (5) would starve the batcher
        ray_actor_options={"num_cpus": 0 if num_gpus else num_cpus, "num_gpus": num_gpus},
        health_check_period_s=10,
    )
    return dep.bind()


def start(
    model: str,
    settings: dict[str, Any],
    replicas: int,
    address: str | None,
    port: int,
    device_map: str | None = None,
    max_memory: dict | None = None,
    num_cpus: float = 1.0,
    blocking: bool = False,
) -> None:
    """Start (or join) a Ray cluster, then Serve on ``host:port`` with the app."""
    ray = require_ray()
    from ray import serve

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    host = settings.get("host", "127.0.0.1")
    serve.start(http_options={"host": host, "port": port})
    app = deployment(model, settings, replicas, device_map, max_memory, num_cpus=num_cpus)
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=blocking)


def stop() -> None:
    ray = require_ray()
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()


def run_ray(
    model: str,
    settings: dict[str, Any],
    replicas: int,
    address: str | None,
    port: int,
    device_map: str | None,
    max_memory: dict | None,
) -> None:
    """The CLI path: serve in the foreground until Ctrl-C, then shut Serve down."""
    from rich.console import Console

    console = Console()
    host = settings.get("host", "127.0.0.1")
    console.print(f"traitscope serve: {model}, {replicas} Ray Serve replica(s), on http://{host}:{port}/v1")
    try:
        start(model, settings, replicas, address, port, device_map, max_memory, blocking=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
