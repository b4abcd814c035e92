"""``kennelgate classify``, ``eval`` and ``bench``: photos through the frame pipeline, measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from index.folders import scan_root
from index.store import GalleryError
from kennelgate.cli.common import (
    _engine, _expand, _fail, _settings, console,
)
from kennelgate.progress import err_console, progress_bar

def classify(
    paths: list[Path] = typer.Argument(..., help="Image files or folders."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Which species is in each image (or 'other'); frames failing the health gate are not classified."""
    engine = _engine()
    files = _expand(paths)
    try:
        engine.decider
    except GalleryError as exc:
        _fail(str(exc))
    with progress_bar("classifying", len(files)) as advance:
        results = engine.classify(files, on_progress=advance)
    if as_json:
        for r in results:
            sys.stdout.write(json.dumps(r.as_record()) + "\n")
        return
    table = Table("species", "score", "breed", "note")
    table.add_column("file", overflow="fold")
    for r in results:
        rec = r.as_record()
        if "error" in rec:
            table.add_row("[red]error", "", "", rec["error"], rec["path"])
        elif rec["health"] != "ok":
            table.add_row(f"[yellow]{rec['health']}", "", "", rec["reason"], rec["path"])
        else:
            note = "" if rec["accepted"] else rec["reason"]
            table.add_row(rec["species"], f"{rec['score']:.3f}", rec["breed"] or "", note, rec["path"])
    console.print(table)


# --- eval ----------------------------------------------------------------------------------
def evaluate_cmd(
    gallery: Path = typer.Option(..., "--gallery", help="ROOT/<species>/ photos to index."),
    test: Path = typer.Option(..., "--test", help="ROOT/<species>/ photos to classify; species not in the gallery count as unknown."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write metrics as JSON here."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a report (markdown + plots) here."),
    corruptions: bool = typer.Option(
        False, "--corruptions", help="Also run the test photos through every camera corruption × severity (the report gets a heat-map)."
    ),
    only: Optional[str] = typer.Option(None, help="With --corruptions: a comma list of corruptions (default: all)."),
    severities: str = typer.Option("1,2,3,4,5", help="With --corruptions: severities to run."),
    visits: int = typer.Option(
        0, "--visits", help="Also judge the door per visit: each test photo becomes a visit of this many live frames "
        "(20 fps) through the service's path and door window (e.g. 8; 40 = 2 s)."
    ),
) -> None:
    """Accuracy, per-species precision/recall, confusion matrix, open-set rejection.

    With --corruptions: the same evaluation on corrupted copies (mud, rain, darkness, night IR,
    glare, fog, blur, noise, JPEG, low resolution), through the health gate and the door's
    K-frame rule: accuracy, abstentions and wrong door opens per corruption × severity.
    """
    from index.decision import Decision
    from index.evaluation import evaluate
    from index.folders import OTHER
    from index.report import write_report
    from kennelgate.deciders import decider_from

    engine = _engine()
    s = _settings()
    gphotos, tphotos = scan_root(gallery), scan_root(test)
    engine.encoder
    with progress_bar("embedding gallery", len(gphotos)) as advance:
        gkept, gvec, grej = engine.embed_photos(gphotos, advance)
    g = engine.gallery_from(gkept, gvec)
    decider = decider_from(s, g)
    # The test photos take the service's own path (health gate included): a frame the gate
    # refuses counts as refused, as at the door.
    with progress_bar("classifying test", len(tphotos)) as advance:
        answers = engine.classify([p.path for p in tphotos], on_progress=advance, decider=decider)
    tkept = [p for p, a in zip(tphotos, answers) if a.error is None]
    trej = [(str(p.path), a.error) for p, a in zip(tphotos, answers) if a.error is not None]
    decisions = [a.decision or Decision(OTHER, 0.0, False, reason=f"camera fault: {a.health.detail}")
                 for a in answers if a.error is None]
    result = evaluate([p.species for p in tkept], decisions, g.names(), ids=[str(p.path) for p in tkept])
    summary = result.summary()
    summary["health_refused"] = sum(1 for a in answers if a.error is None and not a.health.ok)
    summary["skipped_files"] = [{"file": f, "reason": r} for f, r in grej + trej]
    analysis = None
    if report:
        analysis = _error_analysis(engine, decider, tkept, decisions)
        summary["error_analysis"] = analysis.as_dict()
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=2))
    if report:
        from kennelgate.error_analysis import write_section

        path = write_report(result, report)
        with path.open("a") as f:
            f.write("\n" + "\n".join(write_section(analysis, report)) + "\n")
        console.print(f"report: {path}")
    t = Table("metric", "value")
    for key in ("accuracy", "known_accept_rate", "wrong_accept_rate", "unknown_reject_rate", "unknown_accept_rate", "auroc"):
        v = summary[key]
        t.add_row(key, "n/a" if v is None or v != v else f"{v:.4f}")
    console.print(t)
    if visits > 0:
        _visits(engine, decider, tkept, visits, report)
    if corruptions:
        _corruption_suite(engine, decider, tkept, only, severities, report)


