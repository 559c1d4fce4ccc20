"""Chapter 13 outside the notebook: the registry and `reid_lit.models`, a state-dict round trip, training and evaluating
from the command line on a miniature Market-1501 tree, the keypoints of a batch reaching the crops, and bad input."""
import pytest
import torch

from reid_lit.baseline import build_model, list_models
from reid_lit.core import set_seed
from reid_lit.intra_inter import IntraInterNet, crop_regions, region_boxes, strip_boxes


def test_registered_and_round_trip(tmp_path):
    from reid_lit.models import IntraInterNet as M, InterAttention, IntraAttentionBlock   # noqa: F401
    assert 'intra_inter' in list_models() and M is IntraInterNet
    set_seed(0)
    m = build_model('intra_inter', 5, backbone='table1_w8', fusion='fc').train()
    m(torch.randn(4, 3, 64, 32))                                          # move the BN statistics
    torch.save(m.state_dict(), tmp_path / 'm.pt')
    m2 = build_model('intra_inter', 5, backbone='table1_w8', fusion='fc')
    m2.load_state_dict(torch.load(tmp_path / 'm.pt', weights_only=True))
    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(m.eval()(x), m2.eval()(x))


def test_resnet_names_mean_table1():
    "The book's presets pass a ResNet name; the paper's network is its own (Table 1's widths)."
    with torch.device('meta'):
        a, b = build_model('intra_inter', 3, backbone='resnet18_w16'), build_model('intra_inter', 3, backbone='table1')
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())


def test_keypoints_reach_the_crops():
    "Shifting the keypoints of a batch shifts the boxes by the same amount, and the crops follow them."
    from reid_lit.pose import canonical_pose
    m = build_model('intra_inter', 3, backbone='table1_w8').eval()
    kp = torch.as_tensor(canonical_pose('coco17', (128, 64)))[None]
    img = torch.randn(1, 3, 128, 64)
    b0 = m.parts_from_batch({'img': img, 'keypoints': kp})
    b1 = m.parts_from_batch({'img': img, 'keypoints': kp + torch.tensor([5., 7., 0.])})
    torch.testing.assert_close(b1 - b0, torch.tensor([5., 7., 5., 7.]).expand(1, 5, 4), atol=1e-4, rtol=0)
    wb = torch.tensor([[[0., 0., 64., 128.]]]).expand(1, 5, 4).clone()
    wb[0, 1] = torch.tensor([10., 20., 42., 36.])                          # a 32 x 16 head box on pixel edges
    whole, parts = crop_regions(img, wb, (128, 64), (16, 32))
    torch.testing.assert_close(whole, img); torch.testing.assert_close(parts[0, 0], img[0, :, 20:36, 10:42])


def test_trains_and_evaluates_from_the_cli(market, tmp_path):
    """reid_lit_train --model intra_inter: one epoch on a miniature Market-1501 (no keypoints: the canonical pose), a variant chosen by
    model_kwargs and rebuilt from the checkpoint, then reid_lit_eval."""
    from reid_lit.train import train_reid, eval_reid, load_checkpoint, model_from_checkpoint
    r = train_reid(dataset=str(market.root), model='intra_inter', backbone='table1_w8', size='64x32', p=4, k=2, epochs=1,
                   workers=0, progress=False, out=str(tmp_path / 'run'), model_kwargs={'fusion': 'fc', 'lam': 0.1})
    ck = load_checkpoint(tmp_path / 'run' / 'last.pt')
    assert ck['epoch'] == 1 and r['trained']['mAP'] > 0
    m = model_from_checkpoint(ck)
    assert isinstance(m, IntraInterNet) and m.feat_dim == 8 * 8 + 4 * 4 * 8 and m.fusion == 'fc' and m.lam == 0.1
    s = eval_reid(str(tmp_path / 'run'))
    assert abs(s['mAP'] - r['trained']['mAP']) < 1e-6


def test_bad_input():
    with pytest.raises(ValueError, match='lam must be a number >= 0'): IntraInterNet(3, lam=-1)
    with pytest.raises(ValueError, match='whole_size 96x40'): IntraInterNet(3, whole_size=(96, 40))
    with pytest.raises(ValueError, match=r'keypoints must be \(B, K, 3\)'): region_boxes(torch.zeros(17, 3), (128, 64))
    with pytest.raises(ValueError, match='beta must be a fraction'): strip_boxes(2, (128, 64), beta=0.6)
    boxes = strip_boxes(1, (64, 32)); boxes[0, 3, 3] = boxes[0, 3, 1] - 1
    with pytest.raises(ValueError, match='region upper_leg'): crop_regions(torch.zeros(1, 3, 64, 32), boxes, (64, 32), (16, 32))
