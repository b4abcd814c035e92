#!/usr/bin/env python3
"""Two animals at the door: does a second animal slip in? Writes docs/two_animals.md and .json.

Gallery: the first 800 cats and 800 dogs of `catsdogs/` (as `scripts/demo.sh`). Test visits (20
live frames at 20 fps through the service's pipeline and door window, K=3 of N=5):

- two animals side by side, made from unseen photos, both orders: dog+cat, dog+other animal,
  cat+other animal (other animals: `others/` and `raccoon/`, never in the gallery). Any door
  that opens is a wrong open: the kennel admits one animal at a time.
- single animals (unseen cats and dogs): admitted within 1 s, and wrong opens, so the head
  count's cost in availability is measured beside its gain.

Each with the head count (`head_count=on`, the detector from `kennelgate model build detector`)
and without it (`off`), on the same frames; plus the time per frame of each.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import typer
from PIL import Image

from index.folders import OTHER, scan_species
from kennelgate.door import WindowPolicy
from kennelgate.engine import Engine
from kennelgate.motion import MotionGate
from kennelgate.progress import progress_bar
from kennelgate.settings import Settings
from kennelgate.visits import run_visits

cli = typer.Typer(add_completion=False)
HALF = (320, 320)  # each animal's half of a 640×320 frame


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    frame = Image.new("RGB", (2 * HALF[0], HALF[1]))
    frame.paste(left.convert("RGB").resize(HALF), (0, 0))
    frame.paste(right.convert("RGB").resize(HALF), (HALF[0], 0))
    return frame


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    out: Path = typer.Option(Path("docs"), help="Where two_animals.md and .json go."),
    pairs: int = typer.Option(60, help="Pairs per kind (each shown in both orders)."),
    singles: int = typer.Option(150, help="Single-animal visits (half cats, half dogs)."),
    frames: int = typer.Option(20, help="Live frames per visit (20 fps: 20 = 1 s)."),
    seed: int = 0,
) -> None:
    """Visits of two animals side by side, and of single animals, with and without the head count."""
    rng = np.random.default_rng(seed)
    cats = scan_species(data / "catsdogs" / "cat", "cat")
    dogs = scan_species(data / "catsdogs" / "dog", "dog")
    others = scan_species(data / "others", OTHER) + scan_species(data / "raccoon", OTHER)
    base = Settings()
    results: dict = {"command": "python " + " ".join(sys.argv), "frames_per_visit": frames, "modes": {}}
    engine = Engine(base.model_copy(update={"head_count": "off"}))
    gallery_photos = cats[:800] + dogs[:800]
    with progress_bar("gallery", len(gallery_photos)) as advance:
        kept, vectors, _ = engine.embed_photos(gallery_photos, advance)
    gallery = engine.gallery_from(kept, vectors)

    load = lambda p: engine.encoder.load(p.path)  # noqa: E731
    test_cats, test_dogs = cats[800:], dogs[800:]
    pick = lambda xs, n: [xs[i] for i in rng.permutation(len(xs))[:n]]  # noqa: E731
    kinds = {"dog+cat": (pick(test_dogs, pairs), pick(test_cats, pairs)),
             "dog+other animal": (pick(test_dogs, pairs), pick(others, pairs)),
             "cat+other animal": (pick(test_cats, pairs), pick(others, pairs))}
    two: dict[str, list[Image.Image]] = {}
    for kind, (a, b) in kinds.items():
        two[kind] = [side_by_side(load(x), load(y)) for x, y in zip(a, b)] + [side_by_side(load(y), load(x)) for x, y in zip(a, b)]
    single = pick(test_cats, singles // 2) + pick(test_dogs, singles - singles // 2)
    single_images = [load(p).convert("RGB") for p in single]

    policy = WindowPolicy(base.window_k, base.window_n, base.window_seconds)
    for mode in ("off", "on"):
        s = base.model_copy(update={"head_count": mode})
        e = Engine(s)
        e._encoder = engine.encoder  # the same loaded encoder  # noqa: SLF001
        from kennelgate.deciders import decider_from

        pipeline = e.pipeline(decider=decider_from(s, gallery))
        motion = lambda: MotionGate(s.motion_threshold, s.motion_max_skip, s.motion_idle_after, s.motion_idle_every)  # noqa: E731
        row: dict = {"two": {}}
        t0 = time.perf_counter()
        n_frames = 0
        for kind, images in two.items():
            with progress_bar(f"{kind} ({mode})", frames) as advance:
                _, summary = run_visits(pipeline, images, [OTHER] * len(images), [f"{kind}/{i}" for i in range(len(images))],
                                        {"cat", "dog"}, policy, motion, frames=frames, health=s.health, seed=seed,
                                        size=(640, 320), on_progress=advance)
            n_frames += len(images) * frames
            row["two"][kind] = {"visits": len(images), "opened": summary.wrong_open_unknown,
                                "examples": summary.wrong_opens[:5]}
        with progress_bar(f"single animals ({mode})", frames) as advance:
            _, summary = run_visits(pipeline, single_images, [p.species for p in single], [str(p.path) for p in single],
                                    {"cat", "dog"}, policy, motion, frames=frames, health=s.health, seed=seed,
                                    on_progress=advance)
        n_frames += len(single_images) * frames
        row["single"] = {"visits": len(single_images), "admitted": summary.admitted,
                         "wrong_open": summary.wrong_open_known, "frame_right_accept": summary.frame_right_accept}
        row["ms_per_frame"] = 1000 * (time.perf_counter() - t0) / n_frames
        if mode == "on":  # why the head count refused single-animal photos the gallery accepted
            row["single_refused"] = refusals(pipeline.run(single_images))
        results["modes"][mode] = row

    out.mkdir(parents=True, exist_ok=True)
    (out / "two_animals.json").write_text(json.dumps(results, indent=2))
    md = markdown(results)
    (out / "two_animals.md").write_text(md)
    print(md)


def refusals(results) -> dict:
    """Single-animal photos the head count kept shut, by rule; "all named alike" counts the photos
    with several animals found that the gallery names all as the same species (several cats or
    dogs really in view, not a detector error)."""
    out = {"accepted by the gallery": 0, "more animals than allowed": 0, "of which all named alike": 0,
           "an animal in it like another species": 0, "an animal beside (strip check)": 0, "other": 0}
    for r in results:
        if r.decision is None or not r.decision.accepted or r.error or not r.health.ok:
            continue
        out["accepted by the gallery"] += 1
        if not r.crowd:
            continue
        if "may pass at once" in r.crowd:
            out["more animals than allowed"] += 1
            named = {a["species"] for a in r.animals if a["accepted"]}
            out["of which all named alike"] += all(a["accepted"] for a in r.animals) and len(named) == 1
        elif "another species" in r.crowd:
            out["an animal in it like another species"] += 1
        elif "beside" in r.crowd:
            out["an animal beside (strip check)"] += 1
        else:
            out["other"] += 1
    return out


def markdown(r: dict) -> str:
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    off, on = r["modes"]["off"], r["modes"]["on"]
    lines = ["# Two animals at the door", "", f"Command: `{r['command']}`. Visits of {r['frames_per_visit']} live frames "
             "(20 fps) through the service's pipeline and door window (3 of 5). Gallery: 800 cats + 800 dogs of "
             "`catsdogs/`; every test photo unseen. Head count: MediaPipe's SSD-MobileNetV2 (Open Images V4) "
             "counts animals in frames the gallery accepts; more than one keeps the door shut, and so does a strip beside "
             "the one animal found that the encoder's ImageNet head takes for an animal (`beside_animal_p`, 0.1).", "",
             "| visits | without head count | with head count |", "|---|---|---|"]
    for kind, v in off["two"].items():
        lines.append(f"| {kind} side by side ({v['visits']} visits, both orders): a door opened | {pct(v['opened'])} | "
                     f"{pct(on['two'][kind]['opened'])} |")
    so, sn = off["single"], on["single"]
    for mark in so["admitted"]:
        lines.append(f"| single cat or dog ({so['visits']} visits): admitted within {mark} | {pct(so['admitted'][mark])} | "
                     f"{pct(sn['admitted'][mark])} |")
    lines += [f"| single cat or dog: opened a wrong door | {pct(so['wrong_open'])} | {pct(sn['wrong_open'])} |",
              f"| single cat or dog: frames accepted right | {pct(so['frame_right_accept'])} | {pct(sn['frame_right_accept'])} |",
              f"| time per frame, whole run (2 cores) | {off['ms_per_frame']:.1f} ms | {on['ms_per_frame']:.1f} ms |"]
    if "single_refused" in on:
        lines += ["", "Single-animal photos (each once, no camera) that the gallery accepts and the head count keeps shut, by rule:",
                  "", "| | photos |", "|---|---|"] + [f"| {k} | {v} |" for k, v in on["single_refused"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    cli()
