"""The supervised AFF run of chapter 12's attention measurement, written to $REID_LIT_RUNS/12_aff_scl (default ~/.cache/reid_lit/runs).

    python scripts/run_12_aff.py      # AFF on domain A with labels, cpu preset, 12 epochs, seed 0 (about 6 minutes on 2 cores)

`sup(model, seed)` trains one supervised run (baseline or AFF, domain A, cpu preset); `run_12_scl.py more` queues the
other seeds of both networks for the supervised comparison.

A finished run is skipped.
"""
import json, os
from pathlib import Path
from reid_lit.train import train_reid
RUNS = Path(os.environ.get('REID_LIT_RUNS', '~/.cache/reid_lit/runs')).expanduser() / '12_aff_scl'

def sup(model='aff', seed=0):
    out = RUNS / f'supervised-{model}-seed{seed}'
    h = out / 'history.json'
    if not (h.exists() and json.loads(h.read_text())[-1]['epoch'] >= 12):
        train_reid(model=model, preset='cpu', seed=seed, out=str(out), resume=str(out) if (out / 'last.pt').exists() else None, progress=False)

if __name__ == '__main__': sup('aff', 0)
