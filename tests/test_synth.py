"Tests of reid_lit.synth on tiny datasets written to temporary folders (CPU, a few seconds)."
import collections, filecmp, os, re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat

from reid_lit.pose import COCO17, PART_NAMES
from reid_lit.synth import (ATTR_GROUPS, ATTR_NAMES, DEFAULT_SYNTH, TWIN_DETAILS, camera_styles, default_synth, identity_attributes,
                            load_annotations, make_synth_reid, render_background, render_image, synth_info, synth_plan, _code)

ARGS = dict(num_train_ids=5, num_test_ids=5, num_cams=3, size=(64, 32), video=True, tracklet_len=(3, 4), twin_frac=.4, seed=11)
MARKET = re.compile(r"^([-\d]+)_c(\d)s1_(\d{6})_(\d{2})\.jpg$")
MARS_NAME = re.compile(r"^(\d{4}|00-1)C(\d)T(\d{4})F(\d{3})\.jpg$")


def files(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return make_synth_reid(tmp_path_factory.mktemp("synth") / "ds", **ARGS)


def test_determinism(ds, tmp_path):
    again = make_synth_reid(tmp_path / "again", **dict(ARGS, workers=2))       # two processes, same bytes
    assert files(ds) == files(again)
    _, mismatch, errors = filecmp.cmpfiles(ds, again, files(ds), shallow=False)
    assert mismatch == [] and errors == []
    other = make_synth_reid(tmp_path / "other", **dict(ARGS, seed=12))
    assert (other / "annotations.npz").read_bytes() != (ds / "annotations.npz").read_bytes()


def test_counts_match_disk(ds):
    c = synth_info(ds)["counts"]
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        names = os.listdir(ds / folder)
        pids = {int(n.split("_")[0]) for n in names}
        assert c[folder]["images"] == len(names)
        assert c[folder]["ids"] == len(pids - {-1})
    gal = os.listdir(ds / "bounding_box_test")
    assert c["bounding_box_test"]["junk"] == sum(n.startswith("-1_c") for n in gal) > 0
    assert c["bounding_box_test"]["distractors"] == sum(n.startswith("0000_c") for n in gal) > 0
    assert c["mars"]["frames"] == sum(1 for _ in (ds / "bbox_train").rglob("*.jpg")) + sum(1 for _ in (ds / "bbox_test").rglob("*.jpg"))
    assert len(load_annotations(ds)) == sum(c[k]["images"] for k in ("bounding_box_train", "query", "bounding_box_test")) + c["mars"]["frames"]


def test_names(ds):
    seen = set()
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        for n in os.listdir(ds / folder):
            m = MARKET.match(n)
            assert m, n
            assert 1 <= int(m.group(2)) <= ARGS["num_cams"]
            assert n not in seen; seen.add(n)
    for folder in ("bbox_train", "bbox_test"):
        for pdir in (ds / folder).iterdir():
            for f in pdir.iterdir():
                m = MARS_NAME.match(f.name)
                assert m and m.group(1) == pdir.name, f
                assert f.name not in seen; seen.add(f.name)
    train_pids = {n[:4] for n in os.listdir(ds / "bounding_box_train")}
    test_pids = {n[:4] for n in os.listdir(ds / "query")}
    assert not train_pids & test_pids
    # every query identity is in the gallery under another camera
    gal = {(n.split("_")[0], n.split("_")[1][1]) for n in os.listdir(ds / "bounding_box_test")}
    for n in os.listdir(ds / "query"):
        pid, cam = n.split("_")[0], n.split("_")[1][1]
        assert any(p == pid and c != cam for p, c in gal), n


def test_keypoints_inside_parts(ds):
    ann = load_annotations(ds)
    own = {"nose": {1}, "eye": {1}, "ear": {1}, "shoulder": {2, 4}, "elbow": {2, 3}, "wrist": {3}, "hip": {4, 5},
           "knee": {5, 6}, "ankle": {6, 7}}
    n_vis = 0
    for name in ann:
        a = ann[name]
        assert a["keypoints"].shape == (17, 3) and a["keypoints"].dtype == np.float32
        assert a["parts"].shape == ARGS["size"] and a["parts"].max() < len(PART_NAMES)
        for j, (x, y, v) in enumerate(a["keypoints"]):
            assert v in (0, 1, 2)
            inside = 0 <= x < ARGS["size"][1] and 0 <= y < ARGS["size"][0]
            assert (v == 0) == (not inside)
            if v == 2:
                assert a["parts"][int(y), int(x)] in own[COCO17[j].split("_")[-1]], (name, COCO17[j])
                n_vis += 1
    assert n_vis > 1000


def test_twins_differ_in_one_group(ds):
    ann = load_annotations(ds)
    assert len(ann.twins) == round(.4 * 5) * 2
    assert ann.twins == [tuple(t) for t in synth_info(ds)["twins"]]
    by_pid = {}
    for name in ann:
        a = ann[name]
        if a["pid"] > 0: by_pid.setdefault(a["pid"], a["attrs"])
        if a["pid"] > 0: assert (by_pid[a["pid"]] == a["attrs"]).all()        # attributes belong to the identity
    for p, b, detail in ann.twins:
        assert detail in TWIN_DETAILS
        groups = {g for g, ix in ATTR_GROUPS.items() if (by_pid[p][list(ix)] != by_pid[b][list(ix)]).any()}
        assert groups == {{"shoes": "foot", "bag": "upper", "hat": "head", "sleeve": "upper"}[detail]}


def test_annotations_round_trip(ds):
    ann = load_annotations(ds)
    assert load_annotations(ds) is ann and load_annotations(ds / "annotations.npz") is ann
    assert ann.attr_names == ATTR_NAMES and len(ann.attr_names) == 32 and ann.attr_groups == ATTR_GROUPS
    plan = synth_plan(ds)
    styles = camera_styles("A", ARGS["num_cams"])
    for i in (0, 5, len(plan.shots) // 2, len(plan.shots) - 1):
        s = plan.shots[i]
        img, kps, lab = render_image(plan.identities[s.ident], s.view, s.phase, styles[s.cam - 1],
                                     np.random.default_rng([ARGS["seed"], _code("A"), 7, i]), ARGS["size"],
                                     render_background(styles[s.cam - 1], ARGS["size"]), s.box, s.mode)
        a = ann[os.path.basename(s.path)]
        np.testing.assert_array_equal(a["keypoints"], kps)
        np.testing.assert_array_equal(a["parts"], lab)
        np.testing.assert_array_equal(a["attrs"], identity_attributes(plan.identities[s.ident]))
        assert (a["pid"], a["camid"], a["view"]) == (s.pid, s.cam - 1, s.view)
        assert abs(np.asarray(Image.open(ds / s.path), np.float32) - img).mean() < 8
    with pytest.raises(KeyError, match="no annotation"): ann["0001_c9s1_000000_00.jpg"]


def test_video_layout_reads_like_mars(ds):
    "Read info/ exactly as torchreid's MARS parser does (its asserts included)."
    info = ds / "info"
    train_names = (info / "train_name.txt").read_text().split()
    test_names = (info / "test_name.txt").read_text().split()
    track_train = loadmat(info / "tracks_train_info.mat")["track_train_info"]
    track_test = loadmat(info / "tracks_test_info.mat")["track_test_info"]
    query_idx = loadmat(info / "query_IDX.mat")["query_IDX"].squeeze() - 1
    assert track_train.shape[1] == track_test.shape[1] == 4
    for names, table, home in ((train_names, track_train, "bbox_train"), (test_names, track_test, "bbox_test")):
        assert table[-1, 1] == len(names) and table[0, 0] == 1
        for start, end, pid, camid in table:
            assert 1 <= camid <= 6
            chunk = names[start - 1:end]
            assert len({n[:4] for n in chunk}) == 1 and len({n[5] for n in chunk}) == 1
            assert int(chunk[0][5]) == camid and (chunk[0][:4] == "00-1") == (pid == -1)
            for n in chunk: assert (ds / home / n[:4] / n).exists()
    q, g = track_test[query_idx], np.delete(track_test, query_idx, 0)
    assert (q[:, 2] > 0).all()
    for _, _, pid, cam in q: assert ((g[:, 2] == pid) & (g[:, 3] != cam)).any()
    assert (g[:, 2] == 0).any() and (g[:, 2] == -1).any()
    assert set(track_train[:, 2]).isdisjoint(set(track_test[:, 2]))
    ann = load_annotations(ds)
    a = ann[test_names[0]]
    assert a["split"] == "video_test" and a["keypoints"].shape == (17, 3)


def test_bad_arguments(ds, tmp_path):
    with pytest.raises(FileExistsError, match="already holds"): make_synth_reid(ds, **ARGS)
    with pytest.raises(ValueError, match="num_cams"): make_synth_reid(tmp_path / "x", num_cams=8, video=True)
    with pytest.raises(ValueError, match="difficulty"): make_synth_reid(tmp_path / "x", difficulty=2)
    with pytest.raises(ValueError, match="num_train_ids"): make_synth_reid(tmp_path / "x", num_train_ids=0)
    with pytest.raises(FileNotFoundError, match="make_synth_reid"): load_annotations(tmp_path)


def test_default_synth_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REID_LIT_DATA", str(tmp_path / "cache"))
    kw = dict(num_train_ids=3, num_test_ids=3, num_cams=2)
    d1 = default_synth(size=(32, 16), **kw)
    stamp = (d1 / "synth.json").stat().st_mtime_ns
    d2 = default_synth(size=(32, 16), **kw)
    assert d1 == d2 and (d2 / "synth.json").stat().st_mtime_ns == stamp          # drawn once
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [d1.name]          # atomic: no temporary folder left
    assert d1.name.startswith("synth-") and synth_info(d1)["params"]["size"] == [32, 16]
    assert default_synth(size=(32, 16), **dict(kw, seed=1)) != d1
    assert set(DEFAULT_SYNTH) >= {"num_train_ids", "num_test_ids", "num_cams", "domain", "seed"}


def test_occluded_queries(ds, tmp_path):
    "occluded_queries draws an extra occluder in front of the query people only; everything else keeps its bytes."
    occ = make_synth_reid(tmp_path / "occ", **dict(ARGS, occluded_queries=1.))
    queries = [f for f in files(ds) if f.startswith("query/")]
    same = [f for f in files(ds) if f not in queries and f not in ("annotations.npz", "synth.json")]
    assert files(occ) == files(ds)
    _, mismatch, errors = filecmp.cmpfiles(ds, occ, same, shallow=False)
    assert mismatch == [] and errors == []
    _, changed, _ = filecmp.cmpfiles(ds, occ, queries, shallow=False)
    assert sorted(changed) == queries
    info = synth_info(occ)
    assert info["occluded_queries"] == sorted(os.path.basename(q) for q in queries)
    assert info["params"]["occluded_queries"] == 1. and "occluded_queries" not in synth_info(ds)["params"]
    a0, a1 = load_annotations(ds), load_annotations(occ)
    names = [os.path.basename(q) for q in queries]
    body0, body1 = [(a0[n]["parts"] > 0).sum() for n in names], [(a1[n]["parts"] > 0).sum() for n in names]
    assert all(b1 <= b0 for b0, b1 in zip(body0, body1)) and sum(body1) < sum(body0)
    for n in a0:                                                   # only query annotations may differ
        if n not in names: assert np.array_equal(a0[n]["parts"], a1[n]["parts"]) and np.array_equal(a0[n]["keypoints"], a1[n]["keypoints"])
    again = make_synth_reid(tmp_path / "again", **dict(ARGS, occluded_queries=1.))
    _, mismatch, errors = filecmp.cmpfiles(occ, again, files(occ), shallow=False)
    assert mismatch == [] and errors == []
    some = synth_info(make_synth_reid(tmp_path / "some", **dict(ARGS, occluded_queries=.5)))["occluded_queries"]
    assert set(some) < set(info["occluded_queries"])
    with pytest.raises(ValueError, match="occluded_queries must be in"): make_synth_reid(tmp_path / "x", occluded_queries=-.1)


def test_box_jitter_alone(tmp_path):
    "box_jitter replaces only the detection-box jitter, is recorded (and re-planned) only when used, and is checked."
    from reid_lit.synth import camera_styles, jitter_styles, make_synth_reid, synth_info, synth_plan
    base, j = camera_styles('A', 3), jitter_styles(camera_styles('A', 3), 2.5)
    assert [s.scale_jitter for s in j] == pytest.approx([.175] * 3) and [s.shift_jitter for s in j] == pytest.approx([.125] * 3)
    from dataclasses import replace
    assert [replace(s, scale_jitter=0., shift_jitter=0.) for s in j] == [replace(s, scale_jitter=0., shift_jitter=0.) for s in base]
    assert jitter_styles(base, None) == base
    root = make_synth_reid(tmp_path / 'j', num_train_ids=4, num_test_ids=4, num_cams=2, size=(64, 32), box_jitter=2.5, workers=0)
    info = synth_info(root)
    assert info['params']['box_jitter'] == 2.5 and info['cameras'][0]['scale_jitter'] == pytest.approx(.175)
    plain = make_synth_reid(tmp_path / 'p', num_train_ids=4, num_test_ids=4, num_cams=2, size=(64, 32), workers=0)
    assert 'box_jitter' not in synth_info(plain)['params']
    with pytest.raises(ValueError, match='box_jitter must be'): make_synth_reid(tmp_path / 'x', box_jitter=5)
