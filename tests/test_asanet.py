"""ASA-Net outside the notebook: it trains through the engine on synthetic clips (CLI), resumes exactly, round-trips its
state dict, refuses images, and its PMI term is live once an identity has three clips in the batch."""
import pytest
import torch

from reid_lit.models import build_model                                    # registers every chapter's models
from reid_lit.core import set_seed
from reid_lit.data import MARS
from reid_lit.synth import make_synth_reid
from reid_lit.train import Trainer, UsageError, compute_losses, get_preset, train_reid

TINY = dict(backbone='resnet18_w8', size=(32, 16), p=2, k=3, seq_len=3, epochs=2, eval_every=1, workers=0, log_every=1)


@pytest.fixture(scope='module')
def vid(tmp_path_factory):
    return make_synth_reid(tmp_path_factory.mktemp('asa') / 'vid', num_train_ids=5, num_test_ids=4, num_cams=3, size=(32, 16),
                           video=True, tracklet_len=(3, 6), seed=2)


def make(data, out=None, resume=False):
    cfg = get_preset('cpu', model='asanet', **TINY)
    set_seed(0)
    m = build_model('asanet', data.num_train_pids, backbone=cfg.backbone)
    return Trainer(m, m.training_losses(cfg), data, cfg, out_dir=out, resume=resume, progress=False, verbose=False)


def test_trains_with_every_term_and_resumes_exactly(vid, tmp_path):
    data = MARS(vid)
    full = make(data, tmp_path / 'full').fit()
    assert {'loss_ce', 'loss_wrt', 'loss_center', 'loss_bce_re', 'loss_bce_ir', 'loss_pmi'} <= set(full[-1])
    make(data, tmp_path / 'cut').fit(until=1)
    hist = make(data, tmp_path / 'cut', resume=True).fit()
    for a, b in zip(full[1:], hist[1:]):
        assert abs(a['loss'] - b['loss']) <= 1e-6 and abs(a['mAP'] - b['mAP']) <= 1e-6


def test_pmi_is_live_with_three_clips_per_identity(vid):
    data = MARS(vid)
    tr = make(data)
    b = next(iter(tr.train_dl))
    net = tr.model.train()
    _, values = compute_losses(net(b['img']), b, tr.terms)
    assert values['pmi'] >= 0 and b['pose_motion'].shape == (6, 8)
    assert torch.allclose(b['pose_motion'][:, :4].sum(1), torch.ones(6)) and torch.allclose(b['pose_motion'][:, 4:].sum(1), torch.ones(6))


def test_cli_and_bad_input(vid, tmp_path):
    r = train_reid(dataset='synth_video', root=str(vid), model='asanet', backbone='resnet18_w8', size='32x16', p=2, k=3, seq_len=3,
                   epochs=1, workers=0, progress=False, out=str(tmp_path / 'run'))
    assert 0 <= r['trained']['mAP'] <= 1
    with pytest.raises(UsageError, match='is a video model'):
        train_reid(dataset=str(vid), model='asanet', backbone='resnet18_w8', size='32x16', epochs=1, workers=0, progress=False,
                   out=str(tmp_path / 'img'))
    m = build_model('asanet', 3, backbone='resnet18_w8').eval()
    with pytest.raises(ValueError, match='ASANet is a video model'): m(torch.randn(2, 3, 32, 16))
    m2 = build_model('asanet', 3, backbone='resnet18_w8').eval()
    m2.load_state_dict(m.state_dict())
    x = torch.randn(2, 3, 3, 32, 16)
    torch.testing.assert_close(m(x), m2(x))
