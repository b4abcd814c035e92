"""INT8 / FP16 variants of the real default model, runtimes (ORT, OpenVINO), variant bench, cascade."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from embedder.export import compress
from embedder.runtime import Encoder
from kennelgate import cascade
from tests.conftest import DATASETS, need_datasets, photo_root
from tests.test_cli import env, run  # noqa: F401 - the CLI fixture and runner

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def variants(default_model, tmp_path_factory):
    """INT8 (calibrated on 32 real photos) and FP16 beside a private copy of the default model."""
    need_datasets()
    cache = tmp_path_factory.mktemp("variants")
    base = cache / default_model.name
    shutil.copytree(default_model, base, ignore=shutil.ignore_patterns("model.opt-*"))
    photos = sorted((DATASETS / "catsdogs" / "dog").iterdir())[:16] + sorted((DATASETS / "catsdogs" / "cat").iterdir())[:16]
    int8 = compress.quantize_int8(base, cache / f"{base.name}-int8", photos)
    fp16 = compress.convert_fp16(base, cache / f"{base.name}-fp16")
    return cache, base, int8, fp16


def _embed(model_dir, providers, files):
    enc = Encoder(model_dir, providers=providers)
    return enc, enc.run(enc.preprocess([enc.load(f) for f in files])).vectors


def test_int8_and_fp16_stay_close_to_fp32_on_real_photos(variants):
    cache, base, int8, fp16 = variants
    assert int8.precision == "int8" and fp16.precision == "fp16"
    ref = compress.ModelSpec.load(base)
    assert len({ref.fingerprint, int8.fingerprint, fp16.fingerprint}) == 3  # never mixed in one gallery
    files = sorted((DATASETS / "catsdogs" / "cat").iterdir())[500:516]
    _, v32 = _embed(base, "cpu", files)
    _, v16 = _embed(cache / fp16.name, "cpu", files)
    assert (v32 * v16).sum(1).min() > 0.999
    auto, v8 = _embed(cache / int8.name, "auto", files)
    assert auto.providers == ["OpenVINO (CPU)"]  # INT8 runs where it keeps its accuracy
    # INT8 vectors sit ~0.97 from fp32 (a gallery is always embedded by the model that searches
    # it); onnxruntime's AVX2 INT8 kernels drift further, which is why auto picks OpenVINO.
    assert (v32 * v8).sum(1).min() > 0.9
    ort_int8, v8_ort = _embed(cache / int8.name, "cpu", files)
    assert ort_int8.providers == ["CPUExecutionProvider"] and (v32 * v8_ort).sum(1).min() > 0.8


def test_graph_optimised_model_is_cached_and_identical(variants):
    _, base, _, _ = variants
    files = sorted((DATASETS / "catsdogs" / "dog").iterdir())[600:604]
    for f in base.glob("model.opt-*"):
        f.unlink()
    _, first = _embed(base, "cpu", files)
    assert len(list(base.glob("model.opt-*.onnx"))) == 1
    _, second = _embed(base, "cpu", files)
    np.testing.assert_allclose(first, second, atol=1e-5)
    _, ov = _embed(base, "openvino", files)  # fp32 on OpenVINO gives the same vectors
    assert (first * ov).sum(1).min() > 0.9999


def test_too_few_calibration_photos_are_refused(variants, tmp_path):
    _, base, _, _ = variants
    with pytest.raises(ValueError, match="at least 16"):
        compress.quantize_int8(base, tmp_path / "x", sorted((DATASETS / "raccoon").iterdir())[:3])


def test_bench_variants_side_by_side(variants, tmp_path, env):  # noqa: F811
    cache, base, int8, _ = variants
    cats, dogs = sorted((DATASETS / "catsdogs" / "cat").iterdir()), sorted((DATASETS / "catsdogs" / "dog").iterdir())
    gallery = photo_root(tmp_path / "g", {"cat": cats[:40], "dog": dogs[:40]})
    test = photo_root(tmp_path / "t", {"cat": cats[700:710], "dog": dogs[700:710], "fox": sorted((DATASETS / "others").iterdir())[:10]})
    env = {**env, "KENNELGATE_MODEL_CACHE": str(cache)}
    out = tmp_path / "v.json"
    run(["bench", "--n", "8", "--variants", f"{base.name}@cpu,{int8.name}@openvino,{int8.name}@cpu",
         "--eval-gallery", str(gallery), "--eval-test", str(test), "--json", str(out), "--markdown", str(tmp_path / "v.md")], env)
    result = json.loads(out.read_text())
    rows = {v["variant"]: v for v in result["variants"]}
    assert rows[f"{int8.name} @ openvino"]["runtime"] == "OpenVINO (CPU)"
    assert rows[f"{int8.name} @ cpu"]["runtime"] == "CPUExecutionProvider"
    for v in rows.values():
        assert v["accuracy"] >= 0.9 and v["unknown_reject_rate"] >= 0.8
        assert {(r["stage"], r["batch"]) for r in v["rows"]} >= {("encoder", 1), ("encoder", 8), ("end to end", 1), ("end to end", 8)}
        assert all("ratio" in r for r in v["rows"] if r["stage"] in ("encoder", "end to end"))
    assert result["baseline"]["variant"] == "PyTorch eager fp32"
    assert "| PyTorch eager fp32 |" in (tmp_path / "v.md").read_text()


def test_cascade_margin_routes_only_what_it_must():
    # Small tier right except near its boundary; big tier always right.
    margin = np.array([0.2, -0.3, 0.01, -0.02, 0.5, 0.03])
    small_ok = np.array([True, True, False, False, True, True])
    big_ok = np.ones(6, bool)
    m, acc, routed = cascade.tune_margin(margin, small_ok, big_ok, tolerance=0.0)
    assert 0.02 < m <= 0.03 and acc == 1.0 and routed == pytest.approx(2 / 6)
    # With a tolerance of one frame in six, routing one frame is enough.
    m, acc, routed = cascade.tune_margin(margin, small_ok, big_ok, tolerance=0.17)
    assert routed == pytest.approx(1 / 6) and acc >= 1 - 0.17


def test_cascade_sends_uncertain_frames_to_the_big_tier(variants):
    from index.calibration import calibrate
    from index.decision import Decider
    from index.gallery import Gallery, SpeciesPhotos

    cache, base, int8, _ = variants
    cats, dogs = sorted((DATASETS / "catsdogs" / "cat").iterdir()), sorted((DATASETS / "catsdogs" / "dog").iterdir())
    tiers = []
    for model_dir in (cache / int8.name, base):
        enc = Encoder(model_dir)
        g = Gallery(enc.fingerprint, enc.dim, enc.spec.name)
        for name, files in (("cat", cats[:60]), ("dog", dogs[:60])):
            v = enc.run(enc.preprocess([enc.load(f) for f in files])).vectors
            g.add(name, SpeciesPhotos(v, [str(f) for f in files], [None] * len(files)))
        tiers.append(cascade.Tier(enc, Decider(g, calibrate(g, 5, 0.85, 0.01), k=5)))
    frames = [tiers[0].encoder.load(f) for f in cats[800:810] + sorted((DATASETS / "others").iterdir())[:10]]
    never = cascade.Cascade(tiers[0], tiers[1], margin=0.0)
    always = cascade.Cascade(tiers[0], tiers[1], margin=np.inf)
    d_small, r0 = never.decide(frames)
    d_big, r1 = always.decide(frames)
    assert not r0.any() and r1.all()
    assert [d.species for d in d_big] == [d.species for d in tiers[1].decide(frames)]
    some = cascade.Cascade(tiers[0], tiers[1], margin=0.05)
    mixed, routed = some.decide(frames)
    for d, s, b, r in zip(mixed, d_small, d_big, routed):
        assert d.species == (b.species if r else s.species)


def test_cascade_tune_cli_prints_a_margin_and_both_tiers(variants, tmp_path, env):  # noqa: F811
    cache, base, int8, _ = variants
    cats, dogs = sorted((DATASETS / "catsdogs" / "cat").iterdir()), sorted((DATASETS / "catsdogs" / "dog").iterdir())
    others = sorted((DATASETS / "others").iterdir())
    gallery = photo_root(tmp_path / "g", {"cat": cats[:50], "dog": dogs[:50], "other": others[:40:2]})
    out = run(["cascade", "tune", "--gallery", str(gallery), "--small", f"{int8.name}@openvino", "--big", f"{base.name}@cpu"],
              {**env, "KENNELGATE_MODEL_CACHE": str(cache), "COLUMNS": "200"}).stdout
    margin = float(out.strip().splitlines()[-1].split("=")[1])
    assert margin >= 0 and "small alone" in out and "big alone" in out and "cascade" in out


def test_distilled_students_export_and_embed(default_model, tmp_path, env):  # noqa: F811
    """`kennelgate model distill`: a 128-px student and a pruned one, trained briefly on real photos,
    exported with their own fingerprints; the pruned one is smaller; both embed real photos."""
    need_datasets()
    cache = tmp_path / "cache"
    shutil.copytree(default_model, cache / default_model.name, ignore=shutil.ignore_patterns("model.opt-*"))
    photos = photo_root(tmp_path, {"p": sorted((DATASETS / "catsdogs" / "dog").iterdir())[:40]}) / "p"
    env = {**env, "KENNELGATE_MODEL_CACHE": str(cache), "COLUMNS": "200"}
    small = run(["model", "distill", "--size", "128", "--photos", str(photos), "--epochs", "1", "--views", "1"], env).stdout
    assert "efficientnet-lite0-s128" in small and "cosine to the teacher" in small
    run(["model", "distill", "--prune", "0.3", "--photos", str(photos), "--epochs", "1", "--views", "1"], env)
    teacher = compress.ModelSpec.load(cache / default_model.name)
    s128 = compress.ModelSpec.load(cache / "efficientnet-lite0-s128")
    pruned = compress.ModelSpec.load(cache / "efficientnet-lite0-pruned30")
    assert s128.preprocess.input_size == 128 and s128.logits_output is None and s128.embedding_dim == teacher.embedding_dim
    assert len({teacher.fingerprint, s128.fingerprint, pruned.fingerprint}) == 3
    report = pruned.extra["report"]
    assert report["params_student"] < 0.8 * report["params_teacher"]
    assert s128.extra["report"]["cosine_before"] > 0.5  # the same weights at a lower resolution
    files = sorted((DATASETS / "catsdogs" / "cat").iterdir())[:4]
    for spec in (s128, pruned):
        enc, v = _embed(cache / spec.name, "cpu", files)
        assert v.shape == (4, teacher.embedding_dim) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    refused = run(["model", "distill", "--photos", str(photos)], env, check=False)
    assert refused.returncode == 2 and "--size" in refused.stderr


def test_encoder_batcher_shares_runs_and_gives_each_frame_its_own_vector(default_model):
    import threading

    from app.batcher import EncoderBatcher

    enc = Encoder(default_model, providers="cpu")
    files = sorted((DATASETS / "catsdogs" / "dog").iterdir())[:12]
    tensors = [enc.preprocess([enc.load(f)]) for f in files]
    alone = [enc.run(t).vectors[0] for t in tensors]
    batcher = EncoderBatcher(enc, max_batch=8, linger_ms=20)
    got: dict[int, np.ndarray] = {}

    def frame(i: int) -> None:
        got[i] = batcher.embed(tensors[i])

    threads = [threading.Thread(target=frame, args=(i,)) for i in range(len(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert batcher.items == 12 and batcher.batches < 12
    for i, v in enumerate(alone):
        assert float(v @ got[i]) > 0.9999
