"""The training engine on CPU: exact resume, NaN stop with the last good checkpoint kept, safe checkpoints,
body-geometry plumbing (`parts_from_batch`), and two-process DDP on gloo through torchrun."""
import json, os, shutil, subprocess, sys, tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from reid_lit.baseline import build_model
from reid_lit.core import set_seed
from reid_lit.data import build_dataset
from reid_lit.train import (NonFiniteLossError, Trainer, baseline_losses, eval_reid, get_preset, load_checkpoint)

@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "Tiny models run fastest on one thread (and on a shared machine, 2 OpenMP threads can be 30x slower)."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = dict(backbone='resnet18_w8', size=(32, 16), p=4, k=2, epochs=3, eval_every=1, workers=0, log_every=1)


def fake_market(root, n_train=8, n_test=6, per_id=6, cams=3, size=(32, 16), seed=0):
    "A miniature Market-1501 tree: each identity a two-colour figure with noise, seen by `cams` cameras."
    rng, root = np.random.default_rng(seed), Path(root)
    for d in ('bounding_box_train', 'bounding_box_test', 'query'): (root / d).mkdir(parents=True, exist_ok=True)
    idx = 0
    for pid in range(1, n_train + n_test + 1):
        col = np.array([(pid * 53) % 255, (pid * 97) % 255, (pid * 151) % 255], dtype=float)
        for j in range(per_id):
            img = np.zeros((*size, 3)) + col
            img[size[0] // 2:] = 255 - col
            img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
            cam, idx = j % cams + 1, idx + 1
            sub = 'bounding_box_train' if pid <= n_train else ('query' if j < cams else 'bounding_box_test')
            Image.fromarray(img).save(root / sub / f"{pid:04d}_c{cam}s1_{idx:06d}_00.jpg")
    return root


@pytest.fixture(scope='module')
def market(tmp_path_factory):
    return build_dataset(fake_market(tmp_path_factory.mktemp('market')))


def make_trainer(data, out=None, losses=None, resume=False, **kw):
    cfg = get_preset('cpu', **{**TINY, **kw})
    set_seed(0)
    model = build_model('baseline', data.num_train_pids, backbone=cfg.backbone)
    return Trainer(model, losses or baseline_losses(data.num_train_pids), data, cfg, out_dir=out, progress=False,
                   verbose=False, resume=resume)


def test_resume_is_exact(market, tmp_path):
    "A run stopped after epoch 1 and resumed computes the same losses and mAP as an uninterrupted run."
    full = make_trainer(market, tmp_path / 'full').fit()
    make_trainer(market, tmp_path / 'cut').fit(until=1)
    resumed = make_trainer(market, tmp_path / 'cut', resume=True)
    assert resumed.epoch == 1
    hist = resumed.fit()
    assert [r['epoch'] for r in hist] == [r['epoch'] for r in full] == [0, 1, 2, 3]
    for a, b in zip(full[1:], hist[1:]):
        assert abs(a['loss'] - b['loss']) <= 1e-6, (a, b)
        assert abs(a['mAP'] - b['mAP']) <= 1e-6
    assert json.loads((tmp_path / 'cut' / 'history.json').read_text())[-1]['epoch'] == 3


def test_resume_with_worker_processes(market, tmp_path):
    "With DataLoader workers (augmentation in other processes) resume is exact too."
    full = make_trainer(market, tmp_path / 'a', workers=1, epochs=2).fit()
    make_trainer(market, tmp_path / 'b', workers=1, epochs=2).fit(until=1)
    hist = make_trainer(market, tmp_path / 'b', workers=1, epochs=2, resume=True).fit()
    assert abs(full[-1]['loss'] - hist[-1]['loss']) <= 1e-6


def test_checkpoint_contents(market, tmp_path):
    tr = make_trainer(market, tmp_path, epochs=2, eval_every=2)
    tr.fit()
    for name in ('last.pt', 'best.pt', 'history.json', 'curves.png'): assert (tmp_path / name).is_file(), name
    assert not [p for p in tmp_path.iterdir() if '.tmp' in p.name]            # no temporary files left
    ck = torch.load(tmp_path / 'last.pt', weights_only=True)                  # plain data only
    for key in ('model', 'optimizer', 'scheduler', 'scaler', 'losses', 'rng', 'sampler_epoch', 'epoch', 'history', 'config', 'model_spec'):
        assert key in ck, key
    assert set(ck['rng']) >= {'python', 'numpy', 'torch', 'cuda'}
    assert ck['epoch'] == 2 and ck['sampler_epoch'] == 1 and len(ck['history']) == 3
    hist = json.loads((tmp_path / 'history.json').read_text())
    assert hist[0]['epoch'] == 0 and hist[0]['mAP'] is not None and hist[1].get('mAP') is None and hist[2]['mAP'] is not None
    assert ck['scheduler']['last_epoch'] == 2 * len(tr.train_dl)
    # the weights reload into a fresh model and give the same features
    from reid_lit.train import model_from_checkpoint
    m = model_from_checkpoint(tmp_path / 'best.pt')
    x = torch.randn(2, 3, 32, 16)
    tr.model.eval()
    torch.testing.assert_close(m(x), tr.model(x))


class NanAfter(nn.Module):
    "A loss term that is 0 for `n` calls, then NaN."
    def __init__(self, n): super().__init__(); self.n, self.calls = n, 0
    def forward(self, feat, pids):
        self.calls += 1
        return feat.sum() * 0 + (float('nan') if self.calls > self.n else 0.)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(market, tmp_path):
    n_iter = len(make_trainer(market).train_dl)
    losses = {**baseline_losses(market.num_train_pids), 'bad': (NanAfter(n_iter + 1), 'feat', 1.0)}
    tr = make_trainer(market, tmp_path, losses=losses, epochs=3)
    with pytest.raises(NonFiniteLossError, match=r"became nan at epoch 2, iteration 2\.\.2 .*bad=nan.*Last good checkpoint: .*last\.pt' \(epoch 1\)"):
        tr.fit()
    ck = load_checkpoint(tmp_path / 'last.pt')
    assert ck['epoch'] == 1 and all(torch.isfinite(v).all() for v in ck['model'].values() if v.is_floating_point())
    assert len(json.loads((tmp_path / 'history.json').read_text())) == 2    # untrained + epoch 1


class PartsProbe(nn.Module):
    "A stand-in body-geometry model: reads the part label map of the batch and records what forward received."
    def __init__(self, n):
        super().__init__()
        self.num_classes, self.seen = n, []
        self.conv, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, n)
    def parts_from_batch(self, batch): return (batch['parts'] > 0).float()[:, None]          # (B, 1, H, W)
    def forward(self, x, parts=None):
        assert parts is not None and parts.shape[-2:] == x.shape[-2:] and parts.device == x.device
        self.seen.append(parts.shape)
        f = (self.conv(x) * parts).mean((2, 3))                                             # (B, 8)
        return dict(logits=self.fc(f), feat=f) if self.training else f


