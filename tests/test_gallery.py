"""Gallery, calibration, decisions and the versioned store, on synthetic vectors."""

import numpy as np
import pytest

from index.calibration import calibrate
from index.decision import Decider
from index.gallery import Gallery, SpeciesPhotos
from index.scoring import held_out_scores, species_scores, twin_groups
from index.store import GalleryError, GalleryStore
from tests.conftest import clusters


def make(names=("cat", "dog"), dim=32, seed=0, **kw) -> tuple[Gallery, dict]:
    data = clusters(names=names, dim=dim, seed=seed, **kw)
    g = Gallery(fingerprint="fp1", dim=dim, model_name="test")
    for name, (x, _) in data.items():
        g.add(name, SpeciesPhotos(x, [f"{name}/{i}.jpg" for i in range(len(x))], [None] * len(x)))
    return g, data


def test_known_accepted_unknown_rejected():
    g, data = make(names=("cat", "dog", "fox"))
    fox = g.remove("fox")
    cal = calibrate(g, k=5, target_accept=0.95, target_far=0.01)
    dec = Decider(g, cal)
    cat_d = dec.decide(data["cat"][1][None, :])[0]
    assert cat_d.accepted and cat_d.species == "cat"
    fox_d = dec.decide(fox.vectors)
    assert sum(d.accepted for d in fox_d) == 0
    assert all(d.species == "other" and "below threshold" in d.reason for d in fox_d)


@pytest.mark.parametrize("method", ["knn", "prototype"])
def test_held_out_excludes_the_photo_itself(method):
    g, _ = make()
    x = g.species["cat"].vectors
    held = held_out_scores(g, "cat", method, 5, twin_groups(x, 0.999))
    _, full = species_scores(g, x, method, 5)
    assert np.all(held < full[:, 0])  # with itself included the score would be higher


def test_contrast_is_knn_without_other_and_keeps_look_alikes_of_other_out():
    g, data = make(names=("cat", "dog"))
    q = np.concatenate([data["cat"][0][:5], data["dog"][0][:5]])
    assert np.array_equal(species_scores(g, q, "contrast", 5)[1], species_scores(g, q, "knn", 5)[1])
    # A look-alike: between the cats and a 'fox' cluster that staff filed under 'other'.
    cat_c = data["cat"][1]
    fox = clusters(names=("fox",), seed=11)["fox"]
    fox_c = fox[1]
    g.add("other", SpeciesPhotos(fox[0], [f"o{i}" for i in range(len(fox[0]))], [None] * len(fox[0])))
    mid = cat_c + 0.8 * fox_c
    mid = (mid / np.linalg.norm(mid))[None, :].astype(np.float32)
    names, knn = species_scores(g, np.concatenate([mid, data["cat"][0][:1]]), "knn", 5)
    _, con = species_scores(g, np.concatenate([mid, data["cat"][0][:1]]), "contrast", 5)
    c, o = names.index("cat"), names.index("other")
    assert con[0, c] < knn[0, c] - 0.2 and con[1, c] > con[0, c]  # the look-alike loses most
    # The 'other' column keeps its place: it beats a species exactly when kNN says so.
    assert np.array_equal(con.argmax(1), knn.argmax(1))
    assert np.allclose(con[:, c] - con[:, o], knn[:, c] - knn[:, o], atol=1e-6)


def test_other_photos_count_as_unseen_negatives_in_calibration():
    """Each 'other' photo is scored without itself: against itself it is always closest to
    'other', and the false-accept check would never see it."""
    g, data = make(names=("cat", "dog", "other"), spread=0.6)
    from index.calibration import held_out_matrix

    names, held, _ = held_out_matrix(g, "other", "contrast", 5)
    _, full = species_scores(g, g.species["other"].vectors, "contrast", 5)
    o = names.index("other")
    assert np.all(held[:, o] < full[:, o])


def test_a_burst_is_held_out_whole_so_calibration_is_not_fooled_by_twins():
    """A species enrolled from bursts (10 near-identical frames of each scene): scored against
    its own twins, every photo looks certain; held out by twin group, the threshold is the one
    new scenes need."""
    rng = np.random.default_rng(0)
    centre = rng.normal(size=32)
    scenes = centre + rng.normal(scale=0.9, size=(30, 32))
    burst = np.repeat(scenes, 10, axis=0) + rng.normal(scale=0.02, size=(300, 32))
    burst /= np.linalg.norm(burst, axis=1, keepdims=True)
    g = Gallery(fingerprint="fp", dim=32)
    g.add("fox", SpeciesPhotos(burst, [str(i) for i in range(300)], [None] * 300))
    groups = twin_groups(burst, 0.9)
    assert len(np.unique(groups)) == 30  # one group per scene
    cal = calibrate(g, k=5, target_accept=0.9, target_far=0.01, twin_cosine=0.9)
    naive = calibrate(g, k=5, target_accept=0.9, target_far=0.01, twin_cosine=1.01)  # no grouping
    fox = cal.methods["knn"]["fox"]
    assert (fox.groups, fox.twin_photos) == (30, 300)
    assert naive.methods["knn"]["fox"].threshold > fox.threshold + 0.1
    new = centre + rng.normal(scale=0.9, size=(400, 32))
    new /= np.linalg.norm(new, axis=1, keepdims=True)
    rate = lambda c: np.mean([d.accepted for d in Decider(g, c).decide(new.astype(np.float32))])  # noqa: E731
    assert rate(naive) < 0.5 and 0.8 <= rate(cal) <= 0.97


def test_target_accept_is_met_held_out():
    g, _ = make(n_per=200)
    cal = calibrate(g, k=5, target_accept=0.9, target_far=0.01)
    for name in ("cat", "dog"):
        assert 0.88 <= cal.methods["knn"][name].loo_accept_rate <= 0.95


