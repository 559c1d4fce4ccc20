"""reid_lit.metrics against the public reference implementations (torchreid 0.2.5, fast-reid 1.4.0), plus input checks.

The reference packages are fetched from PyPI with `pip download --no-deps` into a cache folder
($REID_LIT_REF_CACHE or ~/.cache/reid_lit/refs) and their pure-Python/NumPy files are loaded by path;
they are never installed. Without network access those tests are skipped with the reason.
"""
import importlib.util, os, subprocess, sys, tarfile, warnings, zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from reid_lit.metrics import evaluate_rank, evaluate_features, re_ranking, jaccard_distance, pairwise_distance

CACHE = Path(os.environ.get('REID_LIT_REF_CACHE', Path.home()/'.cache'/'reid_lit'/'refs'))
REFS = {  # name: (pip spec, extra pip args, archive glob, {module: path inside the archive})
    'torchreid': ('torchreid==0.2.5', ['--no-binary', ':all:'], 'torchreid-0.2.5.tar.gz',
                  {'rank': 'torchreid-0.2.5/torchreid/reid/metrics/rank.py', 'rerank': 'torchreid-0.2.5/torchreid/reid/utils/rerank.py'}),
    'fastreid': ('fastreid==1.4.0', [], 'fastreid-1.4.0-py3-none-any.whl',
                 {'rank': 'fastreid/evaluation/rank.py', 'rerank': 'fastreid/evaluation/rerank.py'}),
}

def _load(name:str, module:str):
    "Load one reference module by file path, downloading its archive into the cache first; skip when impossible."
    spec, extra, archive, files = REFS[name]
    out = CACHE/name/files[module]
    if not out.exists():
        (CACHE/name).mkdir(parents=True, exist_ok=True)
        path = CACHE/name/archive
        if not path.exists():
            try:
                r = subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', *extra, spec, '-d', str(CACHE/name), '-q'],
                                   capture_output=True, text=True, timeout=90)
            except (OSError, subprocess.TimeoutExpired) as e: pytest.skip(f"cannot download the reference {spec} from PyPI: {e}")
            if r.returncode != 0 or not path.exists():
                pytest.skip(f"cannot download the reference {spec} from PyPI (pip said: {r.stderr.strip()[-300:]})")
        if archive.endswith('.whl'):
            with zipfile.ZipFile(path) as z: z.extractall(CACHE/name, [m for m in z.namelist() if m.startswith('fastreid/evaluation/')])
        else:
            with tarfile.open(path) as t:
                members = [m for m in t.getmembers() if '/torchreid/reid/' in m.name and m.isfile()]
                try: t.extractall(CACHE/name, members, filter='data')
                except TypeError: t.extractall(CACHE/name, members)          # Python without extraction filters
    modspec = importlib.util.spec_from_file_location(f'_ref_{name}_{module}', out)
    mod = importlib.util.module_from_spec(modspec)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')        # "Cython evaluation is unavailable": we use the Python code on purpose
        modspec.loader.exec_module(mod)
    return mod

def _random_eval(seed, Q=80, G=500, ids=30, cams=4):
    rng = np.random.default_rng(seed)
    qp, gp = rng.integers(0, ids, Q), rng.integers(0, ids + 10, G)
    qc, gc = rng.integers(0, cams, Q), rng.integers(0, cams, G)
    d = (rng.permuted(np.tile(np.arange(G, dtype=np.float32), (Q, 1)), axis=1) + 0.5) / G   # no ties within a row
    return d, qp, gp, qc, gc

@pytest.mark.parametrize('seed', [0, 1])
def test_market_matches_torchreid(seed):
    ref = _load('torchreid', 'rank')
    d, qp, gp, qc, gc = _random_eval(seed)
    cmc, mAP = ref.eval_market1501(d, qp, gp, qc, gc, 50)
    got = evaluate_rank(d, qp, gp, qc, gc, max_rank=50)
    assert np.abs(got.cmc - cmc).max() < 1e-6 and abs(got.mAP - mAP) < 1e-6

@pytest.mark.parametrize('seed', [0, 1])
def test_market_matches_fastreid(seed):
    ref = _load('fastreid', 'rank')
    d, qp, gp, qc, gc = _random_eval(seed)
    cmc, all_AP, all_INP = ref.eval_market1501(d, qp, gp, qc, gc, 50)
    got = evaluate_rank(torch.tensor(d), torch.tensor(qp), torch.tensor(gp), torch.tensor(qc), torch.tensor(gc), max_rank=50)
    assert np.abs(got.cmc - cmc).max() < 1e-6
    assert abs(got.mAP - np.mean(all_AP)) < 1e-6 and abs(got.mINP - np.mean(all_INP)) < 1e-6
    assert got.num_valid == len(all_AP)
    assert np.abs(got.all_AP - np.asarray(all_AP)).max() < 1e-6

def test_cuhk03_map_matches_torchreid():
    "The single-shot CMC depends on random draws (ours are seeded, theirs use np.random); the mAP does not."
    ref = _load('torchreid', 'rank')
    d, qp, gp, qc, gc = _random_eval(3, Q=40, G=200, ids=20, cams=2)
    np.random.seed(0)
    cmc, mAP = ref.eval_cuhk03(d, qp, gp, qc, gc, 20)
    got = evaluate_rank(d, qp, gp, qc, gc, max_rank=20, protocol='cuhk03')
    assert abs(got.mAP - mAP) < 1e-6
    assert np.abs(got.cmc - cmc).max() < 0.1            # same protocol, different draws
    assert (np.diff(got.cmc) >= 0).all() and got.cmc[-1] <= 1

