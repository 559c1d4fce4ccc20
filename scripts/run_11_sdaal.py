"""The runs of chapter 11's experiment, written to $REID_LIT_RUNS/11_sdaal (default ~/.cache/reid_lit/runs/11_sdaal).

    python scripts/run_11_sdaal.py sources a   # source models on synthetic domain A (one half) ...
    python scripts/run_11_sdaal.py sources b   # ... and the other half, side by side
    python scripts/run_11_sdaal.py arms a      # the attribute module on the attribute set (then arms b)
    python scripts/run_11_sdaal.py uda a       # the adaptation runs to domain B (one half; needs the sources)
    python scripts/run_11_sdaal.py uda b       # the other half

A finished run is skipped, so an interrupted script can be started again (an unfinished adaptation run resumes).
"""
import sys, json, os, time
from pathlib import Path
from reid_lit.synth import default_synth
from reid_lit.train import train_reid
RUNS = Path(os.environ.get('REID_LIT_RUNS', '~/.cache/reid_lit/runs')).expanduser() / '11_sdaal'
SEEDS = (0, 1, 2)
P_SWEEP = {'p50': dict(p=0.5), 'p90': dict(p=0.9), 'p100': dict(p=1.0)}   # seed 0 only: the refinery's share of pairs

def finished(out, epochs):
    h = Path(out) / 'history.json'
    return h.exists() and json.loads(h.read_text())[-1]['epoch'] >= epochs

def source(model, seed):
    "Supervised on domain A (the default synthetic dataset), cpu preset."
    out = RUNS / f"source-{model}-seed{seed}"
    if not finished(out, 12):
        import shutil; shutil.rmtree(out, ignore_errors=True)
        train_reid(model=model, preset='cpu', seed=seed, out=str(out), progress=False)
    return out

def arm(seed):
    "The attribute recognition module on the separately drawn attribute set (domain C)."
    from reid_lit.sdaal import attribute_set, ARM_EPOCHS
    out = RUNS / f"arm-seed{seed}"
    if not finished(out, ARM_EPOCHS):
        import shutil; shutil.rmtree(out, ignore_errors=True)
        train_reid(dataset=str(attribute_set()), model='arm', preset='cpu', seed=seed, epochs=ARM_EPOCHS, eval_every=ARM_EPOCHS,
                   out=str(out), progress=False)
    return out

def wait(out, epochs):
    while not finished(out, epochs): time.sleep(10)
    return out

def uda(model, seed, **kw):
    from reid_lit.sdaal import train_sdaal, ARM_EPOCHS, SDAAL_VARIANTS
    out = RUNS / f"uda-{model}-seed{seed}"
    if (out / 'sdaal.json').exists(): return
    src = wait(RUNS / f"source-{model}-seed{seed}", 12)
    arm_run = wait(RUNS / f"arm-seed{seed}", ARM_EPOCHS) if model == 'sda' else None
    train_sdaal(init=str(src / 'last.pt'), arm_init=None if arm_run is None else str(arm_run / 'last.pt'), model=model, seed=seed,
                preset='cpu', out=str(out), resume=str(out) if (out / 'last.pt').exists() else None,
                variants=(SDAAL_VARIANTS | (P_SWEEP if seed == 0 else {})) if model == 'sda' else {}, progress=False, **kw)

JOBS = {('sources', 'a'): [lambda: default_synth(domain='B', seed=1), lambda: source('sda', 0), lambda: source('baseline', 0),
                           lambda: source('sda', 2), lambda: source('nonlocal', 1), lambda: source('baseline', 2)],
        ('sources', 'b'): [lambda: default_synth(), lambda: source('sda', 1), lambda: source('nonlocal', 0), lambda: source('baseline', 1),
                           lambda: source('nonlocal', 2)],
        ('arms', 'a'): [lambda: arm(0), lambda: arm(2)], ('arms', 'b'): [lambda: arm(1)],
        ('uda', 'a'): [lambda: uda('sda', 0), lambda: uda('sda', 2), lambda: uda('baseline', 0), lambda: uda('nonlocal', 1), lambda: uda('baseline', 2)],
        ('uda', 'b'): [lambda: uda('sda', 1), lambda: uda('nonlocal', 0), lambda: uda('baseline', 1), lambda: uda('nonlocal', 2)]}

if __name__ == '__main__':
    for j in JOBS[sys.argv[1], sys.argv[2]]:
        t = time.time(); j(); print('job done', round(time.time() - t), os.getloadavg(), flush=True)
