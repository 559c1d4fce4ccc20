"""Cost of the non-local and SDA blocks in the re-ID baseline, in the form of Table 7 of Xu et al. (2022).

For each model (the ResNet baseline, four non-local blocks, four SDA blocks) this prints
- forward FLOPs for one batch (torch.utils.flop_counter on the meta device, so nothing is computed),
  and the same number halved (multiply-accumulates, the unit the paper's "FLOPs" column turns out to use),
- parameters,
- the time of one training step (forward, CE + batch-hard triplet, backward, SGD step): each model runs in
  its own process (one warm-up step, then `--steps` timed steps), the models take turns for `--rounds`
  rounds so that a busy machine slows them all alike, and the median of all timed steps is reported,
- peak memory of that process (CPU: peak resident set size, and what the training step added to the
  resident size of the built model; CUDA: torch.cuda.max_memory_allocated for both),
all as ratios against the baseline measured in the same run, next to the paper's Table 7.

Usage:  python scripts/bench_sda.py [--batch 32] [--size 256 128] [--backbone resnet50] [--steps 1] [--rounds 2]
                                    [--threads 1] [--device cpu|cuda] [--models baseline nonlocal nonlocal_sub sda]
                                    [--no-time] [--json out.json]
This script is never run by CI; it prints figures, it asserts nothing about speed.
"""
import argparse, json, os, resource, statistics, subprocess, sys, time

PAPER = {  # Table 7 of the paper: GPU memory (MB), training time (ms), "FLOPs" (G) for a mini-batch of 32 images
    "baseline": dict(mem=6868, time=87.6, flops=130.24),
    "nonlocal": dict(mem=8676, time=142.3, flops=190.54),
    "sda": dict(mem=6919, time=97.5, flops=132.42),
}
MODELS = {  # name -> (registry name, extra kwargs)
    "baseline": ("baseline", {}),
    "nonlocal": ("nonlocal", {}),
    "nonlocal_sub": ("nonlocal", dict(sub_sample=True)),
    "sda": ("sda", {}),
}


def _build(name, backbone, num_classes=751):
    import reid_lit.sda  # noqa: F401  registers "nonlocal" and "sda"
    from reid_lit.baseline import build_model
    reg, kw = MODELS[name]
    return build_model(reg, num_classes, backbone=backbone, **kw)


def _inputs(name, batch, size, device):
    import torch
    x = torch.randn(batch, 3, *size, device=device)
    parts = None
    if MODELS[name][0] == "sda":
        from reid_lit.pose import canonical_sda_masks
        parts = canonical_sda_masks((size[0] // 2, size[1] // 2)).to(device)[None].expand(batch, -1, -1, -1)   # as SDAResNet.parts_from_batch
    return x, parts


def count(name, batch, size, backbone):
    "Forward FLOPs (FlopCounterMode, meta device) and parameters."
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device("meta"):
        m = _build(name, backbone).train()
        x, parts = _inputs(name, batch, size, "meta")
    with FlopCounterMode(display=False) as fc:
        m(x, parts) if parts is not None else m(x)
    return dict(flops=fc.get_total_flops(), params=sum(p.numel() for p in m.parameters()))


def time_steps(name, batch, size, backbone, steps, device, threads):
    "Run in a child process: the training-step times and peak memory."
    import torch
    if threads: torch.set_num_threads(threads)
    import torch.nn as nn
    from reid_lit.losses import TripletLoss
    torch.manual_seed(0)
    m = _build(name, backbone).to(device).train()
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    ce, tri = nn.CrossEntropyLoss(), TripletLoss(0.3)
    x, parts = _inputs(name, batch, size, device)
    pids = torch.arange(batch, device=device) // max(batch // 4, 1)       # 4 identities x 8 images, as in §4.2
    sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
    rss0 = (torch.cuda.memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)       # the built model and its input
    if device == "cuda": torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(steps + 1):
        sync(); t = time.perf_counter()
        out = m(x, parts) if parts is not None else m(x)
        loss = ce(out["logits"], pids) + tri(out["feat"], pids)            # eq. (5)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        sync(); times.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return dict(times=times[1:], peak_mb=peak, idle_mb=rss0, threads=torch.get_num_threads())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 128))
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--steps", type=int, default=1, help="timed training steps per model and round (after 1 warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="the models take turns this many times")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each process (0: torch's default)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--no-time", action="store_true", help="only FLOPs and parameters")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    size = tuple(a.size)
    if a._child:                                                          # one model, one process: honest peak memory
        print(json.dumps(time_steps(a._child, a.batch, size, a.backbone, a.steps, a.device, a.threads)))
        return
    if "baseline" not in a.models: a.models = ["baseline"] + a.models
    res = {name: count(name, a.batch, size, a.backbone) for name in a.models}
    for rnd in range(0 if a.no_time else a.rounds):
        for name in a.models:
            cmd = [sys.executable, __file__, "--_child", name, "--batch", str(a.batch), "--size", *map(str, size),
                   "--backbone", a.backbone, "--steps", str(a.steps), "--device", a.device, "--threads", str(a.threads)]
            out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
            r = res[name]
            r["times"] = r.get("times", []) + out["times"]
            r["peak_mb"] = max(r.get("peak_mb", 0.), out["peak_mb"])
            r["step_mb"] = max(r.get("step_mb", 0.), out["peak_mb"] - out["idle_mb"])   # what the step itself added
            r["threads"] = out["threads"]
            r["time"] = statistics.median(r["times"])
            print(f"round {rnd + 1}, {name}: {out}", file=sys.stderr, flush=True)
    base = res["baseline"]
    print(f"batch {a.batch} at {size[0]}x{size[1]}, backbone {a.backbone}, device {a.device}"
          + ("" if a.no_time else f", {base['threads']} thread(s) per process, median of {a.rounds} x {a.steps} training steps"))
    hdr = f"{'model':<13}{'GFLOPs':>9}{'GMACs':>8}{'x':>7}{'paper G':>9}{'x':>7}{'params M':>10}{'x':>7}"
    if not a.no_time: hdr += f"{'step s':>9}{'x':>7}{'paper ms':>10}{'x':>7}{'peak MB':>9}{'x':>7}{'step MB':>9}{'x':>7}{'paper MB':>10}{'x':>7}"
    print(hdr)
    pb = PAPER["baseline"]
    for name, r in res.items():
        p = PAPER.get(MODELS[name][0] if name != "nonlocal_sub" else "-", None)
        ratio = lambda k: r[k] / base[k]
        pr = lambda k: f"{p[k] / pb[k]:7.3f}" if p else f"{'':>7}"
        pv = lambda k, fmt: format(p[k], fmt) if p else ""
        line = (f"{name:<13}{r['flops'] / 1e9:9.2f}{r['flops'] / 2e9:8.2f}{ratio('flops'):7.3f}{pv('flops', '9.2f'):>9}{pr('flops')}"
                f"{r['params'] / 1e6:10.2f}{ratio('params'):7.3f}")
        if not a.no_time:
            line += (f"{r['time']:9.2f}{ratio('time'):7.3f}{pv('time', '10.1f'):>10}{pr('time')}"
                     f"{r['peak_mb']:9.0f}{ratio('peak_mb'):7.3f}{r['step_mb']:9.0f}{ratio('step_mb'):7.3f}{pv('mem', '10.0f'):>10}{pr('mem')}")
        print(line)
    if a.json:
        with open(a.json, "w") as f: json.dump(dict(args=dict(batch=a.batch, size=size, backbone=a.backbone, device=a.device,
                                                                 steps=a.steps), results=res, paper=PAPER), f, indent=1)


if __name__ == "__main__":
    main()
