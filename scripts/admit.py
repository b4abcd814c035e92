#!/usr/bin/env python3
"""Does the door admit the right animal? Grouped cross-validation on ../shared/datasets; writes
docs/admit.md, docs/admit.json and docs/admit_frontier.png.

Folds keep near-twins together (twin groups: embedding cosine ≥ the settings' ``twin_cosine``),
so no test photo has its own twin in the gallery. Gallery: 4 folds of cats and dogs
(`catsdogs/` + `breeds/`); test: the 5th fold, plus `others/` and `others_objects/` (198
animals and objects never in any gallery). Points marked "+ other" also file the unknowns of
the 4 gallery folds under ``other`` (as staff file animals that must not get in) and test the
5th fold's unknowns: each unknown is tested once, never against itself. Every operating point
is measured on the same folds:

- per frame: right animals accepted as themselves (health gate included), swapped, unknowns let in;
- raccoons as an unknown: all 196, never enrolled, against each fold's gallery; and half of them
  filed under ``other``, the other half tested (what filing a wildlife visitor buys);
- calibration error: the accept rate each species' calibration predicts vs the one measured;
- a new species: half the raccoons (by twin group) enrolled, the other half tested, and the
  cat/dog decisions that changed;
- per visit (fold 0): each test photo a visit of live frames through the service's pipeline and
  door window;
- night and weather (fold 0): night_ir 2-3, fog 2, rain 2 through the same pipeline.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import typer

from index.folders import OTHER, LabeledPhoto, scan_species
from index.gallery import Gallery, SpeciesPhotos
from index.scoring import twin_groups
from kennelgate.corruptions import to_work_size
from kennelgate.deciders import calibrate_from, decider_from
from kennelgate.door import WindowPolicy
from kennelgate.engine import Engine
from kennelgate.health import check
from kennelgate.motion import MotionGate
from kennelgate.progress import progress_bar
from kennelgate.robustness import run_suite
from kennelgate.settings import Settings
from kennelgate.visits import run_visits

cli = typer.Typer(add_completion=False)
KNOWN = ("cat", "dog")
# Operating points compared on the same folds: (label, settings changes).
# A point's "other": file the gallery folds' unknowns under 'other' (the contrast score uses them).
POINTS = [
    ("before: 0.85, leave-one-out, no margin, knn", {"target_accept": 0.85, "twin_cosine": 1.01, "min_margin": 0.0, "method": "knn"}),
    ("default: 0.95, grouped, margin 0.025", {}),
    ("0.95 + other", {"other": True}),
    ("0.97 + other", {"target_accept": 0.97, "other": True}),
    ("0.98 + other", {"target_accept": 0.98, "other": True}),
    ("0.985 + other", {"target_accept": 0.985, "other": True}),
    ("0.985 + other, knn (no contrast)", {"target_accept": 0.985, "other": True, "method": "knn"}),
    ("0.985", {"target_accept": 0.985}),
]
DEFAULT_POINT = next(label for label, _ in POINTS if label.startswith("default"))
VISIT_POINTS = (POINTS[0][0], DEFAULT_POINT, "0.985 + other")
WEATHER = [("night_ir", 2), ("night_ir", 3), ("fog", 2), ("rain", 2)]


def admission_photos(data: Path) -> list[LabeledPhoto]:
    """Cats and dogs (`catsdogs/` + `breeds/`), then the 198 unknowns under `other`, then raccoons."""
    known = scan_species(data / "catsdogs" / "cat", "cat") + scan_species(data / "catsdogs" / "dog", "dog")
    known += scan_species(data / "breeds" / "cat", "cat") + scan_species(data / "breeds" / "dog", "dog")
    unknown = [p for d in ("others", "others_objects") for p in scan_species(data / d, OTHER)]
    return known + unknown + scan_species(data / "raccoon", "raccoon")


def point_settings(settings: Settings, label: str) -> tuple[Settings, bool]:
    """The settings of an operating point, and whether it files the gallery folds' unknowns under 'other'."""
    change = dict(dict(POINTS)[label])
    filed = bool(change.pop("other", False))
    return settings.model_copy(update=change), filed


