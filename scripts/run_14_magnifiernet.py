"""Chapter 14's runs (MagnifierNet's Table 2, Fig. 4 and Fig. 5 on synthetic data), written to $REID_LIT_RUNS/14_magnifiernet
(default ~/.cache/reid_lit/runs).

    python scripts/run_14_magnifiernet.py table2   # Table 2's ladder, SFB as AB, SAB random-baseline and split layer3, seeds 0-2,
                                                    # then stage 2 with and without L_SD; start it twice, side by side
    python scripts/run_14_magnifiernet.py long     # the ladder again with 4x the epochs (48), seeds 0-4, and its stage 2 (4 epochs)
    python scripts/run_14_magnifiernet.py fig5     # K-hat 2 and 6 for both sampling strategies, seeds 0-2
    python scripts/run_14_magnifiernet.py fig5long # Fig. 4, Fig. 5 and the split again with 48 epochs, seeds 0-2
    python scripts/run_14_magnifiernet.py gamma    # stage 2 with L_SD at 100x and 1000x the paper's gamma (0.2, 2), both budgets

The world: 48 training and 48 test identities, 4 cameras of domain A at 128 x 64, drawn twice — clean, and with an occluder in
front of every query (`occluded_queries=1`; the same training set and gallery). A run trains one variant through the engine
(`fit_two_stages`, cpu preset), evaluates it on the clean and the occluded queries against the same gallery, records the mask
module's parsing IoU, and writes `result-<stage>.json` in its folder; a finished run is skipped, a stage whose `last.pt` exists
is loaded. Each job is claimed once (a folder under .claims): delete the claim of an interrupted job to let a queue take it.
"""
import json, os, shutil, sys, time
from pathlib import Path
import torch
import torch.nn.functional as F
from reid_lit.core import set_seed
from reid_lit.baseline import build_model
from reid_lit.synth import default_synth, load_annotations
from reid_lit.data import Market1501
from reid_lit.train import get_preset, eval_loader, extract_features, rank_gallery, ranking_summary
from reid_lit.magnifier import NUM_LABELS, confusion_matrix, iou_from_confusion, fit_two_stages

RUNS = Path(os.environ.get("REID_LIT_RUNS", "~/.cache/reid_lit/runs")).expanduser() / "14_magnifiernet"
WORLD, SIZE = dict(num_train_ids=48, num_test_ids=48, num_cams=4, seed=14), (128, 64)
SEEDS, STAGE2_EPOCHS, LONG_EPOCHS = (0, 1, 2), 2, 48
VARIANTS = {"G": dict(mask=False, sab=False, sfb=False), "+M": dict(sab=False, sfb=False), "+M+SAB": dict(sfb=False),
            "+M+SFB": dict(sab=False), "+M+SAB+SFB": dict(), "SAB random-baseline": dict(strategy="random_baseline"),
            "SFB as AB": dict(fusion="ab"), "split layer3": dict(split="layer3"),
            **{f"K{k} {s}": dict(strategy=f"random_{s}", keep=k) for k in (2, 6) for s in ("torso", "baseline")}}

def worlds(world=None, size=None):
    "The clean and the occluded-query synthetic worlds: (data, occluded data, annotations, occluded annotations)."
    world, size = world or WORLD, size or SIZE
    clean, occ = default_synth(size=size, **world), default_synth(size=size, **world, occluded_queries=1.)
    return Market1501(clean), Market1501(occ), load_annotations(clean), load_annotations(occ)

def features_of(model, items, cfg, annotations):
    "(N, D) eval features of `items` (test pipeline, in order)."
    f, idx = extract_features(model, eval_loader(items, cfg, annotations), torch.device("cpu"), amp=False, channels_last=cfg.channels_last)
    return f[idx.argsort()]

def scores(model, cfg, W):
    "mAP / CMC on the clean and on the occluded queries, against the same gallery."
    data, occ, ann, ann_occ = W
    gf = features_of(model, data.gallery, cfg, ann)
    return {name: ranking_summary(rank_gallery(features_of(model, q, cfg, a), gf, q, data.gallery, cfg.metric))
            for name, q, a in (("clean", data.query, ann), ("occluded", occ.query, ann_occ))}

@torch.no_grad()
def parsing_miou(model, items, cfg, annotations):
    "Per-class IoU of the mask module's argmax (logits upsampled to the image) on `items`."
    model.eval(); conf = torch.zeros(NUM_LABELS, NUM_LABELS, dtype=torch.long)
    for b in eval_loader(items, cfg, annotations):
        up = F.interpolate(model.segment(b["img"]), b["parts"].shape[-2:], mode="bilinear", align_corners=False)
        conf += confusion_matrix(up.argmax(1), b["parts"])
    return iou_from_confusion(conf).tolist()

def run_dir(label, seed): return RUNS / f"{label.replace(' ', '_').replace('+', 'p')}-seed{seed}"