def test_parts_reach_the_model(market, tmp_path):
    "With annotations the trainer hands `model.parts_from_batch(batch)` to `model(x, parts=...)`, in training and evaluation."
    from reid_lit.pose import COCO17
    H, W = 32, 16
    ann = {}
    for it in market.train + market.query + market.gallery:
        parts = np.zeros((H, W), np.uint8); parts[4:28, 3:13] = 4
        ann[os.path.basename(it.path)] = dict(keypoints=np.zeros((len(COCO17), 3), np.float32), parts=parts,
                                              attrs=np.zeros(3, np.uint8), view=0, motion=0.)
    cfg = get_preset('cpu', **{**TINY, 'epochs': 1})
    model = PartsProbe(market.num_train_pids)
    tr = Trainer(model, baseline_losses(market.num_train_pids), market, cfg, annotations=ann, progress=False, verbose=False)
    tr.fit()
    assert len(model.seen) == len(tr.train_dl) + 2 * len(tr.test_dl)      # untrained eval, training, final eval
    assert all(s[1:] == (1, H, W) for s in model.seen)


def test_bad_inputs(market):
    with pytest.raises(ValueError, match='identities over 1 rank'): make_trainer(market, p=50)
    with pytest.raises(KeyError, match="reads the output 'nope'"):
        make_trainer(market, losses={'x': (nn.CrossEntropyLoss(), 'nope', 1.0)}).fit()
    with pytest.raises(ValueError, match='resume=True needs out_dir'): make_trainer(market, resume=True)


def test_ddp_two_cpu_processes(market, tmp_path):
    "`torchrun --nproc_per_node 2` runs the same entry point on gloo: rank 0 alone prints and writes; the gathered eval equals a 1-process eval."
    out = tmp_path / 'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           shutil.which('reid_lit_train'), '--dataset', str(market.root), '--backbone', 'resnet18_w8', '--size', '32x16',
           '--batch_size', '4', '--k', '2', '--epochs', '2', '--eval_every', '1', '--workers', '0', '--device', 'cpu',
           '--out', str(out), '--no-progress']
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count('results of preset') == 1                           # rank 0 prints, rank 1 does not
    assert 'x 2 process(es)' in r.stdout
    ck = load_checkpoint(out / 'last.pt')
    assert ck['world_size'] == 2 and ck['epoch'] == 2
    assert sorted(p.name for p in out.iterdir()) == ['best.pt', 'curves.png', 'history.json', 'last.pt']
    # evaluation features were gathered from both ranks in the right order: a single process agrees
    res = eval_reid(str(out / 'last.pt'), device='cpu', workers=0)
    assert abs(res['mAP'] - ck['history'][-1]['mAP']) < 1e-6
