"""Chapter 13's runs (Table 6 of Yang et al. on synthetic data with pose variation), written to $REID_LIT_RUNS/13_intra_inter
(default ~/.cache/reid_lit/runs).

    python scripts/run_13_intra_inter.py table6   # the five networks x seeds 0, 1, 2, as one queue: start it twice, side by side
                                                   # (each run is claimed once); seed 0 of all five first
    python scripts/run_13_intra_inter.py more     # the full network varied: lambda = 0 (Table 10), FC fusion (Table 9) and
                                                   # strong=True x 3 seeds, then beta = 0 and 0.2 (Table 11), seed by seed

The data: the default synthetic world (domain A) with the detection-box jitter alone at three times the designed one
(`box_jitter=3`), so fixed strips misalign while the pose stays known. The networks (Table 6): fixed strips without attention
('baseline'), pose-aligned crops ('aligned'), + intra-attention, + inter-attention, + both; Table 1's network at half width
(`table1_w16`, about 56 images/s on one core), the `cpu` preset (12 epochs, Adam, cosine), eq. (11) with lambda = 0.5.
A finished run is skipped; an interrupted one is resumed (delete its folder under .claims to let a new queue take it).
"""
import json, os, sys, time
from pathlib import Path
from reid_lit.synth import default_synth
from reid_lit.train import train_reid
RUNS = Path(os.environ.get('REID_LIT_RUNS', '~/.cache/reid_lit/runs')).expanduser() / '13_intra_inter'
BOX_JITTER, EPOCHS = 3.0, 12
TABLE6 = {'baseline': dict(regions='strips', intra=False, fusion='concat'), 'aligned': dict(regions='pose', intra=False, fusion='concat'),
          'intra': dict(regions='pose', intra=True, fusion='concat'), 'inter': dict(regions='pose', intra=False, fusion='inter'),
          'both': dict(regions='pose', intra=True, fusion='inter')}

VARIANTS = {'lam0': ('both', dict(lam=0.0)), 'fc': ('both', dict(fusion='fc')), 'strong': ('both', dict(strong=True)),
            'beta0': ('both', dict(beta=0.0)), 'beta0.2': ('both', dict(beta=0.2))}   # name: (Table 6 network, what changes)

def data(): return default_synth(box_jitter=BOX_JITTER)

def run(name, seed):
    out = RUNS / f"{name}-seed{seed}"
    base, extra = VARIANTS.get(name, (name, {}))
    h = out / 'history.json'
    if h.exists() and json.loads(h.read_text())[-1]['epoch'] >= EPOCHS: return
    train_reid(dataset=str(data()), model='intra_inter', preset='cpu', backbone='table1_w16', seed=seed, epochs=EPOCHS,
               model_kwargs={**TABLE6[base], **extra}, out=str(out), resume=str(out) if (out / 'last.pt').exists() else None,
               progress=False)

if __name__ == '__main__':
    jobs = {'table6': [(n, s) for s in (0, 1, 2) for n in TABLE6],
            'more': [(n, s) for s in (0, 1, 2) for n in ('lam0', 'fc', 'strong')] + [(n, s) for s in (0, 1, 2) for n in ('beta0', 'beta0.2')]}[sys.argv[1]]
    claims = RUNS / '.claims'; claims.mkdir(parents=True, exist_ok=True)
    data()                                                                      # drawn once (atomically) before any run
    for name, seed in jobs:
        try: (claims / f"{name}-s{seed}").mkdir()                               # atomic: the other worker skips this job
        except FileExistsError: continue
        t = time.time(); run(name, seed); print('done', name, seed, round(time.time() - t), os.getloadavg(), flush=True)
