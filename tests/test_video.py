"""Video in the training engine: clip batches (P identities x K tracklets x T frames), tracklet descriptors averaged
over clips, the MARS protocol checked against a hand-written loop, exact resume, the CLI on `synth_video`, a clear
error for image-only models, and two-process DDP on gloo."""
import os, shutil, subprocess, sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from reid_lit.baseline import build_model
from reid_lit.core import set_seed
from reid_lit.data import MARS
from reid_lit.synth import make_synth_reid
from reid_lit.train import (Trainer, UsageError, baseline_losses, embed_batch, eval_loader, eval_reid, get_preset,
                            load_checkpoint, train_reid)

TINY = dict(backbone='resnet18_w8', size=(32, 16), p=3, k=2, seq_len=3, epochs=3, eval_every=1, workers=0, log_every=1)


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def mars(tmp_path_factory):
    root = make_synth_reid(tmp_path_factory.mktemp('vid') / 'mars', num_train_ids=6, num_test_ids=5, num_cams=3, size=(32, 16),
                           video=True, tracklet_len=(3, 8), seed=3)
    return MARS(root)


def make_trainer(data, out=None, resume=False, **kw):
    cfg = get_preset('cpu', **{**TINY, **kw})
    set_seed(0)
    model = build_model('baseline', data.num_train_pids, backbone=cfg.backbone)
    return Trainer(model, baseline_losses(data.num_train_pids), data, cfg, out_dir=out, progress=False, verbose=False, resume=resume)


def test_clip_batches(mars):
    "A training batch is P*K clips of T frames; the model sees B*T frames and returns one logit row per clip."
    tr = make_trainer(mars)
    b = next(iter(tr.train_dl))
    assert b['img'].shape == (3 * 2, 3, 3, 32, 16)
    assert len(set(b['pid'].tolist())) == 3
    out = tr.model.train()(b['img'])
    assert out['logits'].shape == (6, mars.num_train_pids) and out['feat'].shape[0] == 6


def test_tracklet_descriptor_and_mars_protocol_by_hand(mars):
    """A tracklet's descriptor is the mean over its clips of the mean over each clip's frames (the last clip padded by its
    final frame); mAP and Rank-1 equal a loop over queries that drops same-identity-same-camera gallery tracklets."""
    tr = make_trainer(mars)
    model = tr.model.eval()
    res = tr.evaluate()
    items, nq = tr.test_items, tr.num_query
    dl = eval_loader(items, tr.cfg)
    with torch.no_grad():
        f = torch.cat([embed_batch(model, b, chunk=5) for b in dl])                  # chunked: 5 frames per forward pass
        ref = []
        for b in eval_loader(items, tr.cfg):
            clips = b['img'][0]                                                    # (S, T, 3, H, W)
            ref.append(torch.stack([model(c).mean(0) for c in clips]).mean(0))
        ref = torch.stack(ref)
    torch.testing.assert_close(f, ref, atol=1e-5, rtol=1e-4)
    assert f.shape[0] == len(items) and len(items[0].frames) >= 1
    qf, gf = nn.functional.normalize(f[:nq], dim=1), nn.functional.normalize(f[nq:], dim=1)
    d = (1 - qf @ gf.T).numpy()
    q, g = items[:nq], items[nq:]
    aps, r1 = [], []
    for i, it in enumerate(q):
        keep = [j for j in range(len(g)) if not (g[j].pid == it.pid and g[j].camid == it.camid)]   # junk: same id, same camera
        order = sorted(keep, key=lambda j: d[i, j])
        hits = [g[j].pid == it.pid for j in order]
        if not any(hits): continue                                                # a query without a true match is not scored
        prec = [sum(hits[:k + 1]) / (k + 1) for k in range(len(hits)) if hits[k]]
        aps.append(np.mean(prec)); r1.append(float(hits[0]))
    assert abs(res['mAP'] - np.mean(aps)) < 1e-5 and abs(res['rank1'] - np.mean(r1)) < 1e-6
    assert any(it.pid == 0 for it in g)                                          # 0000 distractors are in the gallery, as negatives


def test_even_test_clips(mars):
    "test_clips='even': one clip of T evenly spaced frames per tracklet, batched over tracklets."
    tr = make_trainer(mars, test_clips='even')
    b = next(iter(tr.test_dl))
    assert b['img'].dim() == 6 and b['img'].shape[1:3] == (1, 3)
    assert 0 <= tr.evaluate()['mAP'] <= 1


def test_video_resume_is_exact(mars, tmp_path):
    "A video run stopped after epoch 1 and resumed gives the losses and mAP of an uninterrupted run."
    full = make_trainer(mars, tmp_path / 'full').fit()
    make_trainer(mars, tmp_path / 'cut').fit(until=1)
    hist = make_trainer(mars, tmp_path / 'cut', resume=True).fit()
    assert [r['epoch'] for r in hist] == [0, 1, 2, 3]
    for a, b in zip(full[1:], hist[1:]):
        assert abs(a['loss'] - b['loss']) <= 1e-6 and abs(a['mAP'] - b['mAP']) <= 1e-6


