"""The engine opened for new training modes: hooks plugged into a real run and resumed exactly, `rebuild` with new
labels, the centre loss's own optimiser, rank-averaged logged losses under 2-process DDP, clip embedding, the clear
error for video datasets, and a miniature run that must learn."""
import json, os, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from reid_lit.baseline import build_model
from reid_lit.core import set_seed
from reid_lit.data import MARS, build_dataset
from reid_lit.losses import CenterLoss, TripletLoss
from reid_lit.synth import make_synth_reid
from reid_lit.train import (Trainer, TrainHook, baseline_losses, embed_batch, get_preset, load_checkpoint, resize_classes)

sys.path.insert(0, str(Path(__file__).parent))
from test_train import TINY, fake_market                                    # noqa: E402


pytestmark = pytest.mark.usefixtures('one_thread')                        # `one_thread` and `market`: tests/conftest.py


class RelabelHook(TrainHook):
    """A toy label source: before each epoch it keeps a different subset of the identities, renumbers them 0..K-1 and
    rebuilds the trainer (classifier resized); it counts steps and sums a statistic of the model outputs."""
    name = 'relabel'
    def __init__(self): self.calls, self.steps, self.stat, self.keep = [], 0, 0., None
    def _apply(self, trainer):
        items = [it for it in trainer.data.train if it.pid in self.keep]
        new = {p: i for i, p in enumerate(sorted(self.keep))}
        trainer.rebuild([it._replace(pid=new[it.pid]) for it in items], num_classes=len(new))
    def before_fit(self, trainer): self.calls.append('before_fit')
    def before_epoch(self, trainer, epoch):
        self.calls.append(f'before_epoch {epoch}')
        pids = sorted({it.pid for it in trainer.data.train})
        self.keep = set(pids[:len(pids) - 2]) if epoch % 2 == 0 else set(pids[2:])   # the label set changes every epoch
        self._apply(trainer)
    def after_step(self, trainer, batch, out):
        self.steps += 1; self.stat += float(out['feat'].detach().double().mean())
    def after_epoch(self, trainer, epoch, row):
        self.calls.append(f'after_epoch {epoch}'); row['hook_steps'] = self.steps
    def state_dict(self): return {'steps': self.steps, 'stat': self.stat, 'keep': sorted(self.keep)}
    def load_state_dict(self, state, trainer):
        self.steps, self.stat, self.keep = state['steps'], state['stat'], set(state['keep'])
        self._apply(trainer)                                                    # resize before the weights load


def make(data, out=None, hooks=None, resume=False, losses=None, **kw):
    cfg = get_preset('cpu', **{**TINY, **kw})
    set_seed(0)
    model = build_model('baseline', data.num_train_pids, backbone=cfg.backbone)
    return Trainer(model, losses or baseline_losses(data.num_train_pids), data, cfg, out_dir=out, progress=False,
                   verbose=False, resume=resume, hooks=hooks)


def test_hook_in_a_real_run_resumes_exactly(market, tmp_path):
    "A hook that relabels and resizes every epoch: the order of calls, and an interrupted run equals an uninterrupted one."
    h_full = RelabelHook()
    full = make(market, tmp_path / 'full', hooks=[h_full]).fit()
    assert h_full.calls == ['before_fit', 'before_epoch 0', 'after_epoch 0', 'before_epoch 1', 'after_epoch 1',
                            'before_epoch 2', 'after_epoch 2']
    n_iter = len(make(market, hooks=None).train_dl)
    assert h_full.steps == full[-1]['hook_steps'] and h_full.steps < 3 * n_iter   # fewer identities -> fewer batches
    make(market, tmp_path / 'cut', hooks=[RelabelHook()]).fit(until=1)
    ck = load_checkpoint(tmp_path / 'cut' / 'last.pt')
    assert ck['hooks']['relabel']['steps'] > 0 and ck['model']['classifier.weight'].shape[0] == market.num_train_pids - 2
    h_res = RelabelHook()
    tr = make(market, tmp_path / 'cut', hooks=[h_res], resume=True)
    assert tr.model.num_classes == market.num_train_pids - 2 and h_res.calls == []
    hist = tr.fit()
    for a, b in zip(full[1:], hist[1:]):
        assert abs(a['loss'] - b['loss']) <= 1e-6 and abs(a['mAP'] - b['mAP']) <= 1e-6, (a, b)
    assert h_res.steps == h_full.steps and abs(h_res.stat - h_full.stat) <= 1e-9


