"Models face: backbone geometry, BNNeck, insert(), needs_parts, pretrained loading and its errors, the registry."
import pytest
import torch
import torch.nn as nn
import torchvision

from reid_lit.models import (ResNetBackbone, ReIDBaseline, GeM, build_model, list_models, register_model,
                             load_backbone_state, count_params, forward_flops)
from reid_lit.baseline import _MODELS
from reid_lit.losses import CrossEntropyLabelSmooth, TripletLoss

SMALL = 'resnet18_w16'


class Recorder(nn.Module):
    "Adds a constant and remembers what it was called with."
    def __init__(self, c=0., needs_parts=False):
        super().__init__()
        self.c, self.needs_parts, self.calls = c, needs_parts, []
    def forward(self, x, parts=None):
        self.calls.append((tuple(x.shape), parts))
        return x + self.c


@pytest.fixture(autouse=True)
def _seed(): torch.manual_seed(0)


def test_train_and_eval_outputs():
    m = ReIDBaseline(6, backbone=SMALL)
    x = torch.randn(4, 3, 64, 32)
    out = m(x)
    assert set(out) >= {'logits', 'feat', 'bn_feat'}
    assert out['logits'].shape == (4, 6) and out['feat'].shape == (4, 128) and out['bn_feat'].shape == (4, 128)
    m.eval()
    f = m(x)
    assert f.shape == (4, 128)
    torch.testing.assert_close(f, m.bottleneck(m.pooled(x)))
    assert m.parts_from_batch({'img': x}) is None