def run_magnifier(label, seed, stage2=None, W=None):
    "Train (or load) one variant and seed; stage2 None, 'sd', 'nosd' or 'sd-g<gamma>'. Returns the result dict (cached as json)."
    base, long = (label[:-5], True) if label.endswith(" long") else (label, False)   # "<variant> long": 4x the epochs
    kw = VARIANTS.get(base, VARIANTS["+M+SAB+SFB"])
    out = run_dir(label, seed)
    res_file = out / f"result-{stage2 or 'stage1'}.json"
    if res_file.exists(): return json.loads(res_file.read_text())
    W = W or worlds(); data, ann = W[0], W[2]
    cfg = get_preset("cpu", model="magnifiernet", model_kwargs=kw, seed=seed, **(dict(epochs=LONG_EPOCHS) if long else {}))
    set_seed(seed)
    model = build_model("magnifiernet", data.num_train_pids, backbone=cfg.backbone, **kw)
    t0 = time.time()
    fit_dir = out
    if stage2 and stage2.startswith("sd-g"):                                       # L_SD with another gamma: its own folder, stage 1 copied
        model.gamma, fit_dir = float(stage2[4:]), out / stage2
        if not (fit_dir / "stage1" / "last.pt").exists(): shutil.copytree(out / "stage1", fit_dir / "stage1", dirs_exist_ok=True)
    t1, t2 = fit_two_stages(model, data, cfg, (STAGE2_EPOCHS * (2 if long else 1)) if stage2 else 0, sd=stage2 is not None and stage2.startswith("sd"),
                            out_dir=fit_dir, progress=False, verbose=False)
    tr = t2 or t1
    res = dict(label=label, seed=seed, stage2=stage2, kwargs=kw, scores=scores(model, cfg, W), final_loss=tr.history[-1]["loss"],
               history=[{k: v for k, v in h.items()} for h in t1.history + (t2.history if t2 else [])],
               train_s=sum(r.get("time_s", 0) for r in t1.history + (t2.history if t2 else [])), wall_s=time.time() - t0,
               load=os.getloadavg()[0])
    if model.use_mask: res["iou"] = parsing_miou(model, data.query + data.gallery, cfg, ann)
    res["epochs"] = cfg.epochs
    if base == "+M+SAB+SFB" and stage2 is None:                                   # the test-time choices, on the same weights
        for attr, val in (("descriptor", "pre"), ("test_masks", "argmax"), ("test_masks", "given")):
            old = getattr(model, attr); setattr(model, attr, val)
            res[f"{attr}={val}"] = scores(model, cfg, W); setattr(model, attr, old)
    tmp = res_file.with_suffix(".tmp"); tmp.write_text(json.dumps(res, indent=1)); tmp.replace(res_file)   # atomic
    return res

JOBS = {"table2": [(v, s, None) for s in SEEDS for v in ("G", "+M", "+M+SAB", "+M+SFB", "+M+SAB+SFB")]
                  + [(v, s, None) for s in SEEDS for v in ("SAB random-baseline", "SFB as AB", "split layer3")]
                  + [("+M+SAB+SFB", s, st) for s in SEEDS for st in ("sd", "nosd")],
        "long": [(f"{v} long", s, None) for s in SEEDS for v in ("G", "+M+SAB+SFB", "+M+SFB", "+M+SAB", "+M")]
                + [("+M+SAB+SFB long", s, st) for s in SEEDS for st in ("sd", "nosd")]
                + [(f"{v} long", s, None) for s in (3, 4) for v in ("G", "+M+SAB+SFB", "+M+SFB", "+M+SAB", "+M")],
        "fig5": [(f"K{k} {st}", s, None) for s in SEEDS for k in (2, 6) for st in ("torso", "baseline")],
        "gamma": [(lab, s, f"sd-g{g}") for lab in ("+M+SAB+SFB", "+M+SAB+SFB long") for s in SEEDS for g in (0.2, 2)],
        "fig5long": [(f"{v} long", s, None) for s in SEEDS for v in ("SAB random-baseline", "SFB as AB", "split layer3",
                                                                     "K2 torso", "K2 baseline", "K6 torso", "K6 baseline")]}

if __name__ == "__main__":
    claims = RUNS / ".claims"; claims.mkdir(parents=True, exist_ok=True)
    W = worlds()                                                                    # drawn once (atomically) before any run
    for label, seed, st in JOBS[sys.argv[1]]:
        try: (claims / f"{run_dir(label, seed).name}-{st or 'stage1'}").mkdir()    # atomic: the other queue skips this job
        except FileExistsError: continue
        while st and not (run_dir(label, seed) / "result-stage1.json").exists(): time.sleep(30)   # stage 2 continues stage 1
        t = time.time(); r = run_magnifier(label, seed, st, W)
        print("done", label, seed, st, round(time.time() - t), round(100 * r["scores"]["clean"]["mAP"], 1), os.getloadavg(), flush=True)