def test_rebuild_schedule_and_parameters(market):
    "rebuild keeps the learning rate a continuous function of the epoch and points the optimiser at the new classifier."
    tr = make(market, epochs=4, warmup_epochs=2)
    tr.fit(until=1)
    lr_before, f = tr.optimizer.param_groups[0]['lr'], tr.scheduler.lr_lambdas[0]
    items = [it for it in market.train if it.pid < 4]
    tr.rebuild(items, num_classes=4)
    assert f.epoch0 == 1 and f.iters_per_epoch == len(tr.train_dl) and tr.model.classifier.weight.shape == (4, tr.model.feat_dim)
    assert abs(f(tr.scheduler.last_epoch) * tr.cfg.lr - lr_before) < 1e-12
    opt = {id(p) for g in tr.optimizer.param_groups for p in g['params']}
    assert id(tr.model.classifier.weight) in opt and len(opt) == len([p for p in tr.model.parameters() if p.requires_grad])
    tr.fit(until=2)                                                             # trains on the new labels
    with pytest.raises(TypeError, match='reset_classifier'):
        resize_classes(nn.Linear(2, 2), nn.ModuleDict(), 3)


def test_center_loss_has_its_own_optimizer(market, tmp_path):
    "Centres: their own SGD at lr 0.5 on the unweighted gradient (Luo et al.), not in Adam; checkpointed and resumed exactly."
    beta = 5e-4
    def mk(out=None, resume=False, **kw):
        set_seed(1)                                                             # the same initial centres in every run
        return make(market, out, resume=resume, epochs=2, losses=baseline_losses(
            market.num_train_pids, center_weight=beta, feat_dim=build_model('baseline', 2, backbone=TINY['backbone']).feat_dim), **kw)
    tr = mk()
    centres = tr.loss_modules['center'].centers
    assert isinstance(tr.loss_optimizers['center'], torch.optim.SGD) and tr.loss_optimizers['center'].param_groups[0]['lr'] == 0.5
    assert id(centres) not in {id(p) for g in tr.optimizer.param_groups for p in g['params']}
    batch = next(iter(tr.train_dl))
    tr.model.train()
    feat = tr.model(batch['img'].contiguous(memory_format=torch.channels_last))['feat'].detach()
    c0 = centres.detach().clone()
    c = c0.clone().requires_grad_(True)
    g, = torch.autograd.grad((feat - c[batch['pid']]).pow(2).sum(1).mean(), c)
    tr.train_step(batch)
    torch.testing.assert_close(centres.detach(), c0 - 0.5 * g, atol=1e-5, rtol=1e-5)
    full = mk(tmp_path / 'a').fit()
    mk(tmp_path / 'b').fit(until=1)
    res = mk(tmp_path / 'b', resume=True)
    assert 'center' in load_checkpoint(tmp_path / 'b')['loss_optimizers']
    hist = res.fit()
    assert abs(full[-1]['loss'] - hist[-1]['loss']) <= 1e-6 and abs(full[-1]['loss_center'] - hist[-1]['loss_center']) <= 1e-6
    torch.testing.assert_close(res.loss_modules['center'].centers, load_checkpoint(tmp_path / 'a')['losses']['center.centers'])
    with pytest.raises(ValueError, match='needs feat_dim'): baseline_losses(5, center_weight=beta)


