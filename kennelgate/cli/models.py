"""``kennelgate model …``, ``cascade …`` and ``health …``: the encoder, its cascade and the health gate's detectors."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from embedder.registry import DEFAULT_MODEL
from index.folders import IMAGE_SUFFIXES, scan_root
from kennelgate.cli.common import (
    _engine, _expand, _fail, _settings, console,
)
from kennelgate.progress import announce_model_build, err_console, progress_bar, progress_bars

model_app = typer.Typer(help="Build and list encoder models (ONNX).", no_args_is_help=True)
cascade_app = typer.Typer(help="The two-tier cascade: a small model, and a big one for the frames it is unsure of.", no_args_is_help=True)
health_app = typer.Typer(help="The frame health gate's learned fault detectors.", no_args_is_help=True)


@model_app.command("build")
def model_build(
    name: str = typer.Argument(DEFAULT_MODEL, help="efficientnet-lite0, efficientnet-lite1 (default), efficientnet-lite2, open_clip:ARCH[:TAG|:CHECKPOINT], a name for --onnx, or `detector` (the head count's animal detector)."),
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
    source: Optional[Path] = typer.Option(
        None, help="detector: the @mediapipe/objectron package's .tgz (or its packed .data file) instead of `npm pack`."
    ),
) -> None:
    """Export a model into the shared model cache (and its INT8 / FP16 variants)."""
    s = _settings()
    if name == "detector":
        from embedder import detector

        try:
            with err_console.status("fetching the animal detector (npm package @mediapipe/objectron)…"):
                where = detector.fetch(s.animal_detector_dir, source)
        except detector.DetectorError as exc:
            _fail(str(exc))
        console.print(f"installed the animal detector (hash checked) in {where}; the head count uses it "
                      "(KENNELGATE_HEAD_COUNT=auto)")
        return
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


