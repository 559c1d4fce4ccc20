"""The AFF chapter outside the notebook: registry and state-dict round trip, descriptors, gradients of the
supervised objective, the balance term's shape, the parameter count of Table 8's closest convention."""
import math
import pytest
import torch

from reid_lit.baseline import build_model, list_models
from reid_lit.core import set_seed
from reid_lit.aff import AFFNet, CBAM, SEBlock, balanced_l1, balance_loss, info_nce


def test_registered_and_round_trip(tmp_path):
    assert 'aff' in list_models()
    set_seed(0)
    m = build_model('aff', 5, backbone='resnet18_w8', descriptor='local').train()
    assert isinstance(m, AFFNet)
    m(torch.randn(4, 3, 64, 32))                                          # move the BN statistics
    torch.save(m.state_dict(), tmp_path / 'm.pt')
    m2 = build_model('aff', 5, backbone='resnet18_w8', descriptor='local')
    m2.load_state_dict(torch.load(tmp_path / 'm.pt', weights_only=True))
    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(m.eval()(x), m2.eval()(x))


@pytest.mark.parametrize('d, dim', [('global', 64), ('local', 64), ('both', 128)])
def test_descriptors(d, dim):
    m = build_model('aff', 3, backbone='resnet18_w8', descriptor=d, se_reduction=4, reduction=4).eval()
    assert m(torch.randn(2, 3, 64, 32)).shape == (2, dim)


def test_bad_arguments():
    with pytest.raises(ValueError, match='kernel_size must be odd'): CBAM(16, 4, kernel_size=4)
    with pytest.raises(ValueError, match='not divisible by reduction'): SEBlock(10, 4)
    with pytest.raises(ValueError, match='descriptor must be one of'): build_model('aff', 3, descriptor='x')


def test_balance_term():
    b = math.exp(1.5 / 0.9) - 1
    assert balanced_l1(torch.zeros(1)).item() == 0
    x = torch.tensor([1 - 1e-6, 1 + 1e-6], dtype=torch.float64, requires_grad=True)
    v = balanced_l1(x); g, = torch.autograd.grad(v.sum(), x)
    assert abs(v[0] - v[1]) < 1e-5 and abs(g[0] - g[1]) < 1e-5
    q = torch.randn(4, 8, requires_grad=True)
    c, h = torch.nn.functional.normalize(torch.randn(3, 8), dim=1), torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    y = torch.tensor([0, 1, 2, 0])
    loss = 0.75 * info_nce(q, h, y) + 0.25 * info_nce(q, c, y) + balance_loss(q, c, h, y)
    loss.backward()
    assert q.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='same shape'): balance_loss(q, c, h[:2], y)


def test_table8_parameters():
    with torch.device('meta'): m = build_model('aff', 751, reduction=4, se_reduction=4)
    n = sum(p.numel() for k, p in m.named_parameters() if 'classifier' not in k)
    assert abs(n / 1e6 - 26.70) / 26.70 < 0.003


def test_scl_trains_in_the_clustering_loop(tmp_path):
    "The symmetric-contrast objective as chapter 08's memory: one epoch of the unsupervised loop with it, both memories in the checkpoint."
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from test_train import fake_market
    from reid_lit.aff import SymmetricContrastLoss
    from reid_lit.cluster import train_unsupervised
    from reid_lit.train import load_checkpoint
    root = fake_market(tmp_path / 'm')
    r = train_unsupervised(dataset=str(root), eps=0.3, backbone='resnet18_w8', size=(32, 16), p=2, k=2, epochs=1, eval_every=1,
                           workers=0, progress=False, out=str(tmp_path / 'usl'), memory_factory=SymmetricContrastLoss.factory())
    ck = load_checkpoint(tmp_path / 'usl' / 'last.pt')
    assert {'memory.mean.features', 'memory.hard.features'} <= set(ck['losses']) and r['final']['epoch'] == 1


def test_usl_with_aff_and_scl_from_the_cli(market, tmp_path):
    "reid_lit_train --unsupervised --model aff --memory scl: AFF's descriptor feeds the symmetric contrast memory; --memory alone is an error."
    from reid_lit.train import train_reid, reid_lit_train, load_checkpoint
    r = train_reid(dataset=str(market.root), model='aff', out=str(tmp_path / 'src'), backbone='resnet18_w8', size='32x16', p=4, k=2,
                   epochs=1, workers=0, progress=False)
    reid_lit_train(unsupervised=True, model='aff', memory='scl', init=str(r['out_dir']), dataset=str(market.root), out=str(tmp_path / 'usl'),
                   backbone='resnet18_w8', size='32x16', p=2, k=2, epochs=1, eval_every=1, workers=0, eps=0.3, progress=False)
    ck = load_checkpoint(tmp_path / 'usl' / 'last.pt')
    assert any(k.startswith('memory.') and 'hard' in k for k in ck['losses']), list(ck['losses'])   # the SCL memories, both kinds
    with pytest.raises(SystemExit): reid_lit_train(memory='scl', dataset=str(market.root))
