"""The supervised AFF run of chapter 12's attention measurement, written to $REID_LIT_RUNS/12_aff_scl (default ~/.cache/reid_lit/runs).

    python scripts/run_12_aff.py      # AFF on domain A with labels, cpu preset, 12 epochs, seed 0 (about 6 minutes on 2 cores)

A finished run is skipped.
"""
import json, os
from pathlib import Path
from reid_lit.train import train_reid
RUNS = Path(os.environ.get('REID_LIT_RUNS', '~/.cache/reid_lit/runs')).expanduser() / '12_aff_scl'

if __name__ == '__main__':
    out = RUNS / 'supervised-aff-seed0'
    h = out / 'history.json'
    if not (h.exists() and json.loads(h.read_text())[-1]['epoch'] >= 12):
        train_reid(model='aff', preset='cpu', seed=0, out=str(out), resume=str(out) if (out / 'last.pt').exists() else None, progress=False)
