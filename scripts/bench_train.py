"""Training throughput of the reid_lit engine, in images per second.

1. The model step — `Trainer.train_step` (forward under the engine's autocast, CE + batch-hard triplet in fp32,
   backward, Adam, scheduler) of the baseline on batches already on the device — in configurations
   fp32 eager / + bf16 autocast / + channels_last / + torch.compile. Each is printed with its ratio to fp32
   eager measured in the same run.
2. The data pipeline alone — JPEG decoding, the training transforms (resize, flip, pad+crop, normalise, random
   erasing), PK batching, collation and (on CUDA) pinned-memory transfer — with the engine's DataLoader
   settings, on a synthetic dataset drawn at the benchmark's size; with and without the body annotations
   (keypoints + part maps) that geometry models need.

Defaults: on CUDA the paper's setting — ResNet-50 at 256x128, batch 64 = 16x4, 50 timed steps; on CPU a small
configuration (resnet18_w32 at 128x64, batch 32 = 8x4, 3 steps) so that it finishes in a minute or two.

Usage:  python scripts/bench_train.py [--device cuda] [--backbone resnet50] [--size 256x128] [--p 16] [--k 4]
                                      [--steps 50] [--warmup 10] [--workers 8] [--no-compile] [--data-batches 100]
This script is never run by CI; it prints figures and asserts nothing about speed.
"""
import argparse, os, sys, tempfile, time
from pathlib import Path


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default=None, help='cpu or cuda (default: cuda when available)')
    ap.add_argument('--backbone', default=None, help='default: resnet50 on CUDA, resnet18_w32 on CPU')
    ap.add_argument('--size', default=None, help='HxW; default: 256x128 on CUDA, 128x64 on CPU')
    ap.add_argument('--p', type=int, default=None, help='identities per batch (default 16 on CUDA, 8 on CPU)')
    ap.add_argument('--k', type=int, default=4, help='images per identity')
    ap.add_argument('--steps', type=int, default=None, help='timed steps per configuration (default 50 CUDA, 3 CPU)')
    ap.add_argument('--warmup', type=int, default=None, help='untimed steps first (default 10 CUDA / 25 with compile, 1 CPU)')
    ap.add_argument('--workers', type=int, default=None, help='DataLoader workers for the data benchmark (default: all cores, max 16)')
    ap.add_argument('--data-batches', type=int, default=None, help='batches timed in the data benchmark (default 100 CUDA, 10 CPU)')
    ap.add_argument('--no-compile', action='store_true', help='skip the torch.compile configuration')
    ap.add_argument('--ids', type=int, default=None, help='identities of the synthetic dataset (default 64 CUDA, 24 CPU)')
    ap.add_argument('--threads', type=int, default=None, help='CPU only: intra-op threads (default 1, as the cpu preset)')
    return ap.parse_args()


def sync(dev):
    import torch
    if dev.type == 'cuda': torch.cuda.synchronize(dev)


def model_step_images_per_s(data, dev, backbone, size, p, k, steps, warmup, amp, channels_last, compile, threads=None):
    "Images/s of Trainer.train_step on random batches already on the device."
    import torch
    from reid_lit.core import set_seed
    from reid_lit.baseline import build_model
    from reid_lit.train import Trainer, baseline_losses, get_preset
    cfg = get_preset('paper', backbone=backbone, size=size, p=p, k=k, amp=amp, channels_last=channels_last, compile=compile,
                     workers=0, persistent_workers=False, threads=threads)
    set_seed(0)
    model = build_model('baseline', data.num_train_pids, backbone=backbone)
    tr = Trainer(model, baseline_losses(data.num_train_pids), data, cfg, device=dev, annotations=None, progress=False, verbose=False)
    tr.net.train()
    b = p * k
    batch = {'img': torch.randn(b, 3, *size, device=dev), 'pid': torch.arange(p, device=dev).repeat_interleave(k) % data.num_train_pids}
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(dev)
    for _ in range(warmup): tr.train_step(batch)
    sync(dev); t0 = time.perf_counter()
    for _ in range(steps): loss, _ = tr.train_step(batch)
    loss.item(); sync(dev)
    el = time.perf_counter() - t0
    mem = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == 'cuda' else float('nan')
    return b * steps / el, mem


