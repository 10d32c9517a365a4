"""`traitscope view`: the dashboard over a run root (extraction, steering, dynamics, live)."""

from __future__ import annotations

from pathlib import Path

import typer

from traitscope.cli.app import app, console
from traitscope.cli.common import ADAPTER_OPT
from traitscope.errors import TraitscopeError


@app.command()
def view(
    adapter: Path | None = ADAPTER_OPT,
    run_root: Path = typer.Argument(Path("runs"), help="Folder holding <model-slug>/<trait>/ run directories."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; the default is this machine only."),
) -> None:
    """Serve the dashboard: extraction heatmaps, steering results, monitor traces and a live view.

    Reads only the files the pipeline wrote under RUN_ROOT; the live view loads the model on first
    use. Ctrl-C stops it."""
    from traitscope.web.app import bind, create_app, make_server

    if not run_root.is_dir():
        raise TraitscopeError(f"run root {run_root} is not a folder; run `traitscope extract` first or name one")
    from traitscope.serve.guard import LOCAL_HOSTS, allowed_hosts

    if host not in LOCAL_HOSTS:
        names = ", ".join(sorted(allowed_hosts(host) - LOCAL_HOSTS)) or host
        console.print(
            f"[yellow]warning:[/] --host {host}: the dashboard (run files and the Live view's model) is open to "
            f"anyone who can reach this machine; it answers only to Host {names} and the local names",
            soft_wrap=True,
        )
    sock = bind(host, port)  # a busy port fails here, as one line
    shown = f"[{host}]" if ":" in host else host
    console.print(f"traitscope dashboard on [bold]http://{shown}:{sock.getsockname()[1]}/[/] over {run_root.resolve()}")
    make_server(create_app(run_root, _adapter_loader(run_root, adapter), host=host)).run(sockets=[sock])


def _adapter_loader(run_root: Path, adapter: Path | None):
    """The live view's model loader with ``--adapter`` merged in (None: the default loader)."""
    if adapter is None:
        return None
    from traitscope.models import load_model
    from traitscope.web.files import RunRoot
    from traitscope.web.live import LiveEngine

    names = LiveEngine(RunRoot(run_root))
    return lambda slug: load_model(names.model_name(slug), adapter=adapter)