class ImageOnly(nn.Module):
    "A model without `accepts_clips`."
    def __init__(self): super().__init__(); self.fc = nn.Linear(3, 4)
    def forward(self, x, parts=None): return self.fc(x.mean((2, 3)))


def test_image_models_refuse_tracklets(mars, tmp_path):
    with pytest.raises(ValueError, match="reads images only"):
        Trainer(ImageOnly(), {'ce': (nn.CrossEntropyLoss(), None, 1.0)}, mars, get_preset('cpu', **TINY), progress=False)
    with pytest.raises(UsageError, match="reads images only"):
        train_reid(dataset='synth_video', root=str(mars.root), model='magnifiernet', backbone='resnet18_w8', size='32x16', p=3, k=2,
                   epochs=1, workers=0, progress=False, out=str(tmp_path / 'm'))
    with pytest.raises(UsageError, match='--seq_len must be a positive integer'):
        train_reid(dataset='synth_video', root=str(mars.root), seq_len=0, progress=False, out=str(tmp_path / 'n'))
    with pytest.raises(UsageError, match="test_clips must be 'all' or 'even'"):
        train_reid(dataset='synth_video', root=str(mars.root), test_clips='most', progress=False, out=str(tmp_path / 'o'))


def test_cli_synth_video(mars, tmp_path, capsys):
    "`reid_lit_train --dataset synth_video` trains the temporal-pooling baseline and reports tracklet mAP / Rank-1."
    r = train_reid(dataset='synth_video', root=str(mars.root), backbone='resnet18_w8', size='32x16', p=3, k=2, seq_len=3, epochs=2,
                   eval_every=2, workers=0, progress=False, out=str(tmp_path / 'run'))
    assert 0 <= r['trained']['mAP'] <= 1 and r['config'].seq_len == 3
    assert 'results of preset' in capsys.readouterr().out
    res = eval_reid(str(tmp_path / 'run' / 'last.pt'), device='cpu', workers=0)              # the checkpoint evaluates the same tracklets
    assert abs(res['mAP'] - r['trained']['mAP']) < 1e-6


def test_ddp_video_two_cpu_processes(mars, tmp_path):
    "`torchrun --nproc_per_node 2` on clips: rank-disjoint identities, tracklet features gathered in order (a 1-process eval agrees)."
    out = tmp_path / 'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           shutil.which('reid_lit_train'), '--dataset', str(mars.root), '--backbone', 'resnet18_w8', '--size', '32x16',
           '--batch_size', '4', '--k', '2', '--seq_len', '3', '--epochs', '2', '--eval_every', '1', '--workers', '0', '--device', 'cpu',
           '--out', str(out), '--no-progress']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ck = load_checkpoint(out / 'last.pt')
    assert ck['world_size'] == 2 and ck['epoch'] == 2
    res = eval_reid(str(out / 'last.pt'), device='cpu', workers=0)
    assert abs(res['mAP'] - ck['history'][-1]['mAP']) < 1e-6


def test_max_pooling_over_clips(mars):
    "test_pool='max': a tracklet's descriptor is the element-wise maximum of its clips' descriptors."
    tr = make_trainer(mars, test_pool='max')
    model = tr.model.eval()
    b = next(iter(tr.test_dl))
    with torch.no_grad():
        torch.testing.assert_close(tr.embed(model, b)[0], torch.stack([model(c).mean(0) for c in b['img'][0]]).amax(0), atol=1e-5, rtol=1e-4)
    with pytest.raises(UsageError, match="test_pool must be 'mean' or 'max'"):
        train_reid(dataset='synth_video', root=str(mars.root), test_pool='median', progress=False)


def test_short_tracklets_and_unreadable_frames(mars, tmp_path):
    "A tracklet shorter than T repeats frames (training) or pads its last clip with its final frame (test); an unreadable frame is named."
    from reid_lit.data import VideoDataset, build_transforms
    from reid_lit.data import UnreadableImageError
    short = mars.train[0]._replace(frames=tuple(mars.train[0].frames[:2]))
    tf = build_transforms((32, 16), train=False)
    tr_ds, te_ds = VideoDataset([short], seq_len=5, mode='train', transform=tf, seed=0), VideoDataset([short], seq_len=5, mode='test', transform=tf)
    assert tr_ds[0]['img'].shape[0] == 5 and sorted(set(tr_ds.frame_indices(0))) == [0, 1]
    assert te_ds.frame_indices(0) == [[0, 1, 1, 1, 1]]
    bad = tmp_path / 'broken.jpg'; bad.write_bytes(b'not a jpeg')
    broken = short._replace(frames=(short.frames[0], str(bad)))
    with pytest.raises(UnreadableImageError, match='broken.jpg'): VideoDataset([broken], seq_len=2, mode='test', transform=tf)[0]