def data_images_per_s(data, dev, size, p, k, workers, batches, annotations):
    "Images/s of the training DataLoader alone (decode + augment + PK batching + collate + pinned transfer)."
    import torch
    from torch.utils.data import DataLoader
    from reid_lit.data import ImageDataset, PKSampler, build_transforms
    from reid_lit.train import to_device
    ds = ImageDataset(data.train, build_transforms(size, train=True), annotations=annotations)
    sampler = PKSampler([it.pid for it in data.train], p, k, seed=0)
    kw = dict(num_workers=workers, pin_memory=dev.type == 'cuda')
    if workers: kw.update(persistent_workers=True, prefetch_factor=4)
    dl = DataLoader(ds, batch_sampler=sampler, **kw)
    n, seen, t0, epoch = 0, 0, None, 0
    while n < batches + 2:
        sampler.set_epoch(epoch); epoch += 1
        for batch in dl:
            batch = to_device(batch, dev)
            n += 1
            if n == 2: sync(dev); t0 = time.perf_counter()          # skip worker start-up
            elif n > 2: seen += len(batch['pid'])
            if n >= batches + 2: break
    sync(dev)
    return seen / (time.perf_counter() - t0)


def main():
    args = parse()
    import torch
    from reid_lit.core import default_device
    from reid_lit.data import build_dataset
    from reid_lit.train import parse_size, find_annotations
    dev = default_device(args.device)
    cuda = dev.type == 'cuda'
    backbone = args.backbone or ('resnet50' if cuda else 'resnet18_w32')
    size = parse_size(args.size) if args.size else ((256, 128) if cuda else (128, 64))
    p = args.p or (16 if cuda else 8)
    k = args.k
    steps = args.steps or (50 if cuda else 3)
    workers = args.workers if args.workers is not None else min(os.cpu_count() or 1, 16)
    batches = args.data_batches or (100 if cuda else 10)
    ids = args.ids or (64 if cuda else 24)
    threads = None if cuda else (args.threads or 1)
    if threads: torch.set_num_threads(threads)
    name = torch.cuda.get_device_name(dev) if cuda else f"CPU ({os.cpu_count()} cores), {threads} intra-op thread(s)"
    print(f"torch {torch.__version__} on {name}; baseline/{backbone} at {size[0]}x{size[1]}, batch {p * k} = {p}x{k}")

    from reid_lit.synth import make_synth_reid
    root = Path(tempfile.mkdtemp(prefix='bench_train_')) / 'synth'
    t0 = time.perf_counter()
    make_synth_reid(root, num_train_ids=ids, num_test_ids=max(4, ids // 8), size=size, seed=0)
    data = build_dataset(root)
    print(f"synthetic dataset for the data benchmark: {len(data.train)} training images of {data.num_train_pids} ids at "
          f"{size[0]}x{size[1]} (drawn in {time.perf_counter() - t0:.0f} s)")

    print(f"\n1. model step (Trainer.train_step, random batches on {dev.type}), {steps} timed steps")
    configs = [('fp32, eager', dict(amp=False, channels_last=False, compile=False))]
    if cuda: configs.append(('bf16 autocast', dict(amp=True, channels_last=False, compile=False)))
    configs.append(('%s + channels_last' % ('bf16' if cuda else 'fp32'), dict(amp=cuda, channels_last=True, compile=False)))
    if not args.no_compile:
        configs.append(('%s + channels_last + compile' % ('bf16' if cuda else 'fp32'), dict(amp=cuda, channels_last=True, compile=True)))
    ref = None
    for label, c in configs:
        warm = args.warmup if args.warmup is not None else ((25 if c['compile'] else 10) if cuda else (2 if c['compile'] else 1))
        try:
            ips, mem = model_step_images_per_s(data, dev, backbone, size, p, k, steps, warm, threads=threads, **c)
        except Exception as e:                                     # e.g. no C++ compiler for inductor on this machine
            print(f"  {label:<34} failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            continue
        ref = ref or ips
        m = f"  peak {mem:5.1f} GiB" if cuda else ''
        print(f"  {label:<34} {ips:9.1f} images/s   x{ips / ref:5.2f} vs fp32 eager{m}", flush=True)

    print(f"\n2. data pipeline alone (decode + train transforms + PK batches + collate{' + pinned copy to GPU' if cuda else ''}), "
          f"{workers} workers, {batches} batches")
    ann = find_annotations(data)
    for label, a in (('images only', None), ('images + keypoints + part maps', ann)):
        if label != 'images only' and a is None: continue
        ips = data_images_per_s(data, dev, size, p, k, workers, batches, a)
        print(f"  {label:<34} {ips:9.1f} images/s", flush=True)
    print("\nThe data pipeline keeps up when its images/s exceed the model step's.")


if __name__ == '__main__':
    main()
