"Chapter 11's pieces in the engine: the ARM trains through Trainer on the synthetic attributes and round-trips a checkpoint."
import numpy as np
import pytest
import torch

from reid_lit.baseline import build_model
from reid_lit.core import set_seed
from reid_lit.data import build_dataset
from reid_lit.sdaal import AttributeNet, attribute_accuracy, fused_distance, refine_attribute_labels
from reid_lit.synth import make_synth_reid
from reid_lit.train import Trainer, get_preset, model_from_checkpoint


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    return build_dataset(make_synth_reid(tmp_path_factory.mktemp('w') / 's', num_train_ids=8, num_test_ids=6, num_cams=2, size=(64, 32), seed=1))


def test_arm_trains_in_the_engine(world, tmp_path):
    "The registered 'arm' model learns the synthetic attributes with the BCE of its training_losses, and reloads from its checkpoint."
    torch.set_num_threads(1)
    cfg = get_preset('cpu', model='arm', backbone='resnet18_w8', size=(64, 32), p=4, k=2, epochs=2, eval_every=2, workers=0, lr=3e-3)
    set_seed(0)
    net = build_model('arm', 0, backbone=cfg.backbone)
    assert isinstance(net, AttributeNet)
    tr = Trainer(net, net.training_losses(cfg), world, cfg, out_dir=tmp_path / 'arm', progress=False, verbose=False)
    hist = tr.fit()
    assert len(hist) == 3 and all(np.isfinite(r['loss']) for r in hist[1:]) and 'mAP' in hist[-1]   # the ARM's strip features retrieve too
    back = model_from_checkpoint(tmp_path / 'arm' / 'last.pt')
    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(back.predict(x), tr.model.eval().predict(x))
    assert back(x).shape == (2, net.feat_dim)


def test_refinery_and_fused_distance_bad_input():
    f, a = torch.randn(6, 4), np.zeros((6, 32), np.uint8)
    with pytest.raises(ValueError, match='one per attrs row'): refine_attribute_labels(f[:5], a)
    with pytest.raises(ValueError, match='only 0 and 1'): refine_attribute_labels(f, a + 3)
    with pytest.raises(ValueError, match='alpha'): fused_distance(f, f, alpha=-0.5)
    with pytest.raises(ValueError, match='differ in shape'): attribute_accuracy(np.zeros((2, 32)), np.zeros((3, 32)))
