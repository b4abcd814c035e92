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
