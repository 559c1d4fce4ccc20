"""Clustering cost: reid_lit.cluster.pseudo_labels (sparse Jaccard + DBSCAN) against cluster-contrast.

    python scripts/bench_cluster.py                 # Market-1501 size (12,936 x 2,048), then MSMT17 size (32,621 x 2,048)
    python scripts/bench_cluster.py --n 4000        # a smaller size, for a quick look
    python scripts/bench_cluster.py --skip-msmt

The reference is cluster-contrast's `compute_jaccard_distance` (its faiss CPU path, search_option=3) followed by
scikit-learn's DBSCAN(metric='precomputed') on the dense matrix, as its training script does. Its two source files
(MIT, Alibaba) are in ../shared/refs/cluster_contrast/ ($REID_LIT_REFS overrides); this script loads them by path,
reid_lit never imports them. faiss-cpu is installed by `pip install --target` into the bench cache
($REID_LIT_REF_CACHE or ~/.cache/reid_lit/bench_refs), not into the environment.

Conventions: cluster-contrast's faiss search returns k1 neighbours *including the image itself*, so its k1=30 is
reid_lit's (and Zhong et al.'s) k1=29; the two are compared that way. Its half-size sets use round(30/2)=15
neighbours, ours round(29/2)=14 (round half to even), so labels can differ slightly: the script prints the share
of identical labels and the ARI between the two clusterings.

Each side runs in a fresh process (its peak resident memory, VmHWM, is that process's); the features are drawn
with identity structure (751 identities as in Market-1501's training set, 1,041 at MSMT17 size; groups of five
look-alike people and a camera bias, so that DBSCAN makes mistakes as on real features), L2-normalised, the same
array for both. The load average is printed with every figure.
"""
import argparse, json, os, platform, subprocess, sys, time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
CACHE = Path(os.environ.get('REID_LIT_REF_CACHE', Path.home()/'.cache'/'reid_lit'/'bench_refs'))
REFS = Path(os.environ.get('REID_LIT_REFS', ROOT.parent/'shared'/'refs'))
FAISS = 'faiss-cpu==1.15.1'


