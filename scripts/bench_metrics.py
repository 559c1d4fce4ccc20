"""Benchmark reid_lit.metrics against the reference implementations, side by side, on this machine.

    python scripts/bench_metrics.py                 # evaluation + re-ranking at Market-1501 size, MSMT17-size features
    python scripts/bench_metrics.py --skip-msmt     # without the (minutes-long) MSMT17-size run
    python scripts/bench_metrics.py --quick         # small sizes, to check the script itself
    python scripts/bench_metrics.py --eval-only     # only the evaluate_rank rows (5 paired repeats, medians)
    python scripts/bench_metrics.py --eval-only --previous HEAD   # ... and the committed evaluate_rank in the same repeats

References (never dependencies of reid_lit) are fetched into a cache folder ($REID_LIT_REF_CACHE or
~/.cache/reid_lit/bench_refs): the fast-reid 1.4.0 wheel (its Cython `rank_cy.pyx` is compiled there,
with Cython installed by `pip install --target` into the same cache, not into the environment) and the
torchreid 0.2.5 sdist (`eval_market1501`, `re_ranking`). Every method runs in a fresh subprocess that
loads the same inputs from .npy files and reports its wall time (inputs already loaded) and its peak
resident memory (VmHWM, inputs included); the parent prints ratios and the largest differences.
The evaluation is timed `--repeats` times, reference and ours alternating in the same run; the rows give
medians and the 1-minute load average seen during the repeats (the machine may be shared).
"""
import argparse, json, os, platform, shutil, subprocess, sys, tarfile, tempfile, time, zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
CACHE = Path(os.environ.get('REID_LIT_REF_CACHE', Path.home()/'.cache'/'reid_lit'/'bench_refs'))

