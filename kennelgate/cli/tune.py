"""``kennelgate tune``: a multi-objective Optuna study of model × runtime × k × threshold target ×
door window on this device (``kennelgate.tuning``)."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from index.folders import OTHER, scan_root, scan_species
from kennelgate.cli.common import _fail, _settings, console
from kennelgate.progress import err_console

FALLBACK_MAX_WRONG = 0.005  # when today's defaults are not part of the study


def tune(
    roots: list[Path] = typer.Argument(..., help="ROOT/<species>/ trees of the animals the doors admit: split into "
                                       "gallery and test visits by twin group."),
    unknown: list[Path] = typer.Option([], "--unknown", help="A folder of animals or objects that must never get in "
                                       "(test visits only; repeat the option for several)."),
    study: Path = typer.Option(Path("kennelgate-home/tune.db"), help="SQLite file of the study: run again to resume."),
    name: str = typer.Option("kennelgate", help="Study name inside the file."),
    budget: float = typer.Option(30.0, help="Minutes to spend (the study stops after the trial running then)."),
    trials: int = typer.Option(300, help="At most this many trials in this run."),
    models: str = typer.Option("efficientnet-lite0,efficientnet-lite1,efficientnet-lite2", help="Model variants to try."),
    runtimes: Optional[str] = typer.Option(None, help="Runtimes to try (cpu, openvino); default: every one installed."),
    visits: int = typer.Option(300, help="At most this many right-animal test visits (every unknown is a visit too)."),
    frames: int = typer.Option(8, help="Live frames per visit (20 fps)."),
    max_wrong: Optional[float] = typer.Option(None, help="Constraint: the most visits (share) that may open a wrong "
                                              "door; default: as many as today's defaults open here, never more."),
    max_ms: float = typer.Option(50.0, help="--apply picks the most admitted within this latency (50 ms = 20 fps)."),
    report: Optional[Path] = typer.Option(None, help="Write tune.md, tune.json and pareto.png here."),
    apply: bool = typer.Option(False, "--apply", help="Write the chosen settings into --env-file."),
    confirm: bool = typer.Option(True, help="Check today's defaults and the front on held-out visits (other "
                                 "photos of the test groups) after the search."),
    env_file: Path = typer.Option(Path(".env"), help="The settings file --apply writes (read by every command)."),
    seed: int = 0,
) -> None:
    """Hardware-aware tuning: availability and wrong opens per visit vs latency on this device.

    Trials are scored by visits through the service's pipeline and door window (right animals
    admitted within the visit; wrong opens as a constraint: by default no more than today's
    defaults let through on the same visits) and by the latency of one frame measured here. The Pareto front is plotted; --apply writes the chosen point's settings.
    """
    try:
        import optuna
    except ImportError:
        _fail("`kennelgate tune` needs Optuna: pip install 'kennelgate[eval]'")
    from kennelgate import tuning, tuning_report

    settings = _settings()
    known = [p for r in roots for p in scan_root(r)]
    if not known:
        _fail("no species folders with photos under " + ", ".join(map(str, roots)))
    unknowns = [p for u in unknown for p in scan_species(u, OTHER)]
    model_list = [m.strip() for m in models.split(",") if m.strip()]
    runtime_list = [r.strip() for r in runtimes.split(",")] if runtimes else tuning.runtimes()
    study.parent.mkdir(parents=True, exist_ok=True)
    stages: dict[str, object] = {}

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[note]}"), console=err_console) as progress:

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in stages:
                stages[stage] = progress.add_task(stage, total=total, note="")
            progress.update(stages[stage], completed=done)

        bench = tuning.Workbench(settings, known, unknowns, study.parent / f"{study.stem}-cache", visits=visits,
                                 frames=frames, seed=seed, on_progress=on_progress)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed)  # honours each trial's constraint (set_constraint)
        st = optuna.create_study(study_name=name, storage=f"sqlite:///{study}", load_if_exists=True,
                                 directions=["maximize", "minimize"], sampler=sampler)
        default = tuning.defaults(settings)
        # "auto" runs OpenVINO where it is installed, else ONNX Runtime's CPU provider.
        default["providers"] = "openvino" if "openvino" in runtime_list and settings.providers == "auto" else (
            "cpu" if settings.providers == "auto" else settings.providers)
        if default["model"] in model_list and default["providers"] in runtime_list and not any(
                t.params == default for t in st.trials if t.state.is_finished()):
            st.enqueue_trial(default)  # today's defaults are always in the study, measured like the rest
        task = progress.add_task("trials", total=trials, note="")

        def limit(study_) -> float:
            """The wrong-open limit: --max-wrong, else what today's defaults opened in this study."""
            if max_wrong is not None:
                return max_wrong
            d = next((t for t in study_.trials if t.params == default and "wrong_open" in t.user_attrs), None)
            return d.user_attrs["wrong_open"] if d is not None else FALLBACK_MAX_WRONG

        started = time.monotonic()

        def objective(trial) -> tuple[float, float]:
            params = tuning.suggest(trial, model_list, runtime_list)
            r = bench.run(params)
            for key, value in r.__dict__.items():
                trial.set_user_attr(key, value)
            trial.set_constraint("wrong_opens", r.wrong_open - limit(trial.study))
            return r.admitted, r.latency_ms

        def after(study_, trial) -> None:
            progress.advance(task)
            best = max((t.user_attrs.get("admitted", 0) for t in study_.trials
                        if t.user_attrs.get("wrong_open", 1) <= limit(study_)), default=0)
            progress.update(task, note=f"best feasible admitted {100 * best:.1f}%")

        st.optimize(objective, n_trials=trials, timeout=budget * 60, callbacks=[after], catch=(RuntimeError, ValueError))
        minutes = (time.monotonic() - started) / 60
        max_wrong_used = limit(st)

        rows = [{"number": t.number, "params": t.params, **t.user_attrs}
                for t in st.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not rows:
            _fail("no trial finished within the budget: give it more minutes")
        front = tuning.pareto(rows, max_wrong_used)
        d = next((r for r in rows if r["params"] == default), None)
        if confirm and bench.confirm is not None:
            for r in {r["number"]: r for r in ([d] if d is not None else []) + front}.values():
                c = bench.run(r["params"], bench.confirm)
                r["confirm"] = {k: v for k, v in c.__dict__.items() if k != "latency_ms"}
    if d is None:
        verdict = "Today's defaults were not measured in this study."
    elif any(r is d for r in front):
        verdict = "Today's defaults are on the Pareto front."
    else:
        both = [r for r in front if r["admitted"] > d["admitted"] and r["latency_ms"] < d["latency_ms"]]
        dominate = [r for r in front if r["admitted"] >= d["admitted"] and r["latency_ms"] <= d["latency_ms"]]
        if both:
            verdict = f"{len(both)} point(s) of the front beat today's defaults on both axes (more admitted, faster)."
        elif dominate:
            verdict = (f"{len(dominate)} point(s) of the front dominate today's defaults: as fast or faster and more "
                       "right animals admitted (the same model and runtime: latency differs only by noise).")
        else:
            verdict = "Today's defaults are dominated only where the front is slower or admits fewer: a trade-off."
        if d["wrong_open"] > max_wrong_used:
            verdict += f" Today's defaults break the wrong-open limit here ({100 * d['wrong_open']:.2f}%)."

    chosen = tuning.choose(front, max_ms)
    out = {
        "command": "kennelgate " + " ".join(sys.argv[1:]), "study": str(study), "n_trials": len(rows), "minutes": minutes,
        "known_visits": bench.search.known, "unknown_visits": bench.search.unknown,
        "confirm_known_visits": bench.confirm.known if bench.confirm and confirm else 0,
        "frames": frames, "gallery_photos": len(bench.gallery_photos), "latency_frames": tuning.LATENCY_FRAMES,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "max_wrong": max_wrong_used,
        "limit_from": "--max-wrong" if max_wrong is not None else (
            "as many as today's defaults opened on these visits" if d is not None else "no defaults measured: 0.5%"),
        "max_ms": max_ms, "trials": rows, "front": front, "default": d, "verdict": verdict, "chosen": chosen,
    }
    console.print(verdict)
    for r in front:
        held = r.get("confirm")
        console.print(f"front #{r['number']}: admitted {100 * r['admitted']:.1f}%, wrong opens "
                      f"{100 * r['wrong_open']:.2f}%, {r['latency_ms']:.1f} ms — {tuning_report.label(r)}"
                      + (f"; held-out visits: {100 * held['admitted']:.1f}%, {100 * held['wrong_open']:.2f}%" if held else ""))
    if report:
        console.print(f"report: {tuning_report.write(out, report)}")
    if apply:
        if chosen is None:
            _fail(f"no feasible point of the front runs within {max_ms:g} ms: nothing applied")
        tuning.apply_to_env(chosen["params"], env_file)
        console.print(f"applied trial #{chosen['number']} to {env_file}")