@pytest.mark.parametrize('name', ['torchreid', 'fastreid'])
def test_re_ranking_matches_reference(name):
    ref = _load(name, 'rerank')
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 25, (360,), generator=g)
    X = torch.randn(25, 32, generator=g)[ids] + 0.8 * torch.randn(360, 32, generator=g)
    qf, gf = X[:60], X[60:]
    qg, qq, gg = (torch.cdist(a, b).numpy() for a, b in ((qf, gf), (qf, qf), (gf, gf)))
    for k1, k2, lam in ((20, 6, 0.3), (10, 1, 0.5)):
        want = ref.re_ranking(qg, qq, gg, k1=k1, k2=k2, lambda_value=lam)
        got = re_ranking(qg, qq, gg, k1=k1, k2=k2, lambda_value=lam)
        assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == want.shape
        assert np.abs(got - want).max() < 1e-5

# ---------------------------------------------------------------- no reference needed
def test_types_and_devices():
    d, qp, gp, qc, gc = _random_eval(5, Q=20, G=100)
    a = evaluate_rank(d, qp, gp, qc, gc, max_rank=10)
    b = evaluate_rank(*(torch.tensor(x) for x in (d, qp, gp, qc, gc)), max_rank=10)
    c = evaluate_rank(d.astype(np.float64), qp.astype(np.int32), list(gp), qc, gc, max_rank=10)
    for r in (b, c):
        assert np.array_equal(a.cmc, r.cmc) and a.mAP == r.mAP and a.mINP == r.mINP
    assert a.cmc.shape == (10,) and isinstance(a.mAP, float) and 0 <= a.mINP <= a.mAP <= 1
    x = torch.randn(6, 6)
    assert isinstance(re_ranking(x[:2, 2:], x[:2, :2].abs(), x[2:, 2:].abs(), k1=2, k2=1), torch.Tensor)
    assert isinstance(jaccard_distance(np.random.rand(12, 4).astype(np.float32), k1=3, k2=2), np.ndarray)

def test_skipped_queries_are_counted():
    d = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1], [0.5, 0.6, 0.7]])
    r = evaluate_rank(d, [1, 2, 9], [1, 2, 3], [0, 0, 0], [1, 1, 1], max_rank=3)
    assert (r.num_valid, r.num_skipped) == (2, 1)
    assert np.allclose(r.cmc, [0.5, 1, 1]) and np.isclose(r.mAP, (1 + 0.5) / 2)

def test_features_chunking_is_exact():
    g = torch.Generator().manual_seed(1)
    qf, gf = torch.randn(37, 8, generator=g), torch.randn(211, 8, generator=g)
    qp, gp = torch.randint(0, 9, (37,), generator=g), torch.randint(0, 9, (211,), generator=g)
    qc, gc = torch.randint(0, 3, (37,), generator=g), torch.randint(0, 3, (211,), generator=g)
    full = evaluate_rank(pairwise_distance(qf, gf, 'cosine'), qp, gp, qc, gc)
    for cs in (1, 5, 37, 1000):
        r = evaluate_features(qf.numpy(), gf.numpy(), qp, gp, qc, gc, metric='cosine', chunk_size=cs)
        assert np.array_equal(r.cmc, full.cmc) and r.mAP == full.mAP and r.mINP == full.mINP

@pytest.mark.parametrize('call, message', [
    (lambda d, *a: evaluate_rank(d[:, :, None], *a), '2-D (num_query, num_gallery)'),
    (lambda d, qp, gp, qc, gc: evaluate_rank(d, qp[:-1], gp, qc, gc), 'q_pids has'),
    (lambda d, qp, gp, qc, gc: evaluate_rank(d, qp, gp, qc, gc[:-1]), 'g_camids has'),
    (lambda d, qp, gp, qc, gc: evaluate_rank(d[:0], qp[:0], gp, qc[:0], gc), 'query set is empty'),
    (lambda d, qp, gp, qc, gc: evaluate_rank(d[:, :0], qp, gp[:0], qc, gc[:0]), 'gallery is empty'),
    (lambda d, qp, gp, qc, gc: evaluate_rank(np.where(d > 0.99, np.nan, d), qp, gp, qc, gc), 'NaN distances'),
    (lambda d, qp, gp, qc, gc: evaluate_rank(d, qp, gp, qc, gc, chunk_size=0), 'chunk_size must be'),
    (lambda d, qp, gp, qc, gc: evaluate_rank(d, qp, gp, qc, gc, protocol='cuhk03', repeats=0), 'repeats must be'),
    (lambda d, qp, gp, qc, gc: evaluate_rank(d, np.full_like(qp, 999), gp, qc, gc), 'no query has a match'),
    (lambda d, qp, gp, qc, gc: evaluate_rank(d, qp.astype(object), gp, qc, gc), 'numeric'),
])
def test_bad_input(call, message):
    d, qp, gp, qc, gc = _random_eval(7, Q=10, G=60)
    with pytest.raises((ValueError, TypeError), match=message.replace('(', r'\(').replace(')', r'\)')):
        call(d, qp, gp, qc, gc)

def test_max_rank_is_clipped_with_a_warning():
    d, qp, gp, qc, gc = _random_eval(8, Q=10, G=30)
    with pytest.warns(UserWarning, match='clipped to 30 ranks'):
        r = evaluate_rank(d, qp, gp, qc, gc, max_rank=50)
    assert len(r.cmc) == 30 and r.cmc[-1] == 1
