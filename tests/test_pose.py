"""Keypoint estimation with a real torchvision Keypoint R-CNN (random weights) on a tiny fake dataset folder.

The notebook checks the pipeline with a stand-in model; here the actual detector runs, so the output
format, the state_dict path, the cache round trip and the cache reuse are tested end to end.
Accuracy is not tested: the weights are random.
"""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from reid_lit.pose import (estimate_keypoints, keypoint_rcnn, load_keypoint_cache, save_keypoint_cache,
                           fill_missing_keypoints, sda_part_masks, part_label_map, body_regions)

SMALL = dict(min_size=48, max_size=96)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("market") / "bounding_box_train"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(64, 32), (48, 24), (40, 20)]):
        d = root / "sub" if i == 2 else root
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(d / f"000{i}_c{i + 1}s1_00000{i}_00.jpg")
    return root


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="random weights"):
        return keypoint_rcnn(None, device="cpu", **SMALL)


class Counting(torch.nn.Module):
    "Wraps a detector and counts forward calls."
    def __init__(self, m):
        super().__init__(); self.m, self.calls = m, 0
    def forward(self, x):
        self.calls += 1; return self.m(x)


def test_real_model_format_and_cache(folder, model, tmp_path):
    m = Counting(model)
    cache = tmp_path / "kps.npz"
    kps = estimate_keypoints(folder, weights=m, cache=cache, batch_size=2, device="cpu")
    assert list(kps) == ["0000_c1s1_000000_00.jpg", "0001_c2s1_000001_00.jpg", "0002_c3s1_000002_00.jpg"]
    assert m.calls == 2
    sizes = {"0000_c1s1_000000_00.jpg": (64, 32), "0001_c2s1_000001_00.jpg": (48, 24), "0002_c3s1_000002_00.jpg": (40, 20)}
    for name, k in kps.items():
        assert k.shape == (17, 3) and k.dtype == np.float32 and np.isfinite(k).all()
        assert ((k[:, 2] >= 0) & (k[:, 2] <= 1)).all()                      # confidences
        H, W = sizes[name]                                                   # keypoints in original image pixels
        if k[:, 2].any():
            assert (k[:, 0] >= -1).all() and (k[:, 0] <= W + 1).all() and (k[:, 1] >= -1).all() and (k[:, 1] <= H + 1).all()
    back = load_keypoint_cache(cache)
    assert back.keys() == kps.keys()
    for n in kps: np.testing.assert_array_equal(back[n], kps[n])
    again = estimate_keypoints(folder, weights=m, cache=cache)                 # all cached: the model never runs
    assert m.calls == 2
    for n in kps: np.testing.assert_array_equal(again[n], kps[n])
    # the cached keypoints feed the rest of the chapter
    k = fill_missing_keypoints(kps["0000_c1s1_000000_00.jpg"], size=(64, 32), conf_thresh=.5)
    assert sda_part_masks(k, (64, 32), (16, 8)).shape == (6, 16, 8)
    assert part_label_map(k, (64, 32)).shape == (64, 32)
    assert body_regions(k, "coco17", image_size=(64, 32)).shape == (5, 4)


def test_state_dict_path(model, tmp_path):
    sd = model.state_dict()
    torch.save(sd, tmp_path / "krcnn.pth")
    torch.save({"model": sd, "epoch": 3}, tmp_path / "ckpt.pth")               # a training checkpoint works too
    for w in (tmp_path / "krcnn.pth", tmp_path / "ckpt.pth"):
        loaded = keypoint_rcnn(w, device="cpu", **SMALL).state_dict()
        assert loaded.keys() == sd.keys()
        for k in sd: assert torch.equal(loaded[k], sd[k]), k
    assert not model.training and model.roi_heads.detections_per_img == 1      # eval mode, one person per crop


def test_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        estimate_keypoints(tmp_path / "no_such_folder")
    with pytest.raises(FileNotFoundError, match="no_weights.pth"):
        estimate_keypoints(folder, weights=tmp_path / "no_weights.pth")
    torch.save({"not": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(RuntimeError):
        keypoint_rcnn(tmp_path / "wrong.pth", device="cpu", **SMALL)
    with pytest.raises(ValueError, match="batch_size"):
        estimate_keypoints(folder, weights=torch.nn.Identity(), batch_size=0)
    save_keypoint_cache({"x.jpg": np.zeros((17, 3))}, tmp_path / "c.npz")
    with pytest.raises(ValueError, match=r"\(17, 3\)"):
        save_keypoint_cache({"x.jpg": np.zeros((18, 3))}, tmp_path / "c2.npz")
