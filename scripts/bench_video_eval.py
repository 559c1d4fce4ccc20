"""Peak memory and speed of tracklet feature extraction (the engine's video evaluation), against the size of the test set.

    python scripts/bench_video_eval.py [--size 128x64] [--repeat 1 4 16] [--long 20]

A small synthetic MARS set is drawn once; its test tracklets are repeated `r` times (and, with `--long L`, each tracklet's
frames are repeated L times, to reach MARS's long tracklets) to make test sets of growing size. Each size is extracted in a
fresh process (`eval_loader` + `Trainer.embed`'s chunked `embed_batch`, the cpu preset's baseline), which prints its peak
resident memory (ru_maxrss) before and after the extraction, the frames it read and its frames/s, with the load average.
If extraction held the whole test set, the peak would grow with the number of frames; it should stay flat.
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path


def child(root, repeat, long, size):
    import torch
    from reid_lit.baseline import build_model
    from reid_lit.data import MARS
    from reid_lit.train import embed_batch, eval_loader, get_preset
    torch.set_num_threads(2)
    data = MARS(root)
    items = [it._replace(frames=tuple(it.frames) * long) for it in list(data.query) + list(data.gallery)] * repeat
    cfg = get_preset('cpu', size=size, workers=0)
    model = build_model('baseline', data.num_train_pids, backbone=cfg.backbone).eval()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, feats = time.perf_counter(), []
    with torch.no_grad():
        for b in eval_loader(items, cfg): feats.append(embed_batch(model, b, chunk=cfg.eval_batch_size))
    el = time.perf_counter() - t0
    frames = sum(len(it.frames) for it in items)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    frame_mb = 3 * size[0] * size[1] * 4 / 2**20
    print(json.dumps(dict(tracklets=len(items), frames=frames, longest=max(len(it.frames) for it in items), peak_mb=round(peak),
                          before_mb=round(before), all_frames_mb=round(frames * frame_mb), fps=round(frames / el, 1),
                          load=[round(x, 2) for x in os.getloadavg()])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--size', default='128x64'); ap.add_argument('--repeat', type=int, nargs='+', default=[1, 4, 16])
    ap.add_argument('--long', type=int, default=20); ap.add_argument('--child', nargs=3)
    a = ap.parse_args()
    size = tuple(int(s) for s in a.size.split('x'))
    if a.child: return child(a.child[0], int(a.child[1]), int(a.child[2]), size)
    from reid_lit.synth import make_synth_reid
    root = make_synth_reid(Path(tempfile.mkdtemp()) / 'mars', num_train_ids=8, num_test_ids=16, num_cams=3, size=size, video=True, seed=0)
    print(f"synthetic MARS at {size[0]}x{size[1]}; each row a fresh process; machine load {os.getloadavg()}")
    for r in a.repeat:
        for long in (1, a.long):
            out = subprocess.run([sys.executable, __file__, '--size', a.size, '--child', str(root), str(r), str(long)], capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr[-2000:], flush=True)


if __name__ == '__main__': main()