# ---------------------------------------------------------------- references
def _pip(*args, timeout=600):
    r = subprocess.run([sys.executable, '-m', 'pip', *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0: raise RuntimeError(f"pip {' '.join(args)} failed:\n{r.stderr[-2000:]}")

def prepare_references(cache:Path=CACHE)->dict:
    "Download/extract fast-reid and torchreid, compile fast-reid's Cython evaluation; returns the folders to import from."
    cache.mkdir(parents=True, exist_ok=True)
    fr, tr, cy = cache/'fastreid', cache/'torchreid', cache/'cython'
    if not (fr/'fastreid/evaluation/rank.py').exists():
        _pip('download', '--no-deps', 'fastreid==1.4.0', '-d', str(fr), '-q')
        with zipfile.ZipFile(next(fr.glob('fastreid-1.4.0-*.whl'))) as z:
            z.extractall(fr, [m for m in z.namelist() if m.startswith('fastreid/evaluation/')])
    if not (tr/'torchreid-0.2.5/torchreid/reid/metrics/rank.py').exists():
        _pip('download', '--no-deps', '--no-binary', ':all:', 'torchreid==0.2.5', '-d', str(tr), '-q')
        with tarfile.open(tr/'torchreid-0.2.5.tar.gz') as t:
            members = [m for m in t.getmembers() if '/torchreid/reid/' in m.name and m.isfile()]
            try: t.extractall(tr, members, filter='data')
            except TypeError: t.extractall(tr, members)                         # Python without extraction filters
    build = cache/'rank_cy_build'
    if not list(build.glob('rank_cy*.so')):
        if not (cy/'Cython').exists(): _pip('install', '--target', str(cy), 'cython', 'setuptools', '-q')
        build.mkdir(exist_ok=True)
        (build/'rank_cy.pyx').write_text((fr/'fastreid/evaluation/rank_cylib/rank_cy.pyx').read_text())
        (build/'setup.py').write_text(
            "from setuptools import setup, Extension\nfrom Cython.Build import cythonize\nimport numpy as np\n"
            "setup(ext_modules=cythonize([Extension('rank_cy', ['rank_cy.pyx'], include_dirs=[np.get_include()], "
            "extra_compile_args=['-O3'])], language_level=3, quiet=True))\n")
        env = dict(os.environ, PYTHONPATH=str(cy))
        r = subprocess.run([sys.executable, 'setup.py', 'build_ext', '--inplace', '-q'], cwd=build, env=env, capture_output=True, text=True)
        if r.returncode != 0: raise RuntimeError(f"compiling fast-reid's rank_cy.pyx failed:\n{r.stderr[-2000:]}")
    return {'rank_cy': str(build), 'torchreid_rank': str(tr/'torchreid-0.2.5/torchreid/reid/metrics'),
            'torchreid_rerank': str(tr/'torchreid-0.2.5/torchreid/reid/utils')}

# ---------------------------------------------------------------- inputs
def make_eval_inputs(folder:Path, Q:int, G:int, seed:int=0):
    "Market-like labels (750 test ids + distractors, 6 cameras) and random distances without ties in any row."
    rng = np.random.default_rng(seed)
    ids = max(2, Q * 750 // 3368)
    np.save(folder/'q_pids.npy', rng.integers(0, ids, Q)); np.save(folder/'g_pids.npy', rng.integers(0, ids + ids // 15, G))
    np.save(folder/'q_camids.npy', rng.integers(0, 6, Q)); np.save(folder/'g_camids.npy', rng.integers(0, 6, G))
    np.save(folder/'distmat.npy', (rng.permuted(np.tile(np.arange(G, dtype=np.float32), (Q, 1)), axis=1) + 0.5) / G)

def make_rerank_inputs(folder:Path, Q:int, G:int, seed:int=0, dim:int=128):
    "Distances between clustered random features (750 identities), float32, as a model would give them."
    import torch
    g = torch.Generator().manual_seed(seed)
    ids = max(2, Q * 750 // 3368)
    centres = torch.randn(ids, dim, generator=g)
    qf = centres[torch.randint(0, ids, (Q,), generator=g)] + torch.randn(Q, dim, generator=g)
    gf = centres[torch.randint(0, ids, (G,), generator=g)] + torch.randn(G, dim, generator=g)
    for name, (a, b) in {'q_g': (qf, gf), 'q_q': (qf, qf), 'g_g': (gf, gf)}.items():
        np.save(folder/f'{name}.npy', torch.cdist(a, b).numpy())

# ---------------------------------------------------------------- child side
def _vmhwm_mb()->float:
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def run_task(task:str, data:Path, out:Path, refs:dict, msmt:tuple, threads:int=0):
    "Run one method in this (fresh) process; write its numbers and timing to `out`."
    if not task.startswith(('eval_ref', 'rerank_ref')):
        import torch, reid_lit.metrics                  # imported before the baseline: torch alone is ~0.7 GB resident
    nt = threads or None                                # 0 -> num_threads=None: torch's own setting (all cores)
    kw = {} if threads < 0 else {'num_threads': nt}     # -1 -> the function's default
    L = lambda n: np.load(data/f'{n}.npy')
    res = {}
    if task.startswith('eval'):
        args = [L(n) for n in ('distmat', 'q_pids', 'g_pids', 'q_camids', 'g_camids')]
        base = _vmhwm_mb()
        if task == 'eval_ref_cy':
            sys.path.insert(0, refs['rank_cy']); from rank_cy import evaluate_cy
            t = time.perf_counter(); cmc, all_AP, all_INP = evaluate_cy(*args, 50); el = time.perf_counter() - t
            res = dict(cmc=np.asarray(cmc).tolist(), mAP=float(np.mean(all_AP)), mINP=float(np.mean(all_INP)))
        elif task == 'eval_ref_py':
            sys.path.insert(0, refs['torchreid_rank']); import warnings; warnings.simplefilter('ignore')
            import rank as tr_rank
            t = time.perf_counter(); cmc, mAP = tr_rank.eval_market1501(*args, 50); el = time.perf_counter() - t
            res = dict(cmc=np.asarray(cmc).tolist(), mAP=float(mAP), mINP=None)
        else:
            if task == 'eval_prev':                     # reid_lit/metrics.py of an earlier git revision (--previous)
                import importlib.util
                spec = importlib.util.spec_from_file_location('_prev_metrics', refs['previous'])
                mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); evaluate_rank = mod.evaluate_rank
            else: from reid_lit.metrics import evaluate_rank
            t = time.perf_counter(); r = evaluate_rank(*args, max_rank=50, **kw); el = time.perf_counter() - t
            res = dict(cmc=r.cmc.tolist(), mAP=r.mAP, mINP=r.mINP)
    elif task.startswith('rerank'):
        args = [L(n) for n in ('q_g', 'q_q', 'g_g')]
        base = _vmhwm_mb()
        if task == 'rerank_ref':
            sys.path.insert(0, refs['torchreid_rerank']); from rerank import re_ranking
        else:
            from reid_lit.metrics import re_ranking
        t = time.perf_counter(); final = re_ranking(*args, k1=20, k2=6, lambda_value=0.3, **({} if task == 'rerank_ref' else {'num_threads': nt})); el = time.perf_counter() - t
        np.save(out.with_suffix('.npy'), final)
    elif task == 'msmt_ours':
        import torch
        from reid_lit.metrics import evaluate_features
        Q, G, D = msmt
        g = torch.Generator().manual_seed(0)
        qf, gf = torch.randn(Q, D, generator=g), torch.randn(G, D, generator=g)
        ids = max(2, Q * 3060 // 11659)
        qp, gp = torch.randint(0, ids, (Q,), generator=g), torch.randint(0, ids, (G,), generator=g)
        qc, gc = torch.randint(0, 15, (Q,), generator=g), torch.randint(0, 15, (G,), generator=g)
        base = _vmhwm_mb()
        t = time.perf_counter(); r = evaluate_features(qf, gf, qp, gp, qc, gc, metric='cosine', num_threads=nt); el = time.perf_counter() - t
        res = dict(cmc=r.cmc.tolist(), mAP=r.mAP, mINP=r.mINP, num_valid=r.num_valid)
    out.write_text(json.dumps(dict(res, seconds=el, peak_mb=_vmhwm_mb(), inputs_mb=base)))

def child(task, data, refs, msmt=(0, 0, 0), threads=0, timeout=3600):
    out = Path(data)/f'{task}.json'
    cmd = [sys.executable, str(HERE), '--child', task, '--data', str(data), '--refs', json.dumps(refs),
           '--msmt', ','.join(map(str, msmt)), '--threads', str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0: raise RuntimeError(f"{task} failed:\n{r.stderr[-3000:]}")
    return json.loads(out.read_text())

# ---------------------------------------------------------------- parent side
def machine()->str:
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    mem = next((int(l.split()[1]) / 2**20 for l in open('/proc/meminfo') if l.startswith('MemTotal')), 0)
    import torch
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; Python {platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)"

THREADS = {1: 'num_threads=1 (default)', 0: 'num_threads=None (torch: all cores)'}          # re_ranking's settings

def eval_rows(tmp, refs, Q, G, repeats:int):
    "evaluate_rank (default settings, and torch's thread setting) against fast-reid's Cython, `repeats` times alternating; medians."
    import inspect, torch
    from reid_lit.metrics import evaluate_rank
    default = inspect.signature(evaluate_rank).parameters['num_threads'].default
    variants = {-1: f"default settings (num_threads={default})", 0: f"num_threads=None (torch's setting: {torch.get_num_threads()} threads here)"}
    if 'previous' in refs: variants['prev'] = f"{refs['previous_rev']} (before this change), its default settings"
    runs = {'ref': [], **{th: [] for th in variants}}
    for i in range(repeats):
        for key, task, th in [('ref', 'eval_ref_cy', 0)] + [(th, 'eval_prev' if th == 'prev' else 'eval_ours', -1 if th == 'prev' else th) for th in variants]:
            r = child(task, tmp, refs, threads=th); r['load'] = os.getloadavg()[0]; runs[key].append(r)
    ref = runs['ref']
    med = lambda rs: float(np.median([r['seconds'] for r in rs]))
    print(f"| task | fast-reid evaluate_cy (Cython), median of {repeats} | ours, median | speed-up (ratio of medians; per-repeat range) | "
          "load average (1 min) during the repeats | reference / our peak RSS | max abs difference |")
    print("|---|---|---|---|---|---|---|")
    for th, label in variants.items():
        ours = runs[th]
        pair = [a['seconds'] / b['seconds'] for a, b in zip(ref, ours)]
        loads = [r['load'] for r in ref + ours]
        dc = max(np.abs(np.array(ref[-1]['cmc']) - np.array(o['cmc'])).max() for o in ours)
        dm = max(abs(ref[-1]['mAP'] - o['mAP']) for o in ours); di = max(abs(ref[-1]['mINP'] - o['mINP']) for o in ours)
        print(f"| evaluate_rank {Q}×{G}, {label} | {med(ref):.3f} s | {med(ours):.3f} s | **{med(ref) / med(ours):.1f}×** ({min(pair):.1f}–{max(pair):.1f}×) | "
              f"{min(loads):.2f}–{max(loads):.2f} | {ref[-1]['peak_mb']:.0f} / {ours[-1]['peak_mb']:.0f} MB | "
              f"CMC {dc:.1e}, mAP {dm:.1e}, mINP {di:.1e} |")
    for key in runs:
        print(f"  {'fast-reid' if key == 'ref' else variants[key]}: " + ', '.join(f"{r['seconds']:.3f} s (load {r['load']:.2f})" for r in runs[key]))
    return runs

def row(name, ref, ours, diffs):
    ratio = ref['seconds'] / ours['seconds']
    print(f"| {name} | {ref['seconds']:.2f} s | {ours['seconds']:.2f} s | **{ratio:.1f}×** | "
          f"{ref['peak_mb']:.0f} MB | {ours['peak_mb']:.0f} MB | {ref['peak_mb'] - ref['inputs_mb']:.0f} / {ours['peak_mb'] - ours['inputs_mb']:.0f} MB | {diffs} |")

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='small sizes (checks the script, numbers mean little)')
    p.add_argument('--skip-msmt', action='store_true', help='skip the MSMT17-size evaluate_features run')
    p.add_argument('--msmt-threads', type=int, default=0, help="torch threads for the MSMT17-size run (0: torch's setting, the default of evaluate_features)")
    p.add_argument('--torchreid-python', action='store_true', help="also time torchreid's pure-Python eval_market1501 (about a minute)")
    p.add_argument('--eval-only', action='store_true', help='only the evaluate_rank rows (no re-ranking, no MSMT17-size run)')
    p.add_argument('--repeats', type=int, default=5, help='paired repeats of the evaluate_rank timing (medians are printed)')
    p.add_argument('--previous', metavar='REV', help="also time evaluate_rank of reid_lit/metrics.py at this git revision (e.g. HEAD), in the same repeats")
    p.add_argument('--child'); p.add_argument('--data'); p.add_argument('--refs'); p.add_argument('--msmt'); p.add_argument('--threads', type=int, default=0)
    a = p.parse_args()
    if a.child:
        return run_task(a.child, Path(a.data), Path(a.data)/f'{a.child}.json', json.loads(a.refs), tuple(int(x) for x in a.msmt.split(',')), a.threads)
    Q, G = (400, 2000) if a.quick else (3368, 15913)
    msmt = (600, 4000, 256) if a.quick else (11659, 82161, 2048)
    print(f"# reid_lit.metrics benchmark, {time.strftime('%Y-%m-%d %H:%M')}\n\n{machine()}; load average {os.getloadavg()[0]:.1f} at start\n")
    t = time.perf_counter(); refs = prepare_references(); print(f"references ready in {time.perf_counter() - t:.1f} s ({CACHE})\n")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_eval_inputs(tmp, Q, G)
        if a.previous:
            src = subprocess.run(['git', 'show', f'{a.previous}:reid_lit/metrics.py'], cwd=HERE.parent.parent, capture_output=True, text=True, check=True).stdout
            (tmp/'prev_metrics.py').write_text(src)
            refs = dict(refs, previous=str(tmp/'prev_metrics.py'), previous_rev=f"reid_lit.metrics at {a.previous}")
        runs = eval_rows(tmp, refs, Q, G, a.repeats)
        if a.torchreid_python or not a.eval_only:
            print("\n| task | reference | ours | speed-up | reference peak RSS | our peak RSS | extra over inputs (ref / ours) | max abs difference |")
            print("|---|---|---|---|---|---|---|---|")
        if a.torchreid_python:
            refp, mine = child('eval_ref_py', tmp, refs), runs[-1][-1]
            row(f"evaluate_rank {Q}×{G}, default settings vs torchreid eval_market1501 (Python)", refp, mine,
                f"CMC {np.abs(np.array(refp['cmc']) - np.array(mine['cmc'])).max():.1e}, mAP {abs(refp['mAP'] - mine['mAP']):.1e}")
        for f in tmp.glob('*.npy'): f.unlink()
        if a.eval_only:
            print(f"\nload average at the end: {os.getloadavg()[0]:.2f}"); return
        make_rerank_inputs(tmp, Q, G)
        ref = child('rerank_ref', tmp, refs)
        shutil.move(tmp/'rerank_ref.npy', tmp/'rerank_ref_out.npy')
        for th in (1, 0):
            ours = child('rerank_ours', tmp, refs, threads=th)
            diff = np.abs(np.load(tmp/'rerank_ref_out.npy') - np.load(tmp/'rerank_ours.npy')).max()
            row(f"re_ranking {Q}×{G}, k1=20, k2=6, {THREADS[th]} vs torchreid re_ranking (NumPy)", ref, ours, f"distances {diff:.1e}")
        for f in tmp.glob('*.npy'): f.unlink()
        if not a.skip_msmt:
            m = child('msmt_ours', tmp, refs, msmt, threads=a.msmt_threads)
            print(f"\nevaluate_features {msmt[0]}×{msmt[1]}, {msmt[2]}-d random features (cosine, num_threads={a.msmt_threads or None}): {m['seconds']:.1f} s, "
                  f"peak RSS {m['peak_mb']:.0f} MB = {m['peak_mb'] / 1024:.2f} GiB (features alone {m['inputs_mb']:.0f} MB); "
                  f"mAP {100 * m['mAP']:.3f}% on {m['num_valid']} valid queries")
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")

if __name__ == '__main__': main()
