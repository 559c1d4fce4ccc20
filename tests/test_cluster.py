"The clustering loop of chapter 08: sparse = dense, the memory under DDP, exact resume, errors, the CLI."
import json, os, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid_lit.baseline import build_model
from reid_lit.cluster import (ClusterMemory, ClusteringError, PseudoLabelHook, hide_labels, pseudo_labels, sparse_jaccard,
                              train_unsupervised)
from reid_lit.core import set_seed
from reid_lit.data import build_dataset
from reid_lit.metrics import jaccard_distance
from reid_lit.train import Trainer, get_preset, load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from test_train import TINY, fake_market                                    # noqa: E402

KW = dict(k1=8, k2=3, min_samples=3)                                         # a 48-image training set


pytestmark = pytest.mark.usefixtures('one_thread')                        # `one_thread` and `market`: tests/conftest.py


def blobs(n_ids=80, per=8, D=48, noise=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_ids, D, generator=g).repeat_interleave(per, 0) + noise * torch.randn(n_ids * per, D, generator=g)
    return F.normalize(x, dim=1), np.repeat(np.arange(n_ids), per)


def test_sparse_equals_dense():
    "The CSR matrix holds exactly the dense entries below 1 (and the explicit zero diagonal); DBSCAN labels agree at every eps."
    x, ids = blobs()
    D = jaccard_distance(x, 30, 6).numpy()
    S = sparse_jaccard(x, 30, 6)
    coo = S.tocoo()
    assert S.shape == D.shape and S.dtype == np.float32
    assert (coo.row == coo.col).sum() == len(x) and (S.diagonal() == 0).all()
    off = coo.row != coo.col
    np.testing.assert_array_equal(coo.data[off], D[coo.row[off], coo.col[off]])
    mask = np.ones_like(D, bool); mask[coo.row, coo.col] = False
    assert (D[mask] == 1).all()
    for eps in (0.3, 0.5, 0.6, 0.7, 0.8):
        for outl in ('drop', 'keep'):
            np.testing.assert_array_equal(pseudo_labels(x, eps, outliers=outl, sparse=False), pseudo_labels(x, eps, outliers=outl, sparse=True))
    lab = pseudo_labels(x, 0.5)
    assert lab.max() + 1 == len(np.unique(lab[lab >= 0])) and (np.unique(lab[lab >= 0]) == np.arange(lab.max() + 1)).all()


def test_bad_input():
    x, _ = blobs(10, 4)
    for kw, word in ((dict(eps=0), 'eps'), (dict(eps=-1), 'eps'), (dict(eps=.5, min_samples=1), 'min_samples'),
                     (dict(eps=.5, k1=40), 'k1'), (dict(eps=.5, outliers='x'), 'outliers')):
        with pytest.raises(ValueError, match=word): pseudo_labels(x, **kw)
    bad = x.clone(); bad[2, 1] = float('nan')
    with pytest.raises(ValueError, match='NaN'): pseudo_labels(bad, 0.5)
    m = ClusterMemory(8, 3)
    with pytest.raises(ValueError, match='cluster indices'): m(torch.randn(2, 8), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match='labels'): m.init_from(torch.randn(4, 8), [0, 1, 2, 5])


DDP_MEMORY = textwrap.dedent('''
    import json, sys, torch, torch.distributed as dist
    from reid_lit.cluster import ClusterMemory
    from reid_lit.train import cleanup_distributed
    dist.init_process_group('gloo'); r = dist.get_rank()
    torch.manual_seed(0)
    feats, lab = torch.randn(30, 8), torch.arange(30) % 5
    x, y = torch.randn(8, 8), torch.tensor([0, 0, 1, 2, 2, 3, 4, 4])            # the whole batch
    out = {}
    for mode in ('mean', 'hard'):
        m = ClusterMemory(8, 5, mode=mode).init_from(feats, lab)
        m(x[4 * r:4 * r + 4].requires_grad_(), y[4 * r:4 * r + 4])               # this rank's half
        out[mode] = m.features.tolist()
    box = [None, None]; dist.all_gather_object(box, out)
    if r == 0: json.dump(box, open(sys.argv[1], 'w'))
    cleanup_distributed(0)                          # barrier, leave, end the process (no rank closes its sockets while another still writes)
''')


def test_memory_update_under_ddp(tmp_path):
    "Two gloo processes, each with half a batch: both memories equal a single-process memory updated with the whole batch."
    script, out = tmp_path / 'ddp_memory.py', tmp_path / 'out.json'
    script.write_text(DDP_MEMORY)
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script), str(out)],
                       capture_output=True, text=True, timeout=120, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r0, r1 = json.loads(out.read_text())
    torch.manual_seed(0)
    feats, lab = torch.randn(30, 8), torch.arange(30) % 5
    x, y = torch.randn(8, 8), torch.tensor([0, 0, 1, 2, 2, 3, 4, 4])
    for mode in ('mean', 'hard'):
        m = ClusterMemory(8, 5, mode=mode).init_from(feats, lab); m(x, y)
        torch.testing.assert_close(torch.tensor(r0[mode]), m.features); torch.testing.assert_close(torch.tensor(r1[mode]), m.features)