def prepare_faiss(cache:Path=CACHE)->Path:
    "faiss-cpu in its own folder of the cache (installed once)."
    target = cache/'faiss'
    if not (target/'faiss').exists():
        r = subprocess.run([sys.executable, '-m', 'pip', 'install', '--target', str(target), '--no-deps', FAISS, '-q'],
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0: raise RuntimeError(f"pip install {FAISS} failed:\n{r.stderr[-2000:]}")
    return target


def features(n:int, d:int=2048, ids:int|None=None, seed:int=0)->tuple:
    "(n, d) float32 L2-normalised features with identity structure (look-alike groups of 5 people, a camera bias), and the identities."
    rng = np.random.default_rng(seed)
    ids = ids or max(2, round(n / 17.2))                           # Market-1501: 12,936 images of 751 identities
    pid = np.sort(rng.integers(0, ids, n))
    groups = rng.standard_normal((ids // 5 + 1, d)).astype(np.float32)
    centres = groups[np.arange(ids) // 5] + 0.3 * rng.standard_normal((ids, d)).astype(np.float32)
    cams = rng.standard_normal((6, d)).astype(np.float32)
    x = centres[pid] + 0.3 * cams[rng.integers(0, 6, n)] + 0.1 * rng.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), pid


def _vmhwm_mb()->float:
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    return float('nan')


def run_child(task:str, data:Path, eps:float, threads:int)->dict:
    "Cluster the features in `data` in this process and write labels and figures next to them."
    import torch
    torch.set_num_threads(threads)
    x = np.load(data)
    if task.startswith('ours'):
        from reid_lit.cluster import pseudo_labels
    else:
        sys.path.insert(0, str(CACHE/'faiss')); sys.path.insert(0, str(REFS))
        from cluster_contrast.faiss_rerank import compute_jaccard_distance
        from sklearn.cluster import DBSCAN
    base = _vmhwm_mb()                                              # inputs and imports loaded; the call is timed alone
    t0 = time.perf_counter()
    if task == 'ours': lab = pseudo_labels(x, eps, min_samples=4, k1=29, k2=6, sparse=True)
    elif task == 'ours_dense': lab = pseudo_labels(x, eps, min_samples=4, k1=29, k2=6, sparse=False)
    else:
        D = compute_jaccard_distance(torch.from_numpy(x), k1=30, k2=6, print_flag=False, search_option=3)
        lab = DBSCAN(eps=eps, min_samples=4, metric='precomputed', n_jobs=-1).fit_predict(D)
    sec = time.perf_counter() - t0
    out = {'seconds': sec, 'peak_mb': _vmhwm_mb(), 'inputs_mb': base, 'clusters': int(lab.max() + 1), 'outliers': float((lab < 0).mean())}
    np.save(data.with_name(f'{task}_labels.npy'), lab)
    data.with_name(f'{task}.json').write_text(json.dumps(out))
    return out


def child(task, data, eps, threads):
    r = subprocess.run([sys.executable, str(HERE), '--child', task, '--data', str(data), '--eps', str(eps), '--threads', str(threads)],
                       capture_output=True, text=True, timeout=7200)
    if r.returncode != 0: raise RuntimeError(f"{task} failed:\n{r.stderr[-3000:]}")
    return json.loads(data.with_name(f'{task}.json').read_text())


def machine()->str:
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    mem = next((int(l.split()[1]) / 2**20 for l in open('/proc/meminfo') if l.startswith('MemTotal')), 0)
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; Python {platform.python_version()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--child'); ap.add_argument('--data'); ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--n', type=int, default=12936); ap.add_argument('--eps', type=float, default=0.6)
    ap.add_argument('--skip-msmt', action='store_true'); ap.add_argument('--dense', action='store_true', help='also time our dense path')
    a = ap.parse_args()
    if a.child: run_child(a.child, Path(a.data), a.eps, a.threads); return
    from sklearn.metrics import adjusted_rand_score
    prepare_faiss()
    work = CACHE/'cluster_bench'; work.mkdir(parents=True, exist_ok=True)
    print(f"# reid_lit.cluster benchmark, {time.strftime('%Y-%m-%d %H:%M')}\n\n{machine()}; {a.threads} threads; "
          f"load average {os.getloadavg()[0]:.1f} at start\n")
    x, pid = features(a.n); np.save(work/'x.npy', x)
    print(f"features: {a.n} x {x.shape[1]} float32 ({x.nbytes / 2**20:.0f} MB), {len(set(pid))} identities; DBSCAN eps {a.eps}, min_samples 4\n")
    print("| N | side | seconds | peak RSS | extra over inputs and imports | clusters | outliers | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    res = {}
    for task in (['ours', 'ours_dense'] if a.dense else ['ours']) + ['cluster_contrast']:
        res[task] = r = child(task, work/'x.npy', a.eps, a.threads)
        print(f"| {a.n} | {task} | {r['seconds']:.1f} s | {r['peak_mb'] / 1024:.2f} GiB | {(r['peak_mb'] - r['inputs_mb']) / 1024:.2f} GiB | "
              f"{r['clusters']} | {100 * r['outliers']:.1f}% | {os.getloadavg()[0]:.1f} |", flush=True)
    ours, cc = np.load(work/'ours_labels.npy'), np.load(work/'cluster_contrast_labels.npy')
    o, c = res['ours'], res['cluster_contrast']
    print(f"\nours vs cluster-contrast: {c['seconds'] / o['seconds']:.1f}x faster, peak memory {o['peak_mb'] / c['peak_mb']:.2f} of its peak "
          f"({(o['peak_mb'] - o['inputs_mb']) / (c['peak_mb'] - c['inputs_mb']):.2f} of its extra memory); "
          f"labels: ARI {adjusted_rand_score(cc, ours):.4f} between the two clusterings, outliers agree on "
          f"{100 * ((ours < 0) == (cc < 0)).mean():.1f}% of images; truth: ARI ours {adjusted_rand_score(pid, ours):.3f}, "
          f"cluster-contrast {adjusted_rand_score(pid, cc):.3f}; load average {os.getloadavg()[0]:.1f}")
    if not a.skip_msmt:
        n = 32621
        x, pid = features(n, ids=1041); np.save(work/'x.npy', x)
        r = child('ours', work/'x.npy', a.eps, a.threads)
        print(f"\n| {n} (MSMT17 size) | ours | {r['seconds']:.1f} s | {r['peak_mb'] / 1024:.2f} GiB | {(r['peak_mb'] - r['inputs_mb']) / 1024:.2f} GiB | {r['clusters']} | "
              f"{100 * r['outliers']:.1f}% | {os.getloadavg()[0]:.1f} |\n(cluster-contrast's dense N x N matrices would need "
              f"2 x {4 * n * n / 2**30:.1f} GiB here; not run)")


if __name__ == '__main__':
    main()
