"""The non-local and SDA chapter outside the notebook: gradients reach every block parameter once training
starts, state dicts round-trip through the registry, the FLOP claim holds on ResNet-50, and `"nonlocal"` and
`"sda"` train through the training engine and `reid_lit_train` on a miniature synthetic dataset."""
import subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from reid_lit.baseline import build_model, list_models
from reid_lit.core import set_seed
from reid_lit.sda import NL_MODES, NonLocalBlock, SDABlock, NonLocalResNet, SDAResNet, paper_insertion_points

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(backbone='resnet18_w8', size=(32, 16), p=4, k=2, epochs=1, eval_every=1, workers=0, log_every=1)


def test_registered():
    assert {'nonlocal', 'sda'} <= set(list_models())
    assert isinstance(build_model('nonlocal', 5, backbone='resnet18_w8'), NonLocalResNet)
    assert isinstance(build_model('sda', 5, backbone='resnet18_w8'), SDAResNet)


@pytest.mark.parametrize('name', ['nonlocal', 'sda'])
def test_blocks_learn(name):
    "At init only the zero BN gets a gradient; after one step every parameter of every block does."
    set_seed(0)
    m = build_model(name, 4, backbone='resnet18_w8').train()
    x, pids = torch.randn(8, 3, 64, 32), torch.arange(4).repeat_interleave(2)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    grads = []
    for _ in range(2):
        out = m(x)
        loss = nn.functional.cross_entropy(out['logits'], pids) + out['feat'].pow(2).mean()
        opt.zero_grad(); loss.backward()
        grads.append({n: (p.grad is not None and p.grad.abs().sum().item() > 0)
                      for n, p in m.backbone.inserted.named_parameters()})
        opt.step()
    assert all(v for n, v in grads[0].items() if '.bn.' in n)
    assert not any(v for n, v in grads[0].items() if '.bn.' not in n)     # BN scale 0 blocks the rest at first
    assert all(grads[1].values()), [n for n, v in grads[1].items() if not v]


@pytest.mark.parametrize('name', ['nonlocal', 'sda'])
def test_state_dict_round_trip(name, tmp_path):
    set_seed(0)
    m = build_model(name, 5, backbone='resnet18_w8').train()
    m(torch.randn(4, 3, 64, 32))                                          # move the BN statistics
    torch.save(m.state_dict(), tmp_path / 'm.pt')
    m2 = build_model(name, 5, backbone='resnet18_w8')
    m2.load_state_dict(torch.load(tmp_path / 'm.pt', weights_only=True))
    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(m.eval()(x), m2.eval()(x))


def test_flop_claim_resnet50():
    "On the paper's setting SDA adds at most 2% FLOPs, NL tens of percent (meta device: nothing computed)."
    from torch.utils.flop_counter import FlopCounterMode
    def flops(name):
        with torch.device('meta'):
            m, x = build_model(name, 751).train(), torch.empty(32, 3, 256, 128)
        with FlopCounterMode(display=False) as fc: m(x)
        return fc.get_total_flops()
    base, nl, sda = flops('baseline'), flops('nonlocal'), flops('sda')
    assert sda / base - 1 <= 0.02 and nl / base - 1 >= 0.2, (base, nl, sda)


def test_sda_background_untouched_in_training():
    "Background positions are untouched by a trained (non-zero BN) SDA block, whatever the batch statistics."
    blk = SDABlock(8).train()
    with torch.no_grad(): blk.bn.weight.fill_(1.); blk.bn.bias.fill_(0.5)
    x, parts = torch.randn(3, 8, 8, 4), torch.zeros(3, 6, 8, 4)
    parts[:, 0, :2] = 1; parts[:, 1, 2:5] = 1; parts[1, 2, 4:6] = 1
    z = blk(x, parts)
    bg = parts.sum(1) == 0
    assert torch.equal(z.permute(0, 2, 3, 1)[bg], x.permute(0, 2, 3, 1)[bg])
    assert (z - x).permute(0, 2, 3, 1)[~bg].abs().amax(-1).min() > 0


@pytest.mark.parametrize('mode', NL_MODES)
def test_nonlocal_batch_independent(mode):
    "Each image's output depends on that image only (in eval mode)."
    blk = NonLocalBlock(8, mode=mode).eval()
    with torch.no_grad(): blk.bn.weight.fill_(1.)
    x = torch.randn(3, 8, 4, 4)
    torch.testing.assert_close(blk(x)[1:], blk(x[1:]))


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    "A miniature synthetic dataset (reid_lit.synth): images with keypoint annotations."
    from reid_lit.data import build_dataset
    from reid_lit.synth import make_synth_reid
    root = make_synth_reid(tmp_path_factory.mktemp('synth'), num_train_ids=6, num_test_ids=4, num_cams=2, size=(64, 32))
    return build_dataset(root)


@pytest.mark.parametrize('name', ['nonlocal', 'sda'])
def test_trainer_runs(name, synth):
    "One tiny epoch of the training engine with the chapter's models (eq. (5): CE + batch-hard triplet); SDA gets the keypoints."
    from reid_lit.train import Trainer, baseline_losses, get_preset
    cfg = get_preset('cpu', model=name, **TINY)
    set_seed(0)
    model = build_model(name, synth.num_train_pids, backbone=cfg.backbone)
    seen = []
    orig = model.parts_from_batch
    def spy(batch):
        seen.append('keypoints' in batch)
        return orig(batch)
    model.parts_from_batch = spy
    hist = Trainer(model, baseline_losses(synth.num_train_pids), synth, cfg, progress=False, verbose=False).fit()
    assert np.isfinite(hist[-1]['loss']) and 0 <= hist[-1]['mAP'] <= 1
    assert seen and all(seen)                                             # training and test batches carried keypoints


@pytest.mark.parametrize('name', ['nonlocal', 'sda'])
def test_train_reid(name, synth, tmp_path):
    "The function behind `reid_lit_train` trains the chapter's models on the synthetic data."
    from reid_lit.train import train_reid
    r = train_reid(dataset=str(synth.root), model=name, preset='cpu', backbone='resnet18_w8', size='32x16', epochs=1,
                   p=4, k=2, workers=0, out=str(tmp_path / 'run'), progress=False)
    assert (tmp_path / 'run' / 'last.pt').is_file()
    assert 0 <= r['trained']['mAP'] <= 1


def _cli():
    import shutil
    return shutil.which('reid_lit_train')


@pytest.mark.skipif(_cli() is None, reason='the reid_lit_train console script is not installed')
def test_cli_trains_sda(synth, tmp_path):
    "`reid_lit_train --model sda` trains on a synthetic dataset folder (one process, end to end)."
    cmd = [_cli(), '--model', 'sda', '--dataset', str(synth.root), '--preset', 'cpu', '--backbone', 'resnet18_w8',
           '--size', '32x16', '--p', '4', '--k', '2', '--epochs', '1', '--workers', '0', '--out', str(tmp_path / 'run')]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (tmp_path / 'run' / 'last.pt').is_file()
    assert 'mAP' in r.stdout + r.stderr