@pytest.mark.parametrize('arch,channels', [('resnet18_w16', 128), ('resnet34_w8', 64), ('resnet50_w8', 256)])
def test_last_stride_map_size(arch, channels):
    (h, w) = (256, 128) if arch == 'resnet18_w16' else (128, 64)
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        assert ResNetBackbone(arch, last_stride=1).eval()(x).shape == (1, channels, h // 16, w // 16)
        assert ResNetBackbone(arch, last_stride=2).eval()(x).shape == (1, channels, h // 32, w // 32)


def test_bnneck_bias_frozen_after_training_steps():
    m = ReIDBaseline(4, backbone=SMALL)
    assert not m.bottleneck.bias.requires_grad and m.classifier.bias is None
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    x, y = torch.randn(8, 3, 64, 32), torch.arange(4).repeat_interleave(2)
    for _ in range(1):
        out = m(x)
        loss = CrossEntropyLabelSmooth(4)(out['logits'], y) + TripletLoss(None)(out['feat'], y)
        opt.zero_grad(); loss.backward(); opt.step()
    assert m.bottleneck.bias.abs().max().item() == 0.
    assert not torch.equal(m.bottleneck.weight.detach(), torch.ones(128))


def test_neck_none_and_gem():
    m = ReIDBaseline(4, backbone=SMALL, neck='none', pooling='gem').eval()
    x = torch.randn(2, 3, 64, 32)
    assert m.bottleneck is None and isinstance(m.pool, GeM)
    torch.testing.assert_close(m(x), m.pool(m.backbone(x)).flatten(1))


def test_insert_places_blocks_where_asked():
    bb = ResNetBackbone(SMALL).eval()
    a, b, c = Recorder(1.), Recorder(2.), Recorder(3.)
    bb.insert('layer3', 1, a); bb.insert('layer3', 1, b); bb.insert('layer1', 0, c, name='first')
    # the input each unit receives, seen with forward hooks on the residual units
    seen = {}
    for stage in ('layer1', 'layer3'):
        for i, u in enumerate(getattr(bb, stage)):
            u.register_forward_hook(lambda mod, inp, out, k=f'{stage}.{i}': seen.__setitem__(k, (inp[0], out)))
    x = torch.randn(2, 3, 64, 32)
    maps = bb(x, return_maps=True)
    assert list(maps) == ['stem', 'layer1.0.first', 'layer1', 'layer2', 'layer3.1.recorder', 'layer3.1.recorder1', 'layer3', 'layer4']
    # c runs between layer1 unit 0 and unit 1: unit 1 receives unit 0's output + 3
    torch.testing.assert_close(seen['layer1.1'][0], seen['layer1.0'][1] + 3.)
    # a then b after the last unit of layer3: the stage output is unit 1's output + 1 + 2
    torch.testing.assert_close(maps['layer3'], seen['layer3.1'][1] + 3.)
    torch.testing.assert_close(maps['layer3.1.recorder'], seen['layer3.1'][1] + 1.)
    assert a.calls[0][0] == (2, 64, 4, 2) and len(b.calls) == 1
    with pytest.raises(ValueError, match='unit must be an integer in'): bb.insert('layer2', 2, Recorder())
    with pytest.raises(ValueError, match='stage must be one of'): bb.insert('conv5', 0, Recorder())
    with pytest.raises(TypeError, match='block must be an nn.Module'): bb.insert('layer2', 0, lambda x: x)


def test_insert_after_and_state_dict_roundtrip():
    mk = lambda: ReIDBaseline(3, backbone=SMALL, insert_after={'layer2': {1: nn.Conv2d(32, 32, 1)}, 'layer4': {-1: [nn.Identity()]}})
    m1, m2 = mk(), mk()
    m2.load_state_dict(m1.state_dict())
    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(m1.eval()(x), m2.eval()(x))
    assert any(k.startswith('backbone.inserted.layer2_1.0.') for k in m1.state_dict())
    with pytest.raises(TypeError, match=r"insert_after\['layer2'\] must be a dict"):
        ReIDBaseline(3, backbone=SMALL, insert_after={'layer2': nn.Identity()})


def test_needs_parts_blocks_get_parts():
    blk, plain = Recorder(needs_parts=True), Recorder()
    m = ReIDBaseline(3, backbone=SMALL, insert_after={'layer2': {0: [blk, plain]}})
    parts = torch.rand(2, 6, 64, 32)
    m(torch.randn(2, 3, 64, 32), parts)
    assert blk.calls[-1][1] is parts and plain.calls[-1][1] is None
    m.eval()(torch.randn(2, 3, 64, 32))
    assert blk.calls[-1][1] is None                       # no parts given: the block decides (canonical pose)


def test_pretrained_from_saved_state_dict(tmp_path):
    tv = torchvision.models.resnet18()
    torch.save(tv.state_dict(), tmp_path / 'r18.pth')
    ours = ResNetBackbone('resnet18', last_stride=2, pretrained=tmp_path / 'r18.pth').eval()
    x = torch.randn(1, 3, 64, 32)
    with torch.no_grad(): torch.testing.assert_close(ours(x), nn.Sequential(*list(tv.eval().children())[:-2])(x))
    # wrapped / DDP-prefixed files load as well, into the model's backbone
    torch.save({'model': {'module.' + k: v for k, v in tv.state_dict().items()}}, tmp_path / 'wrapped.pth')
    m = ReIDBaseline(10, backbone='resnet18', pretrained=str(tmp_path / 'wrapped.pth'))
    torch.testing.assert_close(m.backbone.layer4[0].conv1.weight, tv.layer4[0].conv1.weight)
    # blocks inserted after loading do not disturb a later reload
    m.backbone.insert('layer3', 0, nn.Identity())
    load_backbone_state(m.backbone, tmp_path / 'r18.pth')


def test_pretrained_weights_enum_is_called_without_download():
    class FakeWeights:                                    # duck-types torchvision's WeightsEnum
        name = 'FAKE'
        def __init__(self, sd): self.sd, self.calls = sd, []
        def get_state_dict(self, progress=True, check_hash=False): self.calls.append(progress); return self.sd
    w = FakeWeights(torchvision.models.resnet18().state_dict())
    bb = ResNetBackbone('resnet18', pretrained=w)
    assert w.calls == [True]
    torch.testing.assert_close(bb.conv1.weight, w.sd['conv1.weight'])


def test_pretrained_real_torchvision_enum(monkeypatch):
    "A real `ResNet18_Weights` member goes through torchvision's loader (patched here: nothing is downloaded)."
    import torchvision.models._api as api
    sd, seen = torchvision.models.resnet18().state_dict(), []
    monkeypatch.setattr(api, 'load_state_dict_from_url', lambda url, *a, **kw: seen.append((url, kw)) or sd)
    w = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    bb = ResNetBackbone('resnet18', pretrained=w)
    assert seen == [(w.url, {'progress': True})]
    torch.testing.assert_close(bb.layer3[1].bn2.running_var, sd['layer3.1.bn2.running_var'])


def test_pretrained_errors(tmp_path):
    torch.save(ResNetBackbone(SMALL).state_dict(), tmp_path / 'small.pth')
    with pytest.raises(FileNotFoundError, match='does not exist'): ResNetBackbone(SMALL, pretrained=tmp_path / 'missing.pth')
    with pytest.raises(ValueError, match=r'missing keys: layer1\.2\.'): ResNetBackbone('resnet34_w16', pretrained=tmp_path / 'small.pth')
    with pytest.raises(ValueError, match=r'shape mismatch: conv1\.weight: file \(16, 3, 7, 7\) vs model \(8, 3, 7, 7\)'):
        ResNetBackbone('resnet18_w8', pretrained=tmp_path / 'small.pth')
    sd = ResNetBackbone(SMALL).state_dict(); sd['extra.weight'] = torch.zeros(1)
    torch.save(sd, tmp_path / 'extra.pth')
    with pytest.raises(ValueError, match='unexpected keys: extra.weight'): ResNetBackbone(SMALL, pretrained=tmp_path / 'extra.pth')
    torch.save([1, 2], tmp_path / 'list.pth')
    with pytest.raises(ValueError, match='holds a list, expected a state dict'): ResNetBackbone(SMALL, pretrained=tmp_path / 'list.pth')
    (tmp_path / 'junk.pth').write_text('not a checkpoint')
    with pytest.raises(ValueError, match='could not be read as a state dict'): ResNetBackbone(SMALL, pretrained=tmp_path / 'junk.pth')
    with pytest.raises(TypeError, match='pretrained must be None'): ResNetBackbone(SMALL, pretrained=3)


def test_pretrained_from_a_reid_checkpoint(tmp_path):
    src = ReIDBaseline(7, backbone=SMALL, insert_after={'layer2': {0: nn.Conv2d(32, 32, 1)}})
    torch.save({'state_dict': {'module.' + k: v for k, v in src.state_dict().items()}}, tmp_path / 'reid.pth')
    m = ReIDBaseline(3, backbone=SMALL, pretrained=tmp_path / 'reid.pth')   # new identities: neck and classifier fresh
    for k, v in src.backbone.state_dict().items():
        if not k.startswith('inserted.'): torch.testing.assert_close(m.backbone.state_dict()[k], v)


def test_registry():
    assert {'baseline', 'nonlocal', 'sda'} <= set(list_models())
    with pytest.raises(ValueError, match="unknown model 'resnet'; registered models are: .*baseline, .*sda"):
        build_model('resnet', 5)
    assert isinstance(build_model('baseline', 5, backbone=SMALL), ReIDBaseline)
    try:
        @register_model('_test_tmp')
        class Tiny(nn.Module):
            def __init__(self, num_classes, dim=4): super().__init__(); self.fc = nn.Linear(dim, num_classes)
        @register_model('_test_tmp')                      # same class re-registered (a re-run notebook cell): allowed
        class Tiny(nn.Module):
            def __init__(self, num_classes, dim=4): super().__init__(); self.fc = nn.Linear(dim, num_classes)
        assert build_model('_test_tmp', 3, dim=2).fc.weight.shape == (3, 2)
        with pytest.raises(ValueError, match="already registered"):
            @register_model('_test_tmp')
            class Other(nn.Module): pass
    finally: _MODELS.pop('_test_tmp', None)


def test_models_face_exports_everything():
    import reid_lit.models as M
    for n in ('ReIDBaseline', 'ResNetBackbone', 'build_model', 'list_models', 'register_model', 'GeM',
              'NonLocalBlock', 'SDABlock', 'NonLocalResNet', 'SDAResNet'):
        assert n in M.__all__ and hasattr(M, n)
    m = build_model('baseline', 5, backbone=SMALL)
    assert count_params(m) - count_params(m, trainable_only=True) == 128
    conv = nn.Conv2d(3, 4, 1, bias=False)
    assert forward_flops(conv, (8, 4)) == 2 * 3 * 4 * 32


def test_models_and_losses_trace_in_one_graph():
    "torch.compile captures the baseline (with an inserted block) and every loss without graph breaks."
    from reid_lit.losses import WeightedRegularizedTriplet, CenterLoss
    m = ReIDBaseline(4, backbone=SMALL, insert_after={'layer3': {0: Recorder(needs_parts=True)}})
    x, y = torch.randn(8, 3, 64, 32), torch.arange(4).repeat_interleave(2)
    out = torch.compile(m, backend='eager', fullgraph=True)(x, torch.rand(8, 6, 64, 32))
    feat = out['feat'].detach()
    for loss in (TripletLoss(0.3), TripletLoss(None), WeightedRegularizedTriplet(), CenterLoss(4, 128)):
        torch.testing.assert_close(torch.compile(loss, backend='eager', fullgraph=True)(feat, y), loss(feat, y))
    torch.testing.assert_close(torch.compile(CrossEntropyLabelSmooth(4), backend='eager', fullgraph=True)(out['logits'], y),
                               CrossEntropyLabelSmooth(4)(out['logits'], y))


def test_bad_arguments():
    with pytest.raises(ValueError, match='backbone name must be one of'): ReIDBaseline(3, backbone='vgg16')
    with pytest.raises(ValueError, match="neck must be 'bnneck' or 'none'"): ReIDBaseline(3, backbone=SMALL, neck='bn')
    with pytest.raises(ValueError, match='num_classes must be a positive integer'): ReIDBaseline(0, backbone=SMALL)
