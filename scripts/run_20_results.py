"""Chapter 20's runs: every model of every setting of `reid_lit.compare`, seeds 0-2, written to $REID_LIT_RUNS/20_results.

    python scripts/run_20_results.py          # the whole queue; start it twice, side by side (each run is claimed once)
    python scripts/run_20_results.py video    # one setting's runs only

The chapter (nbs/20_results.ipynb) and `reid_lit_compare` load the finished runs; a run that is missing is trained there
instead, so this script only spreads the work over two processes. A finished run is skipped; an interrupted one resumes
(delete its claim under .claims to let a queue take it). Adaptation runs (uda, usl) wait for the run of `SOURCE` (supervised, default domain A) they start from.
"""
import os, sys, time
from reid_lit.compare import SETTINGS, SOURCE, run_one, run_folder, runs_dir

SEEDS = (0, 1, 2)
ORDER = ('supervised', 'video', 'source', 'usl', 'uda')

def jobs(only=None):
    for name in ORDER:
        if only and name != only: continue
        s = SOURCE if name == 'source' else SETTINGS[name]
        entries = sorted(s.entries, key=lambda e: e.model != 'intra_inter')       # the slowest first
        for seed in SEEDS:
            for e in entries: yield s, e, seed

if __name__ == '__main__':
    claims = runs_dir() / '.claims'; claims.mkdir(parents=True, exist_ok=True)
    for s, e, seed in jobs(sys.argv[1] if len(sys.argv) > 1 else None):
        if (run_folder(s, e, seed) / 'result.json').exists(): continue
        try: (claims / f"{s.name}-{run_folder(s, e, seed).name}").mkdir()
        except FileExistsError: continue
        if e.init:                                                                 # wait for the supervised run it starts from
            src = next(x for x in SOURCE.entries if x.label == e.init)
            while not (run_folder(SOURCE, src, seed) / 'result.json').exists(): time.sleep(15)
        t = time.time(); r = run_one(s, e.label, seed)
        print(f"done {s.name} {e.label} seed {seed}: {time.time() - t:.0f} s, mAP {100 * r['mAP']:.1f}, load {os.getloadavg()[0]:.1f}", flush=True)
