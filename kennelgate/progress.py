"""Rich progress bars for long CLI steps (stderr, so ``--json`` output stays clean)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

err_console = Console(stderr=True)


@contextmanager
def progress_bars(steps: Sequence[tuple[str, int]]) -> Iterator[list[Callable[[int], None]]]:
    """One bar per ``(description, total)``, shown together; yields an ``advance(n)`` for each."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as progress:

        def advancer(task) -> Callable[[int], None]:
            def advance(n: int) -> None:
                progress.advance(task, n)
                t = progress.tasks[task]
                if t.elapsed:
                    progress.update(task, rate=f"{t.completed / t.elapsed:.0f} img/s")

            return advance

        yield [advancer(progress.add_task(d, total=total, rate="")) for d, total in steps]


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    with progress_bars([(description, total)]) as (advance,):
        yield advance


def announce_model_build(name: str) -> None:
    err_console.print(f"[yellow]Model {name!r} is not built yet: exporting it to ONNX once (about 10 s)…")
