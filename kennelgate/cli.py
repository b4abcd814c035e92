"""``kennelgate`` command line: models, gallery, classify, eval, bench."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from embedder.registry import DEFAULT_MODEL
from index.folders import IMAGE_SUFFIXES, scan_root
from index.store import GalleryError
from kennelgate.progress import announce_model_build, err_console, progress_bar, progress_bars
from kennelgate.settings import Settings

app = typer.Typer(help="KennelGate: which animal is at the kennel door? (retrieval + open-set)", no_args_is_help=True)
model_app = typer.Typer(help="Build and list encoder models (ONNX).", no_args_is_help=True)
gallery_app = typer.Typer(help="Manage the species gallery.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(gallery_app, name="gallery")
db_app = typer.Typer(help="Database schema (Alembic migrations) and decision-log housekeeping.", no_args_is_help=True)
index_app = typer.Typer(help="The serving index: nightly rebuild, status.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(index_app, name="index")
app.add_typer(token_app, name="token")
cascade_app = typer.Typer(help="The two-tier cascade: a small model, and a big one for the frames it is unsure of.", no_args_is_help=True)
app.add_typer(cascade_app, name="cascade")
health_app = typer.Typer(help="The frame health gate's learned fault detectors.", no_args_is_help=True)
app.add_typer(health_app, name="health")
console = Console()

_state: dict = {}

HomeOpt = typer.Option(None, "--home", envvar="KENNELGATE_HOME", help="State folder (gallery, reports).")


@app.callback()
def main(
    home: Optional[Path] = HomeOpt,
    model: Optional[str] = typer.Option(None, "--model", envvar="KENNELGATE_MODEL", help="Model name or directory."),
    method: Optional[str] = typer.Option(None, "--method", help="Decision method: knn (default) or prototype."),
) -> None:
    overrides = {k: v for k, v in {"home": home, "model": model, "method": method}.items() if v is not None}
    _state["settings"] = Settings(**overrides)


def _settings() -> Settings:
    return _state.get("settings") or Settings()


def _engine():
    from kennelgate.engine import Engine

    return Engine(_settings(), on_model_build=announce_model_build)


def _fail(msg: str) -> None:
    err_console.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


def _print_rejected(rejected) -> None:
    if rejected:
        err_console.print(f"[yellow]{len(rejected)} file(s) rejected:")
        for f, reason in rejected:
            err_console.print(f"  {f}: {reason}")


def _print_index_report(report) -> None:
    table = Table("species", "photos indexed")
    for name, n in report.added.items():
        table.add_row(name, str(n))
    console.print(table)
    _print_rejected(report.rejected)
    console.print(f"gallery version [bold]{report.version}[/bold]")


# --- model ---------------------------------------------------------------------------------
@model_app.command("build")
def model_build(
    name: str = typer.Argument(DEFAULT_MODEL, help="efficientnet-lite0, efficientnet-lite1 (default), efficientnet-lite2, open_clip:ARCH[:TAG|:CHECKPOINT], or a name for --onnx."),
    onnx_file: Optional[Path] = typer.Option(None, "--onnx", help="Wrap an existing ONNX file instead."),
    feature_tensor: Optional[str] = typer.Option(None, help="ONNX tensor to use as the embedding."),
    logits_tensor: Optional[str] = typer.Option(None, help="ONNX tensor with ImageNet logits, if any."),
    size: int = typer.Option(224, help="Input size (ONNX files)."),
    mean: str = typer.Option("0.485,0.456,0.406", help="Normalisation mean (ONNX files)."),
    std: str = typer.Option("0.229,0.224,0.225", help="Normalisation std (ONNX files)."),
    resize: str = typer.Option("shorter_center_crop", help="shorter_center_crop | squash | letterbox (ONNX files)."),
    crop_pct: float = typer.Option(0.875, help="Crop / resized short side (ONNX files)."),
    int8: bool = typer.Option(False, "--int8", help="Also build NAME-int8: static INT8 (QDQ, per-channel)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also build NAME-fp16 (for GPUs)."),
    calibration: Optional[Path] = typer.Option(
        None, help="INT8 calibration photos: a folder (default: the gallery's stored photos)."
    ),
    calibration_n: int = typer.Option(300, help="At most this many calibration photos."),
    calibration_method: str = typer.Option("minmax", help="minmax | percentile | entropy."),
) -> None:
    """Export a model into the shared model cache (and its INT8 / FP16 variants)."""
    s = _settings()
    if int8 or fp16:
        _build_variants(name, int8, fp16, calibration, calibration_n, calibration_method)
        return
    if onnx_file is not None:
        from embedder.export import onnx_file as onnx_export
        from embedder.spec import PreprocessSpec

        pre = PreprocessSpec(
            input_size=size, resize=resize, crop_pct=crop_pct,
            mean=tuple(float(x) for x in mean.split(",")), std=tuple(float(x) for x in std.split(",")),
        )
        spec = onnx_export.build(onnx_file, s.model_cache / name, name, pre, feature_tensor, logits_tensor)
    else:
        from embedder import registry

        with err_console.status(f"exporting {name} to ONNX…"):
            spec = registry.build_named(name, s.model_cache)
    console.print(f"built [bold]{spec.name}[/bold] ({spec.embedding_dim}-d, fingerprint {spec.fingerprint}) in {s.model_cache / spec.name}")


def _calibration_photos(folder: Optional[Path], n: int) -> list[Path]:
    import random

    if folder is not None:
        files = _expand([folder])
    else:  # the photos the gallery was built from: what this shelter's cameras see
        s = _settings()
        files = sorted(p for p in s.photos_dir.rglob("*") if p.is_file()) if s.photos_dir.is_dir() else []
    if not files:
        _fail("no calibration photos: pass --calibration FOLDER or index some photos first")
    random.Random(0).shuffle(files)
    return files[:n]


def _build_variants(name: str, int8: bool, fp16: bool, calibration: Optional[Path], n: int, method: str) -> None:
    from embedder import registry
    from embedder.export import compress

    s = _settings()
    src = registry.resolve(name, s.model_cache, on_build=announce_model_build)
    if int8:
        if method not in ("minmax", "percentile", "entropy"):
            _fail(f"unknown calibration method {method!r}")
        photos = _calibration_photos(calibration, n)
        with progress_bar("INT8 calibration", len(photos)) as advance:
            try:
                spec = compress.quantize_int8(src, src.parent / f"{src.name}-int8", photos, method, advance)
            except ValueError as exc:
                _fail(str(exc))
        console.print(f"built [bold]{spec.name}[/bold] (int8, fingerprint {spec.fingerprint})")
    if fp16:
        with err_console.status("converting to FP16…"):
            spec = compress.convert_fp16(src, src.parent / f"{src.name}-fp16")
        console.print(f"built [bold]{spec.name}[/bold] (fp16, fingerprint {spec.fingerprint})")
    console.print("use it with --model NAME or KENNELGATE_MODEL; then `kennelgate index rebuild` re-embeds the gallery")


@model_app.command("distill")
def model_distill(
    name: str = typer.Argument("efficientnet-lite0", help="The teacher: a model built by name."),
    size: Optional[int] = typer.Option(None, help="The student's input side in px (e.g. 160); default: the teacher's."),
    prune: float = typer.Option(0.0, help="Share of channels to prune before training (e.g. 0.3); 0 = none."),
    photos: Optional[Path] = typer.Option(
        None, help="Unlabelled training photos or logged frames: a folder (default: the gallery's stored photos)."
    ),
    max_photos: int = typer.Option(2000, help="At most this many photos."),
    epochs: int = typer.Option(6, help="Training passes over the photos."),
    views: int = typer.Option(3, help="Augmented views per photo."),
    out_name: Optional[str] = typer.Option(None, "--name", help="Name of the student (default: NAME-pruned30-s160 …)."),
) -> None:
    """Train a smaller student (pruned and/or lower resolution) to give the teacher's embeddings.

    No labels are needed: the student learns to reproduce the teacher on any photos. It is a new
    model: use it with --model, then `kennelgate index rebuild` re-embeds the gallery.
    """
    from embedder import registry
    from embedder.export.distill import DistillConfig, distill, student_name

    if size is None and prune <= 0:
        _fail("give --size (a lower input resolution) and/or --prune (a share of channels) for the student")
    if not 0 <= prune < 0.9:
        _fail(f"--prune must be between 0 and 0.9, got {prune}")
    s = _settings()
    teacher = registry.resolve(name, s.model_cache, on_build=announce_model_build)
    files = _calibration_photos(photos, max_photos)
    cfg = DistillConfig(input_size=size, prune_ratio=prune, epochs=epochs, views=views)
    target = s.model_cache / (out_name or student_name(teacher.name, cfg))
    n_hold = max(1, int(cfg.holdout * len(files)))
    steps = [("teacher views", len(files)), ("training", cfg.epochs * (len(files) - n_hold) * cfg.views)]
    with progress_bars(steps) as (on_views, on_train):
        try:
            spec, report = distill(teacher, target, files, cfg, on_views, on_train)
        except ValueError as exc:
            _fail(str(exc))
    console.print(
        f"built [bold]{spec.name}[/bold] ({spec.preprocess.input_size}px, {report.params_student / 1e6:.2f}M params vs "
        f"{report.params_teacher / 1e6:.2f}M): cosine to the teacher on {report.holdout_views} held-out photos "
        f"{report.cosine_before:.3f} → [bold]{report.cosine_after:.3f}[/bold]"
    )
    console.print("use it with --model NAME or KENNELGATE_MODEL; then `kennelgate index rebuild` re-embeds the gallery")


@model_app.command("list")
def model_list() -> None:
    """Models in the shared cache."""
    from embedder.registry import list_models

    table = Table()
    table.add_column("name", no_wrap=True)
    for col in ("dim", "precision", "fingerprint"):
        table.add_column(col, no_wrap=True)
    table.add_column("source", overflow="fold")
    for spec in list_models(_settings().model_cache):
        table.add_row(spec.name, str(spec.embedding_dim), spec.precision, spec.fingerprint, spec.source)
    console.print(table)


@model_app.command("check-imagenet")
def model_check_imagenet(folders: list[Path] = typer.Argument(..., help="Folders of <wnid>_*.JPEG files.")) -> None:
    """ImageNet top-1 of the model's logits on wnid-named photos (proves weights + preprocessing)."""
    from kennelgate.imagenet_check import imagenet_top1

    engine = _engine()
    files = sorted(p for f in folders for p in Path(f).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    with progress_bar("ImageNet check", len(files)) as advance:
        top1, n = imagenet_top1(engine.encoder, files, advance)
    console.print(f"ImageNet top-1: [bold]{100 * top1:.1f}%[/bold] on {n} photos")


# --- cascade -------------------------------------------------------------------------------
@cascade_app.command("tune")
def cascade_tune(
    gallery: Path = typer.Option(..., "--gallery", help="ROOT/<species>/ photos: 80% build both tiers, 20% tune the margin."),
    test: Optional[Path] = typer.Option(None, "--test", help="ROOT/<species>/ photos to report on (default: the tuning 20%)."),
    small: str = typer.Option("efficientnet-lite0-int8@openvino", help="The small tier, MODEL@RUNTIME."),
    big: str = typer.Option("efficientnet-lite0@cpu", help="The big tier, MODEL@RUNTIME (e.g. an open_clip model)."),
) -> None:
    """The routing margin that keeps the cascade within 0.1 pt of the big tier's accuracy while
    sending it as few frames as possible; set it as KENNELGATE_CASCADE_MARGIN on the small server."""
    from kennelgate import cascade
    from kennelgate.bench import Variant

    try:
        gphotos, tphotos = scan_root(gallery), (scan_root(test) if test else [])
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    with err_console.status("building both tiers and tuning…"):
        result = cascade.evaluate(_settings(), Variant.parse(small), Variant.parse(big), gphotos, tphotos)
    from rich.markdown import Markdown

    console.print(Markdown(cascade.markdown(result)))
    console.print(f"KENNELGATE_CASCADE_MARGIN={result['margin']:.4f}")


# --- health gate ---------------------------------------------------------------------------
@health_app.command("train")
def health_train(
    photos: Optional[Path] = typer.Option(None, help="Clean photos or camera frames: a folder (default: the gallery's stored photos)."),
    max_photos: int = typer.Option(2000, help="At most this many photos."),
    false_alarm: float = typer.Option(0.0035, help="False-alarm rate each detector may have on clean frames."),
    out: Optional[Path] = typer.Option(None, help="Where to write the detectors (default: the home, where they are used)."),
) -> None:
    """Train the washed-out / occlusion / blur detectors on this shelter's own photos.

    Clean frames are the photos and benign variants of them; faulty frames are the same photos
    with mud, over-exposure and blur (severity 3-5). Each detector's threshold is set on clean
    frames it was not trained on. The service picks the new file up without a restart.
    """
    from kennelgate import health_training
    from kennelgate.settings import HOME_DETECTOR

    if not 0 < false_alarm < 0.2:
        _fail(f"--false-alarm must be between 0 and 0.2, got {false_alarm}")
    files = _calibration_photos(photos, max_photos)
    target = out or _settings().home / HOME_DETECTOR
    with progress_bar("photos → clean and faulty frames", len(files)) as advance:
        try:
            detector = health_training.train(files, false_alarm, on_progress=advance)
        except ValueError as exc:
            _fail(str(exc))
    detector.save(target)
    _print_detector(detector, str(target))


@health_app.command("show")
def health_show() -> None:
    """The detectors in force: where they come from, their thresholds, how they were trained."""
    from kennelgate.health_detector import DetectorError, get

    path = _settings().health_detector_path
    try:
        detector = get(path)
    except DetectorError as exc:
        _fail(str(exc))
    _print_detector(detector, str(path))


def _print_detector(detector, source: str) -> None:
    table = Table("fault", "threshold", "trained on (clean / faulty frames)", "detected, held-out folds", "false alarms, held-out folds")
    for name, m in detector.models.items():
        i = m.info
        table.add_row(
            name, f"{m.threshold:.3f}", f"{i.get('clean_frames', '?')} / {i.get('fault_frames', '?')}",
            f"{100 * i['oof_detection']:.1f}%" if "oof_detection" in i else "-",
            f"{100 * i['oof_false_alarm']:.2f}%" if "oof_false_alarm" in i else "-",
        )
    console.print(table)
    console.print(f"detectors: {source}")


# --- gallery -------------------------------------------------------------------------------
def _library():
    """The photo library (database + stored photos) that the gallery is built from."""
    from app.db import migrate
    from app.db.session import Database
    from app.library import PhotoLibrary

    s = _settings()
    s.home.mkdir(parents=True, exist_ok=True)
    if s.auto_migrate:
        migrate.upgrade(s.db_url)
    library = PhotoLibrary(s.photos_dir, Database(s.db_url), _engine())
    for line in library.reconcile():  # a change interrupted by a crash is finished or undone first
        err_console.print(f"[yellow]index repaired:[/] {line}")
    return library


def _print_add_report(report, engine=None) -> None:
    console.print(f"{report.species}: {report.added} photo(s) added, {report.photos} in all")
    _print_rejected(report.rejected)
    console.print(f"gallery version [bold]{report.version}[/bold]")
    if engine is not None and report.species != "other":
        _print_readiness(engine, [report.species])


def _print_readiness(engine, names: Optional[list[str]] = None) -> None:
    """The readiness card of each species: can a door depend on it yet?"""
    from index.readiness import readiness

    engine.refresh()
    snap = engine.snapshot()
    method = _settings().method
    for name in names or snap.gallery.names(include_other=False):
        try:
            card = readiness(snap.gallery, engine.decider.calibration, name, method)
        except KeyError as exc:
            _fail(str(exc).strip("'\""))
        mark = "[green]ready[/green]" if card.ready else "[yellow]not ready[/yellow]"
        console.print(
            f"[bold]{card.species}[/bold]: {mark} — {card.photos} photos, {card.scenes} distinct scenes, "
            f"{100 * card.predicted_accept:.1f}% of new photos predicted accepted (threshold {card.threshold:.3f})"
            + (f", mistaken for {card.confused_with} {100 * card.confused_rate:.1f}%" if card.confused_with else "")
        )
        for tip in card.advice:
            console.print(f"  • {tip}")
        for c in card.conflicts:
            console.print(f"    conflict: {c.photo} (filed under {c.filed_under}, score {c.score:.3f})")


@gallery_app.command("readiness")
def gallery_readiness(
    species: Optional[list[str]] = typer.Argument(None, help="Species to check (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="The cards as JSON."),
) -> None:
    """Is each species ready for a door to depend on it? Predicted accept rate on new photos,
    distinct scenes, confusions, photos filed elsewhere that look like it, and what to do."""
    from index.readiness import readiness

    engine = _engine()
    try:
        if as_json:
            snap = engine.snapshot()
            names = species or snap.gallery.names(include_other=False)
            cards = [readiness(snap.gallery, engine.decider.calibration, n, _settings().method).model_dump() for n in names]
            sys.stdout.write(json.dumps(cards, indent=2) + "\n")
            return
        _print_readiness(engine, species)
    except GalleryError as exc:
        _fail(str(exc))
    except KeyError as exc:
        _fail(str(exc).strip("'\""))


@gallery_app.command("build")
def gallery_build(root: Path = typer.Argument(..., help="ROOT/<species>/[<breed>/]<images>")) -> None:
    """Replace the photo library with a folder of species folders and index it (one new version)."""
    try:
        photos = scan_root(root)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    if not photos:
        _fail(f"no images under {root}/<species>/")
    library = _library()
    library.engine.encoder  # build the model (if needed) before the progress bar starts
    with progress_bar("indexing", len(photos)) as advance:
        try:
            report = library.replace_all(photos, advance)
        except ValueError as exc:
            _fail(str(exc))
    _print_index_report(report)


@gallery_app.command("add")
def gallery_add(
    species: str = typer.Argument(..., help="Species name, e.g. raccoon (or 'other' for negatives)."),
    folder: Path = typer.Argument(..., help="Folder of photos (sub-folders = breeds)."),
    replace: bool = typer.Option(False, help="Replace the species' photos instead of adding to them."),
) -> None:
    """Add a species (or more photos of one): indexing only, no retraining."""
    from index.folders import scan_species

    try:
        n = len(scan_species(folder, species))
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    library = _library()
    library.engine.encoder
    with progress_bar(f"indexing {species}", n) as advance:
        try:
            if replace and species.strip().lower() in library.counts():
                library.remove_species(species)
            report = library.add_folder(species, folder, on_progress=advance)
        except (ValueError, GalleryError) as exc:
            _fail(str(exc))
    if not report.added:
        _print_rejected(report.rejected)
        _fail(f"no usable new photos of {report.species!r} in {folder}")
    _print_add_report(report, library.engine)


@gallery_app.command("remove")
def gallery_remove(species: str) -> None:
    """Remove a species and its photos (a new version; the others are untouched)."""
    try:
        version = _library().remove_species(species)
    except (KeyError, ValueError, GalleryError) as exc:
        _fail(str(exc).strip("'\""))
    console.print(f"removed {species}; gallery version [bold]{version}[/bold]")


@gallery_app.command("list")
def gallery_list() -> None:
    """Species, photo counts, breeds and thresholds of the current gallery."""
    try:
        snap = _engine().snapshot()
    except GalleryError as exc:
        _fail(str(exc))
    method = _settings().method
    table = Table("species", "photos", "breeds", f"threshold ({method})", "own photos accepted (LOO)")
    for name in snap.gallery.names():
        p = snap.gallery.species[name]
        cal = snap.calibration.methods[method].get(name)
        breeds = sorted({b for b in p.breeds if b})
        table.add_row(
            name, str(len(p)), f"{len(breeds)}" if breeds else "-",
            f"{cal.threshold:.3f}" if cal else "(negatives)",
            f"{100 * cal.loo_accept_rate:.1f}%" if cal else "-",
        )
    console.print(table)
    console.print(f"version {snap.version}, model {snap.gallery.model_name} ({snap.gallery.fingerprint})")


# --- classify ------------------------------------------------------------------------------
def _expand(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


@app.command()
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
@app.command("eval")
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
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=2))
    if report:
        path = write_report(result, report)
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
@app.command()
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
    """Images/s for decode+preprocess, encoder, search and end to end, batch 1 and 8.

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


# --- service -------------------------------------------------------------------------------
@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, help="TCP port."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the REST API (device frames, admin endpoints, /docs) on the configured home and database."""
    import logging

    import uvicorn

    from app.main import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    s = _settings()
    if not s.admin_token:
        err_console.print(
            "[yellow]no KENNELGATE_ADMIN_TOKEN set:[/yellow] admin endpoints need a token from "
            "`kennelgate token admin`"
        )
    # One worker: the encoder already uses every core, and door windows live in this process.
    # Stream messages may be as large as a posted frame; JPEG frames gain nothing from deflate.
    uvicorn.run(create_app(s), host=host, port=port, log_level=log_level, workers=1,
                ws_max_size=s.max_bytes + 1024, ws_per_message_deflate=False)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create or migrate the schema (SQLite by default, PostgreSQL via KENNELGATE_DATABASE_URL)."""
    from app.db import migrate

    s = _settings()
    migrate.upgrade(s.db_url, revision)
    console.print(f"database at revision [bold]{revision}[/bold] ({_safe_url(s.db_url)})")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision ('base' drops every table).")) -> None:
    """Step the schema back to ``revision``."""
    from app.db import migrate

    migrate.downgrade(_settings().db_url, revision)
    console.print(f"database at revision [bold]{revision}[/bold]")


@db_app.command("current")
def db_current() -> None:
    """The schema revision of the database, and the newest one this version knows."""
    from app.db import migrate
    from app.db.session import make_engine

    s = _settings()
    engine = make_engine(s.db_url)
    try:
        current = migrate.current_revision(engine)
    finally:
        engine.dispose()
    console.print(f"{_safe_url(s.db_url)}: revision {current or '(empty)'}; head {migrate.head_revision(s.db_url)}")


@db_app.command("prune")
def db_prune(days: Optional[int] = typer.Option(None, help="Keep this many days (default: settings).")) -> None:
    """Delete decision-log rows older than the retention period."""
    from app.db.session import Database
    from app.housekeeping import prune_decisions

    s = _settings()
    keep = s.decision_retention_days if days is None else days
    n = prune_decisions(Database(s.db_url), keep)
    console.print(f"deleted {n} decision(s) older than {keep} days" if keep else "retention is 0: nothing deleted")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@index_app.command("rebuild")
def index_rebuild() -> None:
    """Re-embed every stored photo with the current model and swap the new index in atomically.

    Safe while the API serves: it keeps answering from the old version until the swap, and a crash
    before the swap leaves the old version in place. Run it nightly (cron, systemd timer, compose).
    """
    from app.rebuild import rebuild

    library = _library()
    library.engine.encoder
    with progress_bar("re-embedding", len(library.all_photos())) as advance:
        report = rebuild(library, on_progress=advance)
    if not report.version:
        console.print("no photos stored and no index yet: nothing to rebuild")
        return
    table = Table("species", "photos")
    for name, n in report.species.items():
        table.add_row(name, str(n))
    console.print(table)
    _print_rejected(report.skipped)
    console.print(
        f"index {report.previous or '(none)'} → [bold]{report.version}[/bold]: {report.photos} photos in {report.seconds:.1f}s"
    )


@index_app.command("status")
def index_status() -> None:
    """Serving version, species and photo counts (library vs index)."""
    library = _library()
    counts = library.counts()
    try:
        snap = library.engine.snapshot()
        indexed = {n: len(p) for n, p in snap.gallery.species.items()}
        version = snap.version
    except GalleryError:
        indexed, version = {}, "(none)"
    table = Table("species", "photos stored", "photos indexed")
    for name in sorted(set(counts) | set(indexed)):
        table.add_row(name, str(counts.get(name, 0)), str(indexed.get(name, 0)))
    console.print(table)
    console.print(f"index version [bold]{version}[/bold]")


@token_app.command("admin")
def token_admin(label: str = typer.Option("cli", help="A note to recognise the token by.")) -> None:
    """Issue an admin token and print it (only its hash is stored)."""
    from app import auth
    from app.db import migrate
    from app.db.session import Database

    s = _settings()
    s.home.mkdir(parents=True, exist_ok=True)
    if s.auto_migrate:
        migrate.upgrade(s.db_url)
    _, token = auth.issue(Database(s.db_url), "admin", None, label)
    sys.stdout.write(token + "\n")


if __name__ == "__main__":
    app()
