"""Progress reporting without tying the library to a terminal: stages report (name, total) and
advance; the CLI plugs in rich progress bars, the library default is silent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    def stage(self, name: str, total: int) -> Callable[[int], None]: ...
    def note(self, message: str) -> None: ...


class Silent:
    def stage(self, name: str, total: int) -> Callable[[int], None]:
        return lambda n: None

    def note(self, message: str) -> None:
        pass


class RichReporter:
    """Rich progress bars (stderr), one task per stage."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )

    def stage(self, name: str, total: int) -> Callable[[int], None]:
        task = self.progress.add_task(name, total=total)
        return lambda n: self.progress.advance(task, n)

    def note(self, message: str) -> None:
        self.progress.console.print(message, highlight=False)


@contextmanager
def rich_reporter() -> Iterator[RichReporter]:
    rep = RichReporter()
    with rep.progress:
        yield rep
