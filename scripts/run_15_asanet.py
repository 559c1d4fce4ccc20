"""Chapter 15's runs (ASA-Net on synthetic video), written to $REID_LIT_RUNS/15_asanet (default ~/.cache/reid_lit/runs).

    python scripts/run_15_asanet.py main     # the baseline, ASA-Net (a) with and without PMI, the view oracle, seeds 0-2
    python scripts/run_15_asanet.py more     # lambda_PMI 0.1 and 1, fusion (b), Table IV's branches, Table VII (no BCE), seeds 0-2
    python scripts/run_15_asanet.py mask     # ASRE's mask as eq. (9) prints it (no sigmoid), seeds 0-2

Start each job twice, side by side: every run is claimed once (a folder under .claims). The world: the synthetic MARS
layout, 48 training and 48 test identities, 4 cameras, 128 x 64, tracklets of 6-10 frames; the cpu preset with clips of
T = 4 frames, P x K = 8 x 4 tracklets, EPOCHS epochs. A run trains one variant through the engine and writes
`result.json`: tracklet mAP / Rank-1 (MARS protocol), the cross-view scores (each query against the gallery tracklets
seen in another view than its own), the mean cosine distance of same-view and of cross-view true matches, and for
ASA-Net the share of the ASRE masks' mass on the person (exact silhouettes) against the person's share of the frame.
"""
import json, os, sys, time
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F
from reid_lit.core import set_seed
from reid_lit.models import build_model
from reid_lit.data import MARS
from reid_lit.pose import mass_on_person
from reid_lit.synth import default_synth, load_annotations
from reid_lit.train import Trainer, get_preset, rank_gallery, ranking_summary, eval_loader
from reid_lit.asanet import PMIWeightSwitch

RUNS = Path(os.environ.get("REID_LIT_RUNS", "~/.cache/reid_lit/runs")).expanduser() / "15_asanet"
WORLD, SEEDS, EPOCHS = dict(num_train_ids=48, num_test_ids=48, num_cams=4, seed=15), (0, 1, 2), 24
VARIANTS = {"baseline": ("baseline", {}), "ASA (a) no PMI": ("asanet", dict(lam_pmi=0)), "ASA (a) + PMI": ("asanet", {}),
            "ASA (a) + PMI oracle": ("asanet", dict(pmi_select="oracle")),
            "ASA (a) + PMI 0.1": ("asanet", dict(lam_pmi=0.1)), "ASA (a) + PMI 1": ("asanet", dict(lam_pmi=1.0)),
            "ASA (b) + PMI": ("asanet", dict(fusion="b")), "ID only": ("asanet", dict(branches=(), lam_pmi=0)),
            "+ re": ("asanet", dict(branches=("re",), lam_pmi=0)), "+ ir + PMI": ("asanet", dict(branches=("ir",))),
            "ASA (a) + PMI, no BCE": ("asanet", dict(lam_bce=0)), "ASA (a) + PMI, mask without sigmoid": ("asanet", dict(mask_act="none"))}
JOBS = {"main": ["baseline", "ASA (a) no PMI", "ASA (a) + PMI", "ASA (a) + PMI oracle"],
        "more": ["ASA (a) + PMI 0.1", "ASA (a) + PMI 1", "ASA (b) + PMI", "ID only", "+ re", "+ ir + PMI", "ASA (a) + PMI, no BCE"],
        "mask": ["ASA (a) + PMI, mask without sigmoid"]}

def world():
    "The synthetic video world (cached) and its annotations."
    root = default_synth(size=(128, 64), video=True, **WORLD)
    return MARS(root), load_annotations(root)

def tracklet_view(item, ann): return int(np.bincount([ann[os.path.basename(f)]["view"] for f in item.frames]).argmax())

