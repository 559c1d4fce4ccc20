"""Chapter 12's loss ablation on chapter 08's loop, written to $REID_LIT_RUNS/12_aff_scl (default ~/.cache/reid_lit/runs).

    python scripts/run_12_scl.py a    # seed 0: mean memory, hard memory, the symmetric objective
    python scripts/run_12_scl.py b    # seed 1: the same three
    python scripts/run_12_scl.py aff-a  # AFF vs the plain backbone under SCL: seeds 0 and 2 (AFF starts from its own domain-B model)
    python scripts/run_12_scl.py aff-b  # ... and seed 1, with the plain backbone's SCL runs it is paired with
    python scripts/run_12_scl.py more   # the rest, as one queue (start it twice, side by side: each run is claimed once):
                                        # the single-memory runs of the ablation (a and b's, and seed 2), 0.75/0.25 without L_b (3 seeds), AFF + SCL at
                                        # eps 0.3/0.4/0.6/0.7 (3 seeds; 0.5 is aff-a/aff-b), supervised baseline and AFF seeds

Each run starts from chapter 08's domain-B model (scripts/run_08_cluster.py source) and learns the default synthetic
domain A without labels: baseline network, eps 0.5, 8 epochs of the cpu preset, Adam 3.5e-4. A finished run is skipped.
"""
import json, os, shutil, sys, time
from pathlib import Path
import reid_lit.cluster as C
from reid_lit.aff import SymmetricContrastLoss
RUNS = Path(os.environ.get('REID_LIT_RUNS', '~/.cache/reid_lit/runs')).expanduser()
SOURCE = RUNS / '08_cluster' / 'source-B' / 'last.pt'
AFF_SOURCE = RUNS / '12_aff_scl' / 'source-aff-B' / 'last.pt'   # AFF trained with labels on domain B, cpu preset, 12 epochs, seed 0
LOSSES = {'mean': dict(memory_mode='mean', momentum=0.1), 'hard': dict(memory_mode='hard', momentum=0.1),
          'scl': dict(memory_factory=SymmetricContrastLoss.factory()),
          'scl-nolb': dict(memory_factory=SymmetricContrastLoss.factory(balance=False))}
def run(loss, seed, eps=0.5, model='baseline'):
    out = RUNS / '12_aff_scl' / (f"usl-{loss}-eps{eps}-seed{seed}" if model == 'baseline' else f"usl-{model}-{loss}-eps{eps}-seed{seed}")
    if (out / 'usl.json').exists(): return
    shutil.rmtree(out, ignore_errors=True)
    C.train_unsupervised(init=str(SOURCE if model == 'baseline' else AFF_SOURCE), model=model, eps=eps, preset='cpu', seed=seed, epochs=8,
                         lr=3.5e-4, eval_every=2, out=str(out), progress=False, **LOSSES[loss])
if __name__ == '__main__':
    if not SOURCE.exists(): sys.exit(f"no starting model at {SOURCE}: run `python scripts/run_08_cluster.py source` first")
    jobs = {'a': [('mean', 0, 'baseline'), ('hard', 0, 'baseline'), ('scl', 0, 'baseline')],
            'b': [('mean', 1, 'baseline'), ('hard', 1, 'baseline'), ('scl', 1, 'baseline')],
            'aff-a': [('scl', 0, 'aff'), ('scl', 0, 'baseline'), ('scl', 2, 'aff')],
            'aff-b': [('scl', 1, 'aff'), ('scl', 1, 'baseline'), ('scl', 2, 'baseline')]}
    if sys.argv[1] == 'more':
        from run_12_aff import sup
        queue = [(f'{l}-s{s}', lambda l=l, s=s: run(l, s)) for l, s in (('mean', 0), ('hard', 0), ('mean', 1), ('hard', 1), ('mean', 2), ('hard', 2), ('scl-nolb', 0), ('scl-nolb', 1), ('scl-nolb', 2))]
        queue += [(f'aff-eps{e}-s{s}', lambda e=e, s=s: run('scl', s, e, 'aff')) for s in (0, 1, 2) for e in (0.4, 0.6, 0.7, 0.3)]
        queue += [(f'sup-{m}-s{s}', lambda m=m, s=s: sup(m, s)) for m, s in (('baseline', 0), ('baseline', 1), ('aff', 1), ('baseline', 2), ('aff', 2))]
        claims = RUNS / '12_aff_scl' / '.claims'; claims.mkdir(parents=True, exist_ok=True)
        for name, job in queue:
            try: (claims / name).mkdir()                                    # atomic: the other worker skips this job
            except FileExistsError: continue
            t = time.time(); job(); print('done', name, round(time.time() - t), os.getloadavg(), flush=True)
    else:
        for loss, seed, model in jobs[sys.argv[1]]:
            t = time.time(); run(loss, seed, model=model); print('done', model, loss, seed, round(time.time() - t), os.getloadavg(), flush=True)