def make(data, out=None, resume=False, hook_kw=None, **kw):
    cfg = get_preset('cpu', **{**TINY, 'epochs': 3, **kw})
    set_seed(0)
    net = build_model('baseline', 1, backbone=cfg.backbone)
    train = list(data.train)
    unl = type('U', (), {'train': hide_labels(train), 'query': data.query, 'gallery': data.gallery, 'root': data.root})()
    hook = PseudoLabelHook(unl.train, **{'eps': 0.6, **KW, **(hook_kw or {})}, true_ids=[it.pid for it in train])
    tr = Trainer(net, {'memory': (ClusterMemory(net.feat_dim, len(train)), 'bn_feat', 1.0)}, unl, cfg, out_dir=out,
                 progress=False, verbose=False, hooks=[hook], resume=resume)
    return tr, hook


def test_loop_resumes_exactly(market, tmp_path):
    "Pseudo-labels, memory and weights after an interrupted run equal the uninterrupted run's, epoch by epoch."
    full, hf = make(market, tmp_path / 'full')
    hist = full.fit()
    assert len(hf.log) == 3 and all(r['clusters'] >= 4 for r in hf.log) and 'ari' in hf.log[0]
    cut, _ = make(market, tmp_path / 'cut'); cut.fit(until=2)
    ck = load_checkpoint(tmp_path / 'cut' / 'last.pt')
    assert ck['hooks']['pseudo_labels']['labels'] is not None and 'memory.features' in ck['losses']
    res, hr = make(market, tmp_path / 'cut', resume=True)
    assert hr.labels is not None and res.terms['memory'].fn.num_clusters == int(max(hr.labels)) + 1
    torch.testing.assert_close(res.terms['memory'].fn.features, ck['losses']['memory.features'])
    hist2 = res.fit()
    for a, b in zip(hist[1:], hist2[1:]):
        assert abs(a['loss'] - b['loss']) <= 1e-6 and abs(a['mAP'] - b['mAP']) <= 1e-6, (a, b)
    np.testing.assert_array_equal(hf.labels, hr.labels)
    torch.testing.assert_close(full.terms['memory'].fn.features, res.terms['memory'].fn.features, rtol=0, atol=0)
    for (k, v), (k2, v2) in zip(full.model.state_dict().items(), res.model.state_dict().items()):
        torch.testing.assert_close(v, v2, rtol=0, atol=0)


def test_too_few_clusters_is_a_clear_error(market, tmp_path):
    "A radius that leaves fewer clusters than P (or only outliers) stops before training, naming eps and the cluster count."
    tr, hook = make(market, tmp_path / 'few', hook_kw=dict(eps=0.9))
    labels = np.repeat([0, 1, 2, -1], 12)                                       # three clusters for P=4
    with pytest.raises(ClusteringError, match=r"eps=0.9 left 3 clusters, fewer than P=4"): hook.apply(tr, labels)
    tr, _ = make(market, tmp_path / 'none', hook_kw=dict(eps=1e-6, min_samples=5))
    with pytest.raises(ClusteringError, match="every one of the 48 training images is an outlier"): tr.fit()


def test_cli_unsupervised(market, tmp_path):
    "reid_lit_train --unsupervised --init: cluster quality per round, untrained / initial / final; --init alone is a usage error."
    from reid_lit.train import train_reid
    r = train_reid(dataset=str(market.root), out=str(tmp_path / 'src'), backbone='resnet18_w8', size='32x16', p=4, k=2, epochs=1,
                   workers=0, progress=False)
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = ['reid_lit_train', '--unsupervised', '--init', str(r['out_dir']), '--dataset', str(market.root), '--out', str(tmp_path / 'usl'),
           '--backbone', 'resnet18_w8', '--size', '32x16', '--p', '2', '--k', '2', '--epochs', '2', '--eval_every', '1', '--workers', '0',
           '--eps', '0.3', '--no-progress']                               # 48 images and k1=30: a small radius keeps people apart
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.stdout.count('clustering before epoch') == 2 and 'ARI' in p.stdout
    for row in ('untrained (random)', 'initial (epoch 0)', 'final (epoch 2)'): assert row in p.stdout
    res = json.loads((tmp_path / 'usl' / 'usl.json').read_text())
    assert len(res['clusters']) == 2 and res['final']['mAP'] > 0
    bad = subprocess.run(['reid_lit_train', '--init', str(r['out_dir'])], capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and '--unsupervised' in bad.stderr
    bad = subprocess.run(cmd[:2] + ['--eps', '1.5'], capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and '--eps' in bad.stderr


def test_uda_from_a_source_dataset(market, tmp_path):
    "--source: supervised on a labelled dataset first (its run in out/source), then the loop on the target without labels."
    src = build_dataset(fake_market(tmp_path / 'src', seed=3))
    r = train_unsupervised(dataset=str(market.root), source=str(src.root), out=str(tmp_path / 'uda'), eps=0.3, backbone='resnet18_w8',
                           size=(32, 16), p=2, k=2, epochs=1, eval_every=1, workers=0, progress=False)
    assert (tmp_path / 'uda' / 'source' / 'last.pt').exists() and r['start'].startswith('supervised on')
    assert len(r['clusters']) == 1 and r['final']['epoch'] == 1 and 'ari' in r['clusters'][0]
