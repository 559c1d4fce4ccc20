"""The runs of chapter 08's experiment, written to $REID_LIT_RUNS/08_cluster (default ~/.cache/reid_lit/runs/08_cluster).

    python scripts/run_08_cluster.py source   # the starting model: supervised on synthetic domain B (12 epochs, cpu preset)
    python scripts/run_08_cluster.py a        # one half of the USL / supervised runs (needs the source model)
    python scripts/run_08_cluster.py b        # the other half, ending with a's last runs in reverse (run a and b side by side)

A finished run is skipped, so an interrupted script can be started again.
"""
import sys, json, os, time
from pathlib import Path
import reid_lit.cluster as C
from reid_lit.synth import default_synth
from reid_lit.train import train_reid
RUNS = Path(os.environ.get('REID_LIT_RUNS', '~/.cache/reid_lit/runs')).expanduser() / '08_cluster'
EPOCHS, LR = 8, 3.5e-4
def source():
    out = RUNS / 'source-B'
    if not (out / 'history.json').exists() or json.loads((out / 'history.json').read_text())[-1]['epoch'] < 12:
        import shutil; shutil.rmtree(out, ignore_errors=True)
        train_reid(dataset=str(default_synth(domain='B', seed=1)), preset='cpu', seed=0, out=str(out), progress=False)
    return out
def wait_source():
    h = RUNS / 'source-B' / 'history.json'
    while not (h.exists() and json.loads(h.read_text())[-1]['epoch'] == 12): time.sleep(10)
    return RUNS / 'source-B'
def usl(seed, eps, init='source'):
    out = RUNS / f"usl-{init}-eps{eps}-seed{seed}"
    if (out / 'usl.json').exists(): return
    import shutil; shutil.rmtree(out, ignore_errors=True)
    C.train_unsupervised(init=str(wait_source() / 'last.pt') if init == 'source' else None, eps=eps, preset='cpu', seed=seed,
                         epochs=EPOCHS, lr=LR, eval_every=2, out=str(out), progress=False)
def sup(seed):
    out = RUNS / f"supervised-seed{seed}"
    if (out / 'history.json').exists() and json.loads((out / 'history.json').read_text())[-1]['epoch'] == EPOCHS: return
    import shutil; shutil.rmtree(out, ignore_errors=True)
    train_reid(preset='cpu', seed=seed, epochs=EPOCHS, eval_every=2, out=str(out), progress=False)
JOBS = {'a': [lambda: usl(1, 0.6), lambda: usl(0, 0.4), lambda: usl(2, 0.4), lambda: usl(0, 0.3), lambda: sup(2)],
        'b': [lambda: usl(2, 0.6), lambda: usl(1, 0.4), lambda: sup(1), lambda: usl(0, 0.5), lambda: usl(0, 0.6, 'random'),
              lambda: sup(2), lambda: usl(0, 0.3)]}
if __name__ == '__main__':
    which = sys.argv[1]
    if which == 'source': source()
    else:
        for j in JOBS[which]:
            t = time.time(); j(); print('job done', time.time() - t, os.getloadavg(), flush=True)
