"""``kennelgate data …``: audit a photo tree before it becomes a gallery or a test set; split it."""

from __future__ import annotations

import base64
import html
import io
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from kennelgate.cli.common import _engine, _fail, console
from kennelgate.progress import err_console, progress_bar

data_app = typer.Typer(help="Data tools: audit a photo tree (duplicates, leaks, mislabels), split it.", no_args_is_help=True)


def _tree_or_fail(root: Path) -> None:
    if not root.is_dir() or not any(d.is_dir() for d in root.iterdir()):
        _fail(f"{root} is not a ROOT/<species>/ folder of photos")


@data_app.command("audit")
def data_audit(
    root: Path = typer.Argument(..., help="ROOT/<species>/[<breed>/]<photos>"),
    against: Optional[Path] = typer.Option(None, "--against", help="Another tree (e.g. the test set) to find leaks into."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per flagged file (path, problem, detail, suggested, of)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a page with thumbnails of every finding here."),
    near_cosine: float = typer.Option(0.88, help="Embedding cosine at or above which two photos are near-duplicates."),
) -> None:
    """Near-duplicates (groups), leaks into another tree, suspected mislabels with the suggested
    species, broken, tiny and odd files, and the balance of the classes."""
    from kennelgate.audit import audit, scan_tree

    _tree_or_fail(root)
    if against is not None:
        _tree_or_fail(against)
    engine = _engine()
    engine.encoder  # build the model (if needed) before the progress bar starts
    photos, _ = scan_tree(root)
    with progress_bar("auditing", len(photos)) as advance:
        result = audit(root, engine.encoder, against, near_cosine, engine.settings.batch_size, advance)
    if as_json:
        for f in result.findings:
            sys.stdout.write(json.dumps(f.as_record()) + "\n")
    else:
        table = Table("problem", "files", title=f"{result.photos} photos in {root}")
        for problem, n in sorted(result.by_problem().items()):
            table.add_row(problem, str(n))
        console.print(table)
        counts = ", ".join(f"{s} {n}" for s, n in sorted(result.counts.items()))
        console.print(f"classes: {counts}" + (f" — [yellow]imbalanced {result.imbalance:.1f}:1[/]" if result.imbalance > 3 else ""))
        for f in [f for f in result.findings if f.problem == "mislabeled"][:20]:
            console.print(f"[yellow]mislabeled?[/] {f.path}: {f.detail}")
    if report is not None:
        write_report(result, report)
        err_console.print(f"report: {report / 'index.html'}")


def _thumb(path: str, side: int = 128) -> str:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("RGB", (side, side))
            im = im.convert("RGB")
            im.thumbnail((side, side))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
        return f'<img src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}" alt="">'
    except Exception:  # noqa: BLE001 - a broken file gets a placeholder, not a broken report
        return '<div class="broken">✗</div>'


def write_report(result, out: Path) -> None:
    """index.html: a summary, then every finding with its thumbnail (and the other file's)."""
    out.mkdir(parents=True, exist_ok=True)
    e = html.escape
    parts = [f"<h1>Audit of {e(result.root)}</h1><p>{result.photos} photos; classes: "
             + ", ".join(f"{e(s)} {n}" for s, n in sorted(result.counts.items())) + "</p>"]
    titles = {"mislabeled": "Suspected mislabels (strongest evidence first)", "near_duplicate": "Near-duplicate groups",
              "leak": "Leaks into the other tree", "broken": "Broken files", "tiny": "Tiny photos", "odd": "Odd files"}
    for problem, title in titles.items():
        rows = [f for f in result.findings if f.problem == problem]
        if not rows:
            continue
        parts.append(f"<h2>{e(title)}: {len(rows)}</h2><div class='grid'>")
        if problem == "near_duplicate":
            for group in result.groups:
                parts.append("<div class='card'>" + "".join(_thumb(p) for p in group[:8])
                             + f"<p>{len(group)} photos: {e(', '.join(Path(p).name for p in group[:8]))}</p></div>")
        else:
            for f in rows:
                other = _thumb(f.of) if f.of else ""
                parts.append(f"<div class='card'>{_thumb(f.path)}{other}<p><b>{e(Path(f.path).name)}</b>: {e(f.detail)}</p></div>")
        parts.append("</div>")
    style = ("body{font-family:sans-serif;margin:1em} .grid{display:flex;flex-wrap:wrap;gap:8px}"
             ".card{border:1px solid #ccc;padding:4px;max-width:280px} .card img{margin:2px} .card p{font-size:12px}")
    (out / "index.html").write_text(f"<!doctype html><meta charset='utf-8'><title>KennelGate audit</title><style>{style}</style>"
                                    + "".join(parts))
    (out / "findings.json").write_text(json.dumps([f.as_record() for f in result.findings], indent=2))


@data_app.command("split")
def data_split(
    root: Path = typer.Argument(..., help="ROOT/<species>/ photos (e.g. from the internet)."),
    out: Path = typer.Option(..., "--out", help="Where manifest.json and train/dev/test.txt go."),
    field: Optional[Path] = typer.Option(None, "--field", help="The kennel's own camera photos, same layout: dev/test come from these."),
    seed: int = typer.Option(0, help="Same seed, same split."),
    twin_cosine: Optional[float] = typer.Option(None, help="Photos this alike are one group (default: the settings' twin_cosine)."),
) -> None:
    """Train/dev/test by source: one distribution 60/20/20 (dev/test capped when large); with
    --field, ~80% of the field photos train and the rest is dev/test, internet photos train.
    Near-duplicate groups never straddle two splits."""
    from embedder.batch import embed_sources
    from kennelgate.audit import dhash, near_duplicate_groups, scan_tree
    from kennelgate.splits import split, write_manifest

    _tree_or_fail(root)
    photos, _ = scan_tree(root)
    is_field = [False] * len(photos)
    if field is not None:
        _tree_or_fail(field)
        extra, _ = scan_tree(field)
        photos += extra
        is_field += [True] * len(extra)
    engine = _engine()
    engine.encoder
    with progress_bar("grouping", len(photos)) as advance:
        res = embed_sources(engine.encoder, [p.path for p in photos], engine.settings.batch_size, advance)
    for i, reason in sorted(res.errors.items()):
        err_console.print(f"[yellow]skipped[/] {photos[i].path}: {reason}")
    kept = [photos[i] for i in res.ok]
    mask = np.array([is_field[i] for i in res.ok])
    hashes = np.array([dhash(p.path) or 0 for p in kept], dtype=np.uint64)
    groups = near_duplicate_groups(res.vectors, hashes, hashes != 0, twin_cosine or engine.settings.twin_cosine)
    s = split(groups, mask if field is not None else None, seed)
    manifest = write_manifest(out, [str(p.path) for p in kept], [p.species for p in kept], groups, s,
                              mask if field is not None else None, seed, "kennelgate " + " ".join(sys.argv[1:]))
    table = Table("split", "photos", *sorted({p.species for p in kept}))
    for name in ("train", "dev", "test"):
        per = manifest["per_species"][name]
        table.add_row(name, str(manifest["counts"][name]), *(str(per[sp]) for sp in sorted(per)))
    console.print(table)
    console.print(f"manifest: {out / 'manifest.json'}")