def test_other_photos_raise_the_threshold_to_meet_far():
    g, data = make(names=("cat", "dog", "other"), spread=0.6)
    # Negatives near the cats: some 'other' photos sit between the cat centre and elsewhere.
    cal_free = calibrate(g, k=5, target_accept=0.999, target_far=1.0)
    cal = calibrate(g, k=5, target_accept=0.999, target_far=0.0)
    for name in ("cat", "dog"):
        c = cal.methods["knn"][name]
        assert c.threshold >= cal_free.methods["knn"][name].threshold
        assert c.other_accept_rate == 0.0
    d = Decider(g, cal).decide(data["other"][0])
    assert not any(x.accepted for x in d)


def test_adding_a_species_does_not_change_old_scores_or_thresholds():
    g, data = make(names=("cat", "dog"))
    cal = calibrate(g, k=5, target_accept=0.95, target_far=0.01)
    q = np.concatenate([data["cat"][0][:5], data["dog"][0][:5]])
    names, before = species_scores(g, q, "knn", 5)
    extra = clusters(names=("raccoon",), seed=7)["raccoon"][0]
    g.add("raccoon", SpeciesPhotos(extra, [f"r{i}" for i in range(len(extra))], [None] * len(extra)))
    cal2 = calibrate(g, k=5, target_accept=0.95, target_far=0.01, previous=cal, changed={"raccoon"})
    names2, after = species_scores(g, q, "knn", 5)
    for j, n in enumerate(names):
        assert np.array_equal(before[:, j], after[:, names2.index(n)])
        assert cal2.methods["knn"][n] == cal.methods["knn"][n]
    assert Decider(g, cal2).decide(extra[:3])[0].species == "raccoon"


def test_breed_is_the_nearest_breed_prototype():
    data = clusters(names=("a", "b"), dim=16, seed=3)
    x = np.concatenate([data["a"][0], data["b"][0]])
    breeds = ["beagle"] * len(data["a"][0]) + ["pug"] * len(data["b"][0])
    g = Gallery("fp", 16)
    g.add("dog", SpeciesPhotos(x, [str(i) for i in range(len(x))], breeds))
    cal = calibrate(g, k=5, target_accept=0.99, target_far=0.01)
    d = Decider(g, cal).decide(np.stack([data["a"][1], data["b"][1]]))
    assert [x.breed for x in d] == ["beagle", "pug"]


def test_too_few_photos_and_wrong_dim_are_refused():
    g = Gallery("fp", 8)
    with pytest.raises(ValueError, match="at least"):
        g.add("cat", SpeciesPhotos(np.eye(8, dtype=np.float32)[:2], ["a", "b"], [None, None]))
    with pytest.raises(ValueError, match="dim"):
        g.add("cat", SpeciesPhotos(np.ones((4, 4), np.float32), list("abcd"), [None] * 4))
    with pytest.raises(KeyError, match="no species"):
        g.remove("cat")


def test_store_roundtrip_versions_and_fingerprint(tmp_path):
    g, data = make()
    cal = calibrate(g, k=5, target_accept=0.95, target_far=0.01)
    store = GalleryStore(tmp_path / "gallery")
    v1 = store.save(g, cal)
    snap = store.load(fingerprint="fp1")
    assert snap.version == v1 and snap.gallery.names() == ["cat", "dog"]
    assert np.array_equal(snap.gallery.species["cat"].vectors, g.species["cat"].vectors)
    assert snap.calibration == cal
    with pytest.raises(GalleryError, match="cannot be mixed"):
        store.load(fingerprint="another-model")
    g.remove("dog")
    v2 = store.save(g, calibrate(g, k=5, target_accept=0.95, target_far=0.01))
    assert v2 > v1 and store.load().gallery.names() == ["cat"]
    assert store.load(version=v1).gallery.names() == ["cat", "dog"]  # old versions stay readable


def test_crash_mid_write_leaves_previous_version(tmp_path, monkeypatch):
    g, _ = make()
    cal = calibrate(g, k=5, target_accept=0.95, target_far=0.01)
    store = GalleryStore(tmp_path / "gallery")
    v1 = store.save(g, cal)

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("index.store.np.save", crash)
    with pytest.raises(OSError):
        store.save(g, cal)
    monkeypatch.undo()
    assert store.current_version() == v1
    assert store.versions() == [v1]  # no half-written version left behind
    assert store.load(fingerprint="fp1").gallery.names() == ["cat", "dog"]


def test_missing_gallery_has_a_clear_message(tmp_path):
    with pytest.raises(GalleryError, match="kennelgate gallery build"):
        GalleryStore(tmp_path / "nothing").load()


def test_a_large_species_is_searched_by_hnsw_with_the_exact_answers(monkeypatch):
    """Above EXACT_MAX photos a species gets an HNSW graph; its kNN scores match exact search."""
    import index.gallery as gallery_mod

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = SpeciesPhotos(x, [str(i) for i in range(3000)], [None] * 3000)
    monkeypatch.setattr(gallery_mod, "EXACT_MAX", 1000)
    approx = SpeciesPhotos(x, [str(i) for i in range(3000)], [None] * 3000)
    assert type(approx.index).__name__ == "IndexHNSWFlat"
    monkeypatch.setattr(gallery_mod, "EXACT_MAX", 10_000)
    assert type(exact.index).__name__ == "IndexFlatIP"
    q = x[:200] + rng.normal(scale=0.05, size=(200, 32)).astype(np.float32)
    _, ids_exact = exact.index.search(q, 5)
    _, ids_approx = approx.index.search(q, 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids_exact, ids_approx)])
    assert recall >= 0.99