DDP_SCRIPT = textwrap.dedent('''
    import json, sys, torch, torch.nn as nn, torch.distributed as dist
    from reid_lit.baseline import build_model
    from reid_lit.core import set_seed
    from reid_lit.data import build_dataset
    from reid_lit.losses import CrossEntropyLabelSmooth, TripletLoss
    from reid_lit.train import Trainer, cleanup_distributed, get_preset
    class Recorded(nn.Module):
        def __init__(self): super().__init__(); self.inner, self.values = TripletLoss(0.3), []
        def forward(self, f, p):
            v = self.inner(f, p); self.values.append(v.item()); return v
    data = build_dataset(sys.argv[1])
    cfg = get_preset('cpu', backbone='resnet18_w8', size=(32, 16), p=2, k=2, epochs=1, workers=0, log_every=2, eval_untrained=False)
    set_seed(0)
    rec = Recorded()
    tr = Trainer(build_model('baseline', data.num_train_pids, backbone=cfg.backbone),
                 {'ce': (CrossEntropyLabelSmooth(data.num_train_pids), 'logits', 1.0), 'tri': (rec, 'feat', 1.0)},
                 data, cfg, device='cpu', progress=False, verbose=False)
    hist = tr.fit()
    box = [None] * tr.world
    dist.all_gather_object(box, rec.values)
    if tr.rank == 0:
        json.dump({'logged': hist[-1]['loss_tri'], 'ranks': box}, open(sys.argv[2], 'w'))
    cleanup_distributed(0)                          # barrier, leave, end the process (no rank closes its sockets while another still writes)
''')


def test_ddp_logged_loss_is_the_mean_over_ranks(market, tmp_path):
    "Two gloo processes: the epoch's logged loss is the mean over both ranks' steps (not rank 0's own mean)."
    script, out = tmp_path / 'ddp_loss.py', tmp_path / 'out.json'
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script), str(market.root), str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    r0, r1 = res['ranks']
    assert len(r0) == len(r1) > 2                                               # several windows of log_every=2, the last one short
    assert abs(np.mean(r0) - np.mean(r1)) > 1e-4                                 # the ranks really differ
    assert abs(res['logged'] - np.mean(r0 + r1)) < 1e-6


def test_embed_batch_images_and_clips():
    "A clip's descriptor is the mean of its frames' features; channels_last is applied to 4-D inputs only."
    set_seed(0)
    m = build_model('baseline', 3, backbone='resnet18_w8').eval()
    x = torch.randn(2, 3, 3, 32, 16)                                            # (B, T, C, H, W)
    with torch.no_grad():
        f = embed_batch(m, {'img': x}, channels_last=True)
        ref = torch.stack([m(x[b]).mean(0) for b in range(2)])
        torch.testing.assert_close(f, ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(embed_batch(m, {'img': x[:, 0]}, channels_last=True), m(x[:, 0]), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\) clips"): embed_batch(m, {'img': torch.randn(3, 32, 16)})


def test_video_dataset_trains_on_clips(tmp_path):
    "A video dataset handed to the trainer trains on clips (tests/test_video.py has the rest); an image-only model is a clear error."
    root = make_synth_reid(tmp_path / 'vid', num_train_ids=4, num_test_ids=4, num_cams=2, size=(32, 16), video=True, tracklet_len=(2, 3))
    data = MARS(root)
    tr = make(data, seq_len=2)
    assert next(iter(tr.train_dl))['img'].shape[1] == 2                          # (B, T, 3, H, W) clips
    class ImageOnly(nn.Module):
        def forward(self, x, parts=None): return x.mean((2, 3))
    with pytest.raises(ValueError, match="reads images only"):
        Trainer(ImageOnly(), baseline_losses(data.num_train_pids), data, get_preset('cpu', **TINY), progress=False)


def test_a_miniature_run_learns(tmp_path):
    "The claim of chapter 07 that can fail: a tiny synthetic world, a few epochs, trained mAP several times the untrained."
    root = make_synth_reid(tmp_path / 'w', num_train_ids=40, num_test_ids=40, num_cams=2, size=(64, 32), seed=0, difficulty=0.0)
    data = build_dataset(root)
    cfg = get_preset('cpu', backbone='resnet18_w16', size=(64, 32), p=8, k=4, epochs=20, eval_every=20, lr=3e-3, warmup_epochs=1,
                     workers=0, log_every=1)
    set_seed(0)
    model = build_model('baseline', data.num_train_pids, backbone=cfg.backbone)
    hist = Trainer(model, baseline_losses(data.num_train_pids), data, cfg, progress=False, verbose=False).fit()   # ~15 s on one thread
    untrained, trained = hist[0]['mAP'], hist[-1]['mAP']
    print(f"untrained mAP {untrained:.3f} -> trained {trained:.3f}")
    assert trained >= 3 * untrained and trained >= 0.3, (untrained, trained)