def gallery_of(engine: Engine, vecs: np.ndarray, photos: list[LabeledPhoto], idx) -> Gallery:
    g = engine.empty_gallery()
    for s in sorted({photos[i].species for i in idx}):
        rows = [i for i in idx if photos[i].species == s]
        g.add(s, SpeciesPhotos(vecs[rows], [str(photos[i].path) for i in rows], [photos[i].breed for i in rows]))
    return g


def per_frame(decisions, truths, healthy) -> dict:
    t = np.array(truths, dtype=object)
    acc = np.array([d.accepted for d in decisions]) & healthy
    sp = np.array([d.species for d in decisions], dtype=object)
    kn = t != OTHER
    return {
        "right": float((acc & (sp == t))[kn].mean()),
        "swapped": float((acc & (sp != t))[kn].mean()),
        "unknown_in": float(acc[~kn].mean()) if (~kn).any() else float("nan"),
    }


@cli.command()
def main(
    data: Path = typer.Option(Path("../shared/datasets"), help="The shared datasets folder."),
    out: Path = typer.Option(Path("docs"), help="Where admit.md, admit.json and the plot go."),
    folds: int = typer.Option(5, help="Cross-validation folds."),
    visit_frames: int = typer.Option(20, help="Live frames per visit (20 fps: 20 = 1 s)."),
    visits_max: int = typer.Option(600, help="At most this many known-animal visits (fold 0), plus every unknown."),
    weather_max: int = typer.Option(400, help="At most this many known photos in the weather runs (fold 0)."),
    models: str = typer.Option(
        "efficientnet-lite1,efficientnet-lite0,efficientnet-lite2",
        help="Candidate encoders compared per frame on the same folds at the default operating point.",
    ),
    seed: int = 0,
) -> None:
    """Availability and safety of the door, per frame and per visit, on grouped folds."""
    settings = Settings()
    engine = Engine(settings)
    photos = admission_photos(data)
    with progress_bar("embedding", len(photos)) as advance:
        photos, vecs, _ = engine.embed_photos(photos, advance)
    detector = engine.health_detector
    with progress_bar("health gate", len(photos)) as advance:
        healthy = []
        for p in photos:
            healthy.append(check(engine.encoder.load(p.path), settings.health, detector).ok)
            advance(1)
    healthy = np.array(healthy)
    species = np.array([p.species for p in photos], dtype=object)
    groups = twin_groups(vecs, settings.twin_cosine)
    rng = np.random.default_rng(seed)
    fold_of_group = rng.integers(0, folds, groups.max() + 1)
    fold = fold_of_group[groups]
    k_idx = np.flatnonzero(np.isin(species, KNOWN))
    u_idx = np.flatnonzero(species == OTHER)
    r_idx = np.flatnonzero(species == "raccoon")
    r_half = fold_of_group[groups[r_idx]] % 2  # 0 → enrolled, 1 → tested; twins stay on one side

    report: dict = {"command": "python " + " ".join(sys.argv), "folds": folds, "seed": seed, "model": settings.model,
                    "photos": {"known": len(k_idx), "unknown": len(u_idx), "raccoon": len(r_idx)},
                    "twin_groups_with_twins": int((np.bincount(groups) > 1).sum()), "points": {}}
    with progress_bar("operating points × folds", len(POINTS) * folds) as advance:
        for label, _ in POINTS:
            s, filed = point_settings(settings, label)
            rows, calib, racc, unknown_in = [], {n: [] for n in KNOWN}, [], []
            for f in range(folds):
                g_idx = k_idx[fold[k_idx] != f]
                u_test = u_idx[fold[u_idx] == f] if filed else u_idx
                if filed:
                    g_idx = np.concatenate([g_idx, u_idx[fold[u_idx] != f]])
                t_idx = np.concatenate([k_idx[fold[k_idx] == f], u_test])
                g = gallery_of(engine, vecs, photos, g_idx)
                cal = calibrate_from(s, g)
                dec = decider_from(s, g, cal).decide(vecs[t_idx])
                truths = list(species[t_idx])
                rows.append(per_frame(dec, truths, healthy[t_idx]))
                unknown_in += [d.accepted and keep for d, keep, t in zip(dec, healthy[t_idx], truths) if t == OTHER]
                for n in KNOWN:
                    m = species[t_idx] == n
                    measured = np.mean([d.accepted and d.species == n for d, keep in zip(dec, m) if keep])
                    calib[n].append((cal.methods[s.method][n].loo_accept_rate, float(measured)))
                # A new species: half the raccoons enrolled; nothing else may change.
                g2 = g.copy()
                enrolled = r_idx[r_half == 0]
                g2.add("raccoon", SpeciesPhotos(vecs[enrolled], [str(photos[i].path) for i in enrolled], [None] * len(enrolled)))
                cal2 = calibrate_from(s, g2, previous=cal, changed={"raccoon"})
                tested = r_idx[r_half == 1]
                d2 = decider_from(s, g2, cal2).decide(vecs[np.concatenate([t_idx, tested])])
                old = [(a.species, a.accepted) for a in dec]
                new = [(a.species, a.accepted) for a in d2[: len(t_idx)]]
                kn = species[t_idx] != OTHER
                # Raccoons as an unknown: never enrolled; then half of them filed under 'other'.
                as_unknown = decider_from(s, g, cal).decide(vecs[r_idx])
                g3 = g.copy()
                g3.add(OTHER, SpeciesPhotos(vecs[enrolled], [str(photos[i].path) for i in enrolled], [None] * len(enrolled)))
                d3 = decider_from(s, g3).decide(vecs[np.concatenate([tested, t_idx[kn]])])
                known_truth = species[t_idx[kn]]
                racc.append({
                    "accepted": float(np.mean([d.accepted and d.species == "raccoon" for d in d2[len(t_idx):]])),
                    "best_match": float(np.mean([d.best == "raccoon" for d in d2[len(t_idx):]])),
                    "catdog_changed": float(np.mean([a != b for a, b, k in zip(old, new, kn) if k])),
                    "predicted": cal2.methods[s.method]["raccoon"].loo_accept_rate,
                    "unknown_in": float(np.mean([d.accepted for d in as_unknown] & healthy[r_idx])),
                    "filed_other_in": float(np.mean([d.accepted for d in d3[: len(tested)]] & healthy[tested])),
                    "filed_other_catdog_right": float(np.mean(
                        [d.accepted and d.species == t for d, t in zip(d3[len(tested):], known_truth)] & healthy[t_idx[kn]])),
                })
                advance(1)
            frame = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            frame["unknown_in"] = float(np.mean(unknown_in))  # pooled: each unknown counted once per test
            report["points"][label] = {
                "settings": {**{k: getattr(s, k) for k in ("target_accept", "twin_cosine", "min_margin", "k", "method")},
                             "other_photos": filed},
                "frame": frame,
                "frame_std": {k: float(np.std([r[k] for r in rows])) for k in rows[0]},
                "calibration": {n: {"predicted": float(np.mean([p for p, _ in v])), "measured": float(np.mean([m for _, m in v]))}
                                for n, v in calib.items()},
                "raccoon": {k: float(np.mean([r[k] for r in racc])) for k in racc[0]},
            }

    # Candidate encoders: the same photos, folds and operating point, per frame.
    report["encoders"] = {}
    default_point, _ = point_settings(settings, DEFAULT_POINT)
    for model in [m for m in models.split(",") if m]:
        other = Engine(default_point.model_copy(update={"model": model}))
        if model == settings.model:
            mvecs = vecs
        else:
            with progress_bar(f"embedding ({model})", len(photos)) as advance:
                kept, mvecs, _ = other.embed_photos(photos, advance)
            if len(kept) != len(photos):
                continue
        rows = []
        for f in range(folds):
            g_idx = k_idx[fold[k_idx] != f]
            t_idx = np.concatenate([k_idx[fold[k_idx] == f], u_idx])
            g = gallery_of(other, mvecs, photos, g_idx)
            dec = decider_from(other.settings, g).decide(mvecs[t_idx])
            rows.append(per_frame(dec, list(species[t_idx]), healthy[t_idx]))
        spec = other.encoder.spec
        report["encoders"][model] = {"input_size": spec.preprocess.input_size,
                                     **{k: float(np.mean([r[k] for r in rows])) for k in rows[0]}}

    # Visits and weather on fold 0, through the service's pipeline: "before", the default and the
    # default with unknowns filed under 'other'. Raccoons (never enrolled) are unknown visits too.
    t_known = k_idx[fold[k_idx] == 0]
    t_known = rng.permutation(t_known)[:visits_max]
    policy = WindowPolicy(settings.window_k, settings.window_n, settings.window_seconds)
    for label in VISIT_POINTS:
        s, filed = point_settings(settings, label)
        g_idx = k_idx[fold[k_idx] != 0]
        u_test = u_idx[fold[u_idx] == 0] if filed else u_idx
        if filed:
            g_idx = np.concatenate([g_idx, u_idx[fold[u_idx] != 0]])
        t_idx = np.concatenate([t_known, u_test, r_idx])
        images = [to_work_size(engine.encoder.load(photos[i].path)) for i in t_idx]
        decider = decider_from(s, gallery_of(engine, vecs, photos, g_idx))
        pipeline = engine.pipeline(decider=decider)
        ids = [str(photos[i].path) for i in t_idx]
        with progress_bar(f"visits ({label.split(':')[0]})", visit_frames) as advance:
            _, summary = run_visits(
                pipeline, images, list(species[t_idx]), ids, set(KNOWN), policy,
                lambda: MotionGate(s.motion_threshold, s.motion_max_skip, s.motion_idle_after, s.motion_idle_every),
                frames=visit_frames, health=s.health, seed=seed, on_progress=advance,
            )
        visits = summary.as_dict()
        racc_ids = {ids[i] for i in range(len(t_idx)) if species[t_idx[i]] == "raccoon"}
        visits["raccoon_visits"] = len(racc_ids)
        visits["wrong_open_raccoon"] = sum(w["id"] in racc_ids for w in visits["wrong_opens"]) / max(len(racc_ids), 1)
        report["points"][label]["visits"] = visits
        w_idx = np.concatenate([t_known[:weather_max], u_test])
        with progress_bar(f"weather ({label.split(':')[0]})", 1 + len(WEATHER)) as advance:
            weather = {}
            for corruption, sev in WEATHER:
                res = run_suite(engine, decider, [photos[i] for i in w_idx], [corruption], [sev], s.health, s.window_k, seed)
                c = res.conditions[-1]
                weather[f"{corruption} {sev}"] = {"right": c.right_accept_rate, "wrong_accept": c.wrong_accept_frame,
                                                  "gate": c.gate_rate, "wrong_open": c.wrong_open_window}
                advance(1)
            clean = res.conditions[0]
            weather["clean"] = {"right": clean.right_accept_rate, "wrong_accept": clean.wrong_accept_frame,
                                "gate": clean.gate_rate, "wrong_open": clean.wrong_open_window}
            advance(1)
        report["points"][label]["weather"] = weather

    out.mkdir(parents=True, exist_ok=True)
    (out / "admit.json").write_text(json.dumps(report, indent=2))
    plot(report, out / "admit_frontier.png")
    md = markdown(report)
    (out / "admit.md").write_text(md)
    print(md)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, p in report["points"].items():
        f = p["frame"]
        ax.scatter(100 * f["unknown_in"], 100 * f["right"], s=40)
        ax.annotate(label, (100 * f["unknown_in"], 100 * f["right"]), fontsize=7, xytext=(4, -3), textcoords="offset points")
    ax.axhline(97, color="grey", ls=":", lw=1)
    ax.axvline(1, color="grey", ls=":", lw=1)
    ax.set_xlabel("unknown animals and objects let in, per frame (%)")
    ax.set_ylabel("cats and dogs accepted right, per frame (%)")
    ax.set_title("Operating points on grouped 5-fold CV (goal: top left of the dotted lines)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(r: dict) -> str:
    pct = lambda v: "n/a" if v is None or v != v else f"{100 * v:.2f}%"  # noqa: E731
    lines = [
        "# Admitting the right animal: measured on grouped folds",
        "",
        f"Command: `{r['command']}`. {r['folds']}-fold cross-validation, folds by twin group "
        f"({r['twin_groups_with_twins']} groups hold near-twins). Known: {r['photos']['known']} cats and dogs "
        f"(`catsdogs/` + `breeds/`); unknown: {r['photos']['unknown']} animals and objects never in a gallery; "
        f"raccoon: {r['photos']['raccoon']} (half enrolled, half tested). Model: {r['model']} (default). "
        "Per-frame figures include the health gate (a refused frame is not accepted). \"+ other\": the gallery "
        "folds' unknowns are filed under `other` and each unknown is tested once from the fold that holds it out; "
        "score: `contrast` (kNN minus half the kNN score to `other`; plain kNN when nothing is filed) unless "
        "the point says knn.",
        "",
        "![operating points](admit_frontier.png)",
        "",
        "## Per frame (mean over folds)",
        "",
        "| operating point | cats+dogs accepted right | swapped | unknowns let in | raccoons (never enrolled) let in "
        "| raccoons let in, half filed under other (cats+dogs right then) | raccoon accepted (enrolled from half) "
        "| cat/dog decisions changed by raccoon |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, p in r["points"].items():
        f, rc = p["frame"], p["raccoon"]
        lines.append(f"| {label} | {pct(f['right'])} | {pct(f['swapped'])} | {pct(f['unknown_in'])} | "
                     f"{pct(rc['unknown_in'])} | {pct(rc['filed_other_in'])} ({pct(rc['filed_other_catdog_right'])}) | "
                     f"{pct(rc['accepted'])} (best match {pct(rc['best_match'])}) | {pct(rc['catdog_changed'])} |")
    if r.get("encoders"):
        lines += ["", "## Candidate encoders at the default operating point (same folds)", "",
                  "| encoder | input | cats+dogs accepted right | swapped | unknowns let in |", "|---|---|---|---|---|"]
        for m, e in r["encoders"].items():
            lines.append(f"| {m} | {e['input_size']} px | {pct(e['right'])} | {pct(e['swapped'])} | {pct(e['unknown_in'])} |")
        lines.append("")
        lines.append("Speed of each: `kennelgate bench --variants …` (docs/benchmarks.md).")
    lines += ["", "## Calibration error: accept rate predicted from the gallery vs measured on the held-out fold", "",
              "| operating point | cat predicted / measured | dog predicted / measured | raccoon predicted / measured |",
              "|---|---|---|---|"]
    for label, p in r["points"].items():
        c, rc = p["calibration"], p["raccoon"]
        lines.append(f"| {label} | {pct(c['cat']['predicted'])} / {pct(c['cat']['measured'])} | "
                     f"{pct(c['dog']['predicted'])} / {pct(c['dog']['measured'])} | "
                     f"{pct(rc['predicted'])} / {pct(rc['accepted'])} |")
    for label, p in r["points"].items():
        if "visits" not in p:
            continue
        v = p["visits"]
        lines += ["", f"## Visits and weather (fold 0): {label}", "",
                  f"{v['known_visits']} cat/dog visits and {v['unknown_visits']} unknown visits "
                  f"({v['raccoon_visits']} of them raccoons, never enrolled) of {v['frames_per_visit']} "
                  f"live frames at 20 fps through the service's pipeline (motion gating, health gate, decision) and "
                  f"door window (K={v['window']['k']} of N={v['window']['n']} within {v['window']['seconds']:g} s).", "",
                  "| | |", "|---|---|"]
        for mark, val in v["admitted"].items():
            lines.append(f"| right animal admitted within {mark} | {pct(val)} |")
        lines += [f"| known animal opened a wrong door | {pct(v['wrong_open_known'])} |",
                  f"| unknown animal opened a door (raccoons included) | {pct(v['wrong_open_unknown'])} |",
                  f"| raccoon opened a door | {pct(v['wrong_open_raccoon'])} |",
                  f"| frames of known animals accepted right | {pct(v['frame_right_accept'])} |",
                  f"| known visits with not one frame accepted | {pct(v['frame_never_admitted'])} |", "",
                  "| condition | cats+dogs accepted right | wrong accepts | stopped by the gate | wrong opens (K frames) |",
                  "|---|---|---|---|---|"]
        for cond, w in p["weather"].items():
            lines.append(f"| {cond} | {pct(w['right'])} | {pct(w['wrong_accept'])} | {pct(w['gate'])} | {pct(w['wrong_open'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    cli()
