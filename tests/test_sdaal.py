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
    with pytest.raises(ValueError, match='NaN or infinite'): refine_attribute_labels(f * float('nan'), a)
    with pytest.raises(ValueError, match='differ in shape'): attribute_accuracy(np.zeros((2, 32)), np.zeros((3, 32)))


# ---------------------------------------------------------------- the adaptation loop
from reid_lit.cluster import ClusteringError                                 # noqa: E402
from reid_lit.sdaal import train_sdaal                                        # noqa: E402
from reid_lit.train import TrainHook, UsageError, load_checkpoint             # noqa: E402

MINI = dict(preset='cpu', backbone='resnet18_w8', size=(64, 32), workers=0, source_epochs=1, arm_pretrain_epochs=1, rounds=2,
            round_epochs=1, batch=(2, 4), eps=0.5, min_samples=2, k1=8, k2=3, progress=False)


@pytest.fixture(scope='module')
def domains(tmp_path_factory):
    "Three tiny worlds (source A, target B, attribute set C) and one finished source and ARM, shared by the runs below."
    root = tmp_path_factory.mktemp('dom')
    d = {n: str(make_synth_reid(root / n, num_train_ids=10, num_test_ids=6, num_cams=2, domain=dm, seed=s, size=(64, 32)))
         for n, dm, s in (('src', 'A', 0), ('tgt', 'B', 1), ('att', 'C', 2))}
    torch.set_num_threads(1)
    first = train_sdaal(source=d['src'], target=d['tgt'], attributes=d['att'], out=str(root / 'first'),
                        variants={'refined': {}, 'raw': dict(refine=False)}, **MINI)
    return d, root / 'first', first


class Interrupt(Exception): pass
class StopAt(TrainHook):
    def __init__(self, epoch): self.epoch = epoch
    def before_epoch(self, trainer, epoch):
        if epoch == self.epoch: raise Interrupt


def test_sdaal_run_and_exact_resume(domains, tmp_path):
    "A run interrupted after round 1 and resumed ends with the weights, ARM, labels and numbers of the uninterrupted run."
    d, first, full = domains
    src, arm = str(first / 'source' / 'last.pt'), str(first / 'arm' / 'last.pt')
    assert [r['round'] for r in full['rounds']] == [1, 2] and 'ari' in full['rounds'][0]
    t8 = full['table8']
    assert {'direct transfer', '+ attribute fine-tuning (arm_refined)', '+ attribute fine-tuning (arm_raw)'} <= set(t8)
    raw = full['rounds'][0]
    assert raw['arm_raw_changed'] == 0 and raw['arm_raw_raw_acc'] == raw['arm_raw_label_acc']    # the control keeps the raw labels
    assert raw['arm_refined_raw_acc'] == raw['arm_raw_raw_acc']            # same identity rounds, same starting ARM: same raw labels
    kw = dict(target=d['tgt'], init=src, arm_init=arm, variants={'refined': {}}, **MINI)
    a = train_sdaal(out=str(tmp_path / 'a'), **kw)
    with pytest.raises(Interrupt): train_sdaal(out=str(tmp_path / 'b'), hooks=[StopAt(1)], **kw)
    ck = load_checkpoint(tmp_path / 'b' / 'target' / 'last.pt')
    assert ck['epoch'] == 1 and len(ck['hooks']['arm_refined']['log']) == 1 and ck['hooks']['pseudo_labels']['labels'] is not None
    b = train_sdaal(resume=str(tmp_path / 'b'), **kw)
    untimed = lambda rs: [{k: v for k, v in r.items() if not k.endswith('seconds')} for r in rs]
    assert untimed(a['rounds']) == untimed(b['rounds']) and a['table8'] == b['table8'], (a['rounds'], b['rounds'])
    ka, kb = load_checkpoint(tmp_path / 'a' / 'target' / 'last.pt'), load_checkpoint(tmp_path / 'b' / 'target' / 'last.pt')
    for part in ('model',):
        for k in ka[part]: torch.testing.assert_close(ka[part][k], kb[part][k], rtol=0, atol=0)
    for k, v in ka['hooks']['arm_refined']['arm'].items(): torch.testing.assert_close(v, kb['hooks']['arm_refined']['arm'][k], rtol=0, atol=0)
    # the identity half does not feel the ARM hooks: the same identity numbers with two ARM variants or one
    assert [r['mAP'] for r in a['rounds']] == [r['mAP'] for r in full['rounds']]


def test_sdaal_bad_input(domains, tmp_path):
    "Bad arguments name themselves; a round with too few clusters stops with chapter 08's error and keeps the last good checkpoint."
    d, first, _ = domains
    kw = dict(target=d['tgt'], init=str(first / 'source' / 'last.pt'), arm_init=str(first / 'arm' / 'last.pt'), **MINI)
    from reid_lit.cluster import PseudoLabelHook
    with pytest.raises(ValueError, match='resize_classifier=True'): PseudoLabelHook([], memory=False)
    with pytest.raises(UsageError, match='alpha'): train_sdaal(alpha=-1, out=str(tmp_path / 'x'), **kw)
    with pytest.raises(UsageError, match='eps'): train_sdaal(**{**kw, 'eps': 1.5}, out=str(tmp_path / 'x'))
    with pytest.raises(ValueError, match="expected an 'arm'"): train_sdaal(**{**kw, 'arm_init': kw['init']}, out=str(tmp_path / 'x'))
    with pytest.raises(ClusteringError, match='fewer than P'): train_sdaal(**{**kw, 'eps': 0.95}, out=str(tmp_path / 'y'))
    with pytest.raises(UsageError, match='already holds a run'):
        train_sdaal(out=str(first), target=d['tgt'], **{k: v for k, v in MINI.items()})


def test_cli_sdaal(domains, tmp_path):
    "reid_lit_train --model sdaal --source --target --attributes runs the method; --target without it is a usage error."
    import subprocess, sys
    d, first, _ = domains
    base = ['reid_lit_train']
    r = subprocess.run(base + ['--model', 'nonlocal', '--target', d['tgt']], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and '--target and --attributes belong to --model sdaal' in r.stderr, r.stderr
    r = subprocess.run(base + ['--model', 'sdaal', '--dataset', d['tgt']], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'not --dataset' in r.stderr, r.stderr


def test_cli_sdaal_dispatch(monkeypatch):
    "--model sdaal hands source, target, attributes, eps and the run options to train_sdaal."
    import reid_lit.sdaal as S
    from reid_lit.train import reid_lit_train
    seen = {}
    monkeypatch.setattr(S, 'train_sdaal', lambda **kw: seen.update(kw))
    reid_lit_train(model='sdaal', source='a', target='b', attributes='c', eps=0.5, size='64x32', out='o')
    assert (seen['source'], seen['target'], seen['attributes'], seen['eps'], seen['size'], seen['out']) == ('a', 'b', 'c', 0.5, (64, 32), 'o')