def _error_analysis(engine, decider, photos, decisions):
    from kennelgate.error_analysis import analyse, read_conditions

    ids = [str(p.path) for p in photos]
    with progress_bar("error analysis", 2) as advance:
        conditions = read_conditions(ids)
        advance(1)
        embed = lambda paths: np.concatenate(  # noqa: E731
            [engine.encoder.embed(paths[i : i + 32]).vectors for i in range(0, len(paths), 32)])
        analysis = analyse([p.species for p in photos], decisions, ids, decider.gallery, embed, conditions,
                           engine.settings.twin_cosine)
        advance(1)
    return analysis


def _visits(engine, decider, photos, frames: int, report: Optional[Path]) -> None:
    from kennelgate.corruptions import to_work_size
    from kennelgate.door import WindowPolicy
    from kennelgate.motion import MotionGate
    from kennelgate.visits import run_visits

    s = _settings()
    images = [to_work_size(engine.encoder.load(p.path)) for p in photos]
    policy = WindowPolicy(s.window_k, s.window_n, s.window_seconds)
    with progress_bar("visit frames", frames) as advance:
        _, summary = run_visits(
            engine.pipeline(decider=decider), images, [p.species for p in photos], [str(p.path) for p in photos],
            set(decider.gallery.names(include_other=False)), policy,
            lambda: MotionGate(s.motion_threshold, s.motion_max_skip, s.motion_idle_after, s.motion_idle_every),
            frames=frames, health=s.health, on_progress=advance,
        )
    t = Table("visits", "value")
    for label, v in summary.admitted.items():
        t.add_row(f"right animal admitted within {label}", f"{100 * v:.2f}%")
    t.add_row("known animal opened a wrong door", f"{100 * summary.wrong_open_known:.2f}%")
    t.add_row("unknown animal opened a door", f"{100 * summary.wrong_open_unknown:.2f}%")
    t.add_row("frames of known animals accepted right", f"{100 * summary.frame_right_accept:.2f}%")
    console.print(t)
    if report:
        report.mkdir(parents=True, exist_ok=True)
        (report / "visits.json").write_text(json.dumps(summary.as_dict(), indent=2))


