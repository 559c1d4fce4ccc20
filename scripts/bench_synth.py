"""Benchmark of the synthetic re-ID world (reid_lit.synth): how many boxes per second it draws.

Prints, for this machine and this run:
- drawing alone (`render_image`, no files) at 128x64 and 256x128, wall and CPU images/s;
- the reference: encoding and writing a JPEG of the same size (the floor any generator pays per image),
  and the ratio drawing / reference;
- the whole default dataset (`make_synth_reid` with the `default_synth` arguments at 128x64) with one and
  with two processes: seconds, images/s, and the speed-up of two processes over one.

Usage: python scripts/bench_synth.py [--quick]   (--quick: fewer images, a 100+100-identity dataset)
Never run by CI. Other jobs on the machine slow the wall-clock figures; CPU figures are less affected.
"""
import argparse, os, resource, shutil, sys, tempfile, time
from pathlib import Path

import numpy as np
from PIL import Image

from reid_lit.synth import (DEFAULT_SYNTH, camera_styles, make_synth_reid, render_background, render_image, sample_identity,
                            synth_info)


def cpu_s(children=False):
    r = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bench_render(size, n):
    "Images/s of render_image alone (wall, CPU) for n boxes of `size` through the 6 cameras of domain A."
    styles = camera_styles("A", 6)
    bgs = [render_background(s, size) for s in styles]
    people = [sample_identity(np.random.default_rng([0, i])) for i in range(50)]
    t, c = time.perf_counter(), cpu_s()
    for i in range(n):
        rng = np.random.default_rng([1, i])
        render_image(people[i % 50], i % 4, (i * .37) % 1, styles[i % 6], rng, size, bgs[i % 6])
    return n / (time.perf_counter() - t), n / (cpu_s() - c)


def bench_jpeg(size, n, folder):
    "Images/s of encoding + writing a noisy JPEG of `size` (the per-file floor)."
    img = (np.random.default_rng(0).random((*size, 3)) * 255).astype(np.uint8)
    t = time.perf_counter()
    for i in range(n): Image.fromarray(img).save(folder / f"{i}.jpg", quality=90, subsampling=0)
    return n / (time.perf_counter() - t)


def bench_dataset(root, workers, **kw):
    t, c, cc = time.perf_counter(), cpu_s(), cpu_s(children=True)
    make_synth_reid(root, workers=workers, **kw)
    wall = time.perf_counter() - t
    cpu = (cpu_s() - c) + (cpu_s(children=True) - cc)
    cnt = synth_info(root)["counts"]
    n = sum(cnt[k]["images"] for k in ("bounding_box_train", "query", "bounding_box_test"))
    return wall, cpu, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and a 100+100-identity dataset")
    a = ap.parse_args()
    n = 300 if a.quick else 1500
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other jobs slow the wall-clock figures)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        print("\ndrawing alone (render_image, no files)")
        print(f"{'size':>10} {'img/s wall':>11} {'img/s CPU':>10} {'JPEG write img/s':>17} {'draw/JPEG time':>15}")
        for size in ((128, 64), (256, 128)):
            wall, cpu = bench_render(size, n)
            (tmp / "j").mkdir(exist_ok=True)
            jpg = bench_jpeg(size, n, tmp / "j")
            print(f"{size[0]:>5}x{size[1]:<4} {wall:>11.0f} {cpu:>10.0f} {jpg:>17.0f} {jpg / wall:>14.1f}x")
        kw = dict(DEFAULT_SYNTH, size=(128, 64))
        if a.quick: kw.update(num_train_ids=100, num_test_ids=100)
        print(f"\nwhole dataset: make_synth_reid({', '.join(f'{k}={v}' for k, v in kw.items())})")
        res = {}
        for w in (1, 2):
            wall, cpu, imgs = bench_dataset(tmp / f"w{w}", w, **kw)
            res[w] = wall
            print(f"workers={w}: {imgs} images in {wall:.1f} s wall ({imgs / wall:.0f} img/s), {cpu:.1f} s CPU ({imgs / cpu:.0f} img/s per CPU)")
        same = all((tmp / "w1" / f).read_bytes() == (tmp / "w2" / f).read_bytes() for f in ("annotations.npz", "synth.json"))
        print(f"speed-up of 2 workers over 1: {res[1] / res[2]:.2f}x; identical outputs: {same}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