def cross_view_scores(qf, gf, query, gallery, ann):
    "Ranking of each query against the gallery tracklets of other views, and the mean cosine distance of same- and cross-view true matches."
    qv, gv = [tracklet_view(t, ann) for t in query], [tracklet_view(t, ann) for t in gallery]
    qn, gn = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
    d = 1 - qn @ gn.T
    same, cross = [], []
    for i, q in enumerate(query):
        for j, g in enumerate(gallery):
            if g.pid == q.pid and g.camid != q.camid: (same if gv[j] == qv[i] else cross).append(float(d[i, j]))
    rows = {}
    keep_q = []
    for v in range(4):
        gi = [j for j in range(len(gallery)) if gv[j] != v]
        qi = [i for i in range(len(query)) if qv[i] == v]
        if not qi or not gi: continue
        keep_q.append((qi, gi))
    # one ranking per query over the gallery of other views: score them together by masking same-view gallery items as junk
    aps, r1 = [], []
    for qi, gi in keep_q:
        res = rank_gallery(qf[qi], gf[gi], [query[i] for i in qi], [gallery[j] for j in gi], "cosine")
        s = ranking_summary(res); n = len(qi)
        aps.append((s["mAP"], n)); r1.append((s["rank1"], n))
    tot = sum(n for _, n in aps)
    rows["cross_view_mAP"] = sum(a * n for a, n in aps) / tot
    rows["cross_view_rank1"] = sum(a * n for a, n in r1) / tot
    rows["d_same_view"], rows["d_cross_view"] = float(np.mean(same)) if same else None, float(np.mean(cross)) if cross else None
    return rows

@torch.no_grad()
def mask_mass(model, data, ann, cfg, n=64):
    "Share of the ASRE masks' mass on the person (silhouettes of the frames) and the person's share of the frame, over n test tracklets."
    out = {}
    model.eval()
    for b in eval_loader(list(data.query)[:n], cfg, ann):
        clips = b["img"][0]                                                        # (S, T, 3, H, W)
        r = model.readout(clips)
        sil = (b["parts"][0].flatten(0, 1) > 0)                                   # (S*T, H, W)
        for br in model.branches:
            m = r[f"{br}_mask"].flatten(0, 1)[:, None]                             # (S*T, 1, h, w)
            out.setdefault(br, []).append(mass_on_person(m, sil.long()).mean().item())
        out.setdefault("area", []).append(sil.float().mean().item())
    return {k: float(np.mean(v)) for k, v in out.items()}

def run(label, seed, W=None):
    out = RUNS / f"{label.replace(' ', '_').replace('+', 'p').replace('(', '').replace(')', '').replace(',', '')}-seed{seed}"
    f = out / "result.json"
    if f.exists(): return json.loads(f.read_text())
    data, ann = W or world()
    name, kw = VARIANTS[label]
    cfg = get_preset("cpu", model=name, model_kwargs=kw, seed=seed, seq_len=4, epochs=EPOCHS, eval_every=EPOCHS // 2)
    set_seed(seed)
    model = build_model(name, data.num_train_pids, backbone=cfg.backbone, **kw)
    losses = model.training_losses(cfg) if hasattr(model, "training_losses") else None
    if losses is None:
        from reid_lit.train import baseline_losses
        losses = baseline_losses(data.num_train_pids, cfg.margin, cfg.epsilon)
    hooks = [PMIWeightSwitch()] if name == "asanet" and kw.get("lam_pmi", 0.005) == 0.005 and "pmi" in losses else []
    t0 = time.time()
    tr = Trainer(model, losses, data, cfg, out_dir=out, resume=(out / "last.pt").exists(), hooks=hooks, progress=False, verbose=False)
    hist = tr.fit()
    qf, gf = tr.features()
    res = dict(label=label, seed=seed, model=name, kwargs=kw, epochs=EPOCHS, history=hist, scores={k: hist[-1][k] for k in ("mAP", "rank1", "mINP")},
               wall_s=time.time() - t0, load=os.getloadavg()[0],
               pmi_switched_at=hooks[0].switched_at if hooks else None, **cross_view_scores(qf.cpu(), gf.cpu(), data.query, data.gallery, ann))
    if name == "asanet" and model.branches and kw.get("mask_act", "sigmoid") == "sigmoid": res["mask_mass"] = mask_mass(model, data, ann, cfg)   # a signed mask has no mass
    tmp = f.with_suffix(".tmp"); tmp.write_text(json.dumps(res, indent=1)); tmp.replace(f)
    return res

if __name__ == "__main__":
    claims = RUNS / ".claims"; claims.mkdir(parents=True, exist_ok=True)
    W = world()
    for seed in SEEDS:
        for label in JOBS[sys.argv[1]]:
            try: (claims / f"{label}-{seed}").mkdir()
            except FileExistsError: continue
            t = time.time(); r = run(label, seed, W)
            print("done", label, seed, round(time.time() - t), round(100 * r["scores"]["mAP"], 1), round(100 * r["cross_view_mAP"], 1), os.getloadavg(), flush=True)
