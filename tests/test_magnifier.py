"""MagnifierNet outside the notebook: it trains a couple of iterations through reid_lit.train.Trainer on a miniature
synthetic set with its own loss dict (mask loss reads batch['parts']), both stages run, and state dicts round-trip."""
from pathlib import Path

import torch

from reid_lit.baseline import build_model
from reid_lit.core import set_seed
from reid_lit.data import Market1501
from reid_lit.magnifier import MagnifierNet, fit_two_stages
from reid_lit.synth import make_synth_reid
from reid_lit.train import get_preset

TINY = dict(backbone='resnet18_w8', size=(64, 32), p=4, k=2, epochs=1, eval_every=1, workers=0, log_every=1)


def test_trains_two_stages_through_trainer(tmp_path):
    root = make_synth_reid(tmp_path / 'ds', num_train_ids=6, num_test_ids=4, num_cams=3, size=(64, 32), seed=1)
    data = Market1501(root)
    cfg = get_preset('cpu', model='magnifiernet', **TINY)
    set_seed(0)
    model = build_model('magnifiernet', data.num_train_pids, backbone=cfg.backbone)
    assert isinstance(model, MagnifierNet)
    t1, t2 = fit_two_stages(model, data, cfg, stage2_epochs=1, out_dir=tmp_path / 'run', progress=False, verbose=False)
    assert 'loss_mask' in t1.history[-1] and 'loss_sd' not in t1.history[-1]
    assert 'loss_sd' in t2.history[-1] and torch.isfinite(torch.tensor(t2.history[-1]['loss']))
    assert 0 <= t2.history[-1]['mAP'] <= 1
    assert (tmp_path / 'run' / 'stage1' / 'last.pt').exists() and (tmp_path / 'run' / 'stage2-sd' / 'last.pt').exists()


def test_state_dict_round_trip(tmp_path):
    set_seed(0)
    m = build_model('magnifiernet', 5, backbone='resnet18_w8').train()
    m(torch.randn(4, 3, 64, 32), torch.randint(0, 8, (4, 64, 32)))
    torch.save(m.state_dict(), tmp_path / 'm.pt')
    m2 = build_model('magnifiernet', 5, backbone='resnet18_w8')
    m2.load_state_dict(torch.load(tmp_path / 'm.pt', weights_only=True))
    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(m.eval()(x), m2.eval()(x))


def test_cli_trains_on_real_layout_with_label_maps(tmp_path):
    """`reid_lit_train --model magnifiernet --label_maps DIR` on a dataset without the synthetic world's annotations: the maps are
    one PNG per image (here written from the synthetic truth, as a parser would); without them the run stops before training, naming
    --label_maps."""
    import os, shutil
    import pytest
    from reid_lit.magnifier import write_label_map
    from reid_lit.synth import load_annotations
    from reid_lit.train import UsageError, train_reid
    root = make_synth_reid(tmp_path / 'ds', num_train_ids=6, num_test_ids=4, num_cams=3, size=(64, 32), seed=1)
    real = Path(shutil.copytree(root, tmp_path / 'real', ignore=shutil.ignore_patterns('*.json', '*.npz')))
    ann, maps = load_annotations(root), tmp_path / 'real_parsing'
    maps.mkdir()
    for name in os.listdir(real / 'bounding_box_train') + os.listdir(real / 'bounding_box_test') + os.listdir(real / 'query'):
        if name.endswith('.jpg'): write_label_map(maps / (Path(name).stem + '.png'), ann[name]['parts'])
    kw = dict(dataset=str(real), model='magnifiernet', backbone='resnet18_w8', size='64x32', p=4, k=2, epochs=1, workers=0, progress=False)
    with pytest.raises(UsageError, match='--label_maps'): train_reid(**kw, out=str(tmp_path / 'r0'))
    with pytest.raises(UsageError, match='label map folder'): train_reid(**kw, out=str(tmp_path / 'r1'), label_maps=str(tmp_path / 'nowhere'))
    r = train_reid(**kw, out=str(tmp_path / 'r2'), label_maps=str(maps))
    assert 0 <= r['trained']['mAP'] <= 1 and 'loss_mask' in r['history'][-1]