def _corruption_suite(engine, decider, photos, only: Optional[str], severities: str, report: Optional[Path]) -> None:
    from kennelgate.corruptions import CORRUPTIONS
    from kennelgate.robustness import run_suite
    from kennelgate.robustness_report import write_suite_report

    s = _settings()
    names = [n.strip() for n in (only or ",".join(CORRUPTIONS)).split(",") if n.strip()]
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        _fail(f"unknown corruption(s) {unknown}; known: {', '.join(CORRUPTIONS)}")
    try:
        sevs = sorted({int(x) for x in severities.split(",") if x.strip()})
    except ValueError:
        _fail(f"severities must be numbers 1-5, got {severities!r}")
    if not sevs or not all(1 <= x <= 5 for x in sevs):
        _fail(f"severities must be numbers 1-5, got {severities!r}")
    with progress_bar("corruption × severity", 1 + len(names) * len(sevs)) as advance:
        result = run_suite(engine, decider, photos, names, sevs, s.health, s.window_k, on_progress=advance)
    t = Table("corruption", "severity", "accuracy", "abstained", "gate", "wrong opens")
    for c in result.conditions:
        t.add_row(c.corruption, str(c.severity or "-"), f"{100 * c.accuracy:.1f}%", f"{100 * c.abstain_rate:.1f}%",
                  f"{100 * c.gate_rate:.1f}%", f"{100 * c.wrong_open_window:.2f}%")
    console.print(t)
    out = report or Path("corruption-report")
    console.print(f"corruption report: {write_suite_report(result, out, command='kennelgate ' + ' '.join(sys.argv[1:]))}")


# --- bench ---------------------------------------------------------------------------------
def bench(
    images: Path = typer.Option(Path("../shared/datasets/catsdogs"), help="Folder of test images."),
    n: int = typer.Option(64, help="Images per measurement."),
    baseline: bool = typer.Option(True, help="Also time PyTorch eager fp32 of the same encoder (needs torch)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the numbers as JSON here."),
    variants: Optional[str] = typer.Option(
        None, help="Compare model variants side by side, e.g. 'efficientnet-lite0@cpu,efficientnet-lite0-int8@cpu,"
        "efficientnet-lite0-int8@openvino' (needs --eval-gallery and --eval-test)."
    ),
    eval_gallery: Optional[Path] = typer.Option(None, help="With --variants: ROOT/<species>/ photos to index."),
    eval_test: Optional[Path] = typer.Option(None, help="With --variants: ROOT/<species>/ photos to evaluate."),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="With --variants: write the tables here."),
) -> None:
    """Images/s for decode+preprocess, encoder, search and end to end, batch 1 and 8; frames/s of one
    camera through the frame pipeline on a still and a moving scene, with the head count off and on.

    With --variants: each model × runtime gets the same evaluation (accuracy, acceptance, unknowns
    rejected) and the same timings, side by side with PyTorch eager fp32 as the baseline.
    """
    files = _expand([images])[:n]
    if not files:
        _fail(f"no images in {images}")
    if variants:
        _bench_variants(variants, files, baseline, eval_gallery, eval_test, json_out, markdown_out)
        return
    from kennelgate.bench import run_bench

    engine = _engine()
    try:
        engine.decider
    except GalleryError as exc:
        _fail(f"{exc} (bench needs a gallery to time the search step)")
    rows = run_bench(engine, files, baseline=baseline)
    table = Table("stage", "batch", "images/s", "ms/image", "vs torch eager")
    for r in rows:
        table.add_row(r["stage"], str(r["batch"]), f"{r['ips']:.1f}", f"{1000 / r['ips']:.2f}", f"{r['ratio']:.2f}x" if r.get("ratio") else "")
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(rows, indent=2))


def _bench_variants(text: str, files, baseline: bool, gallery: Optional[Path], test: Optional[Path], json_out, markdown_out) -> None:
    from rich.markdown import Markdown

    from kennelgate.bench import Variant
    from kennelgate.compare import compare_variants, markdown

    if gallery is None or test is None:
        _fail("--variants needs --eval-gallery and --eval-test (the same evaluation for every variant)")
    chosen = [Variant.parse(v) for v in text.split(",") if v.strip()]
    try:
        gphotos, tphotos = scan_root(gallery), scan_root(test)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    with err_console.status("comparing…") as status:
        result = compare_variants(
            _settings(), chosen, gphotos, tphotos, files, baseline, status=lambda msg: status.update(msg)
        )
    text_md = markdown(result, command="kennelgate " + " ".join(sys.argv[1:]))
    console.print(Markdown(text_md))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2))
    if markdown_out:
        markdown_out.write_text(text_md)


