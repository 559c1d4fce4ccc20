"Fake folder trees in the real layouts of every dataset parser in `reid_lit.data`, their error cases, and the samplers."
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from reid_lit.data import (ReIDItem, Market1501, DukeMTMCreID, MSMT17, CUHK03NP, MARS, DukeMTMCVideoReID, build_dataset,
                           recognise_layout, DatasetLayoutError, UnreadableImageError, ImageDataset, VideoDataset,
                           PKSampler, build_transforms, FLIP_PERM_COCO17, restricted_random_indices)


def img(path, color=(100, 50, 20), size=(16, 8)):
    "A tiny solid image (H, W) = size at `path`."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', size[::-1], color).save(path)
    return path


def market_tree(root, ext='.jpg', train=(1, 3, 5), test=(2, 4), cams=(1, 2, 3)):
    "Market layout: two crops per (pid, cam), plus distractors (0000) and junk (-1) in the gallery."
    for split, pids in (('bounding_box_train', train), ('query', test), ('bounding_box_test', test)):
        (root/split).mkdir(parents=True, exist_ok=True)
        for pid in pids:
            for c in cams:
                for j in range(2 if split != 'query' else 1):
                    img(root/split/f'{pid:04d}_c{c}s1_{100 * c + j:06d}_0{j}{ext}', (pid * 30, c * 40, j * 90))
    for c in cams[:2]:
        img(root/'bounding_box_test'/f'0000_c{c}s1_000001_00{ext}')
        img(root/'bounding_box_test'/f'-1_c{c}s1_000002_00{ext}')
    return root


# ---------------------------------------------------------------------------------------------- Market family
def test_market1501_protocol(tmp_path):
    d = market_tree(tmp_path/'Market-1501-v15.09.15')
    ds = Market1501(tmp_path)                                   # found in the archive's sub-folder
    assert ds.root == d
    assert sorted({i.pid for i in ds.train}) == [0, 1, 2]       # 1, 3, 5 relabelled
    assert ds.num_train_pids == 3 and ds.num_train_cams == 3 and len(ds.train) == 18
    assert {i.camid for i in ds.train} == {0, 1, 2}             # 0-based
    assert {i.pid for i in ds.query} == {2, 4} and len(ds.query) == 6
    assert {i.pid for i in ds.gallery} == {0, 2, 4}             # distractors kept
    assert len(ds.gallery) == 12 + 2                            # junk (-1) dropped
    assert all(Path(i.path).exists() and i.frames is None for i in ds.train + ds.query + ds.gallery)
    # the train relabelling follows the sorted original ids
    for it in ds.train: assert int(Path(it.path).name[:4]) == (1, 3, 5)[it.pid]
    s = ds.summary()
    assert re.search(r'train\s+\|\s+3 \|\s+18 \|\s+3', s) and re.search(r'gallery\s+\|\s+3 \|\s+14 \|\s+3', s)
    assert repr(ds) == s
    assert ds.stats()['query'] == (2, 6, 3, 6)


def test_duke_and_cuhk03np(tmp_path):
    market_tree(tmp_path/'DukeMTMC-reID', cams=(1, 7, 8))
    ds = DukeMTMCreID(tmp_path)
    assert {i.camid for i in ds.gallery} == {0, 6, 7}
    for kind in ('labeled', 'detected'): market_tree(tmp_path/'cuhk03-np'/kind, ext='.png', cams=(1, 2),
                                                     train=(1, 2) if kind == 'labeled' else (1, 2, 3))
    lab, det = CUHK03NP(tmp_path), CUHK03NP(tmp_path, labeled=False)
    assert lab.num_train_pids == 2 and det.num_train_pids == 3
    assert lab.train[0].path.endswith('.png') and '/labeled/' in lab.train[0].path and '/detected/' in det.train[0].path
    assert CUHK03NP(tmp_path/'cuhk03-np').num_train_pids == 2      # the cuhk03-np folder itself
    assert CUHK03NP(tmp_path/'cuhk03-np'/'detected', labeled=False).num_train_pids == 3


def test_market_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match='does not exist'): Market1501(tmp_path/'nowhere')
    (tmp_path/'m'/'bounding_box_train').mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=r"lacks query/, bounding_box_test/; expected bounding_box_train/, query/, bounding_box_test/"):
        Market1501(tmp_path/'m')
    d = market_tree(tmp_path/'bad')
    img(d/'query'/'Thumbs_0001.jpg')
    with pytest.raises(ValueError, match=r"cannot parse the file name '.*Thumbs_0001.jpg'"): Market1501(d)
    (d/'query'/'Thumbs_0001.jpg').unlink()
    for f in (d/'bounding_box_train').iterdir(): f.unlink()
    with pytest.raises(ValueError, match=r"bounding_box_train' holds no images"): Market1501(d)
    # a split that holds only junk is empty too
    for f in (d/'bounding_box_train').iterdir(): f.unlink()
    img(d/'bounding_box_train'/'-1_c1s1_000001_00.jpg')
    with pytest.raises(ValueError, match='only junk'): Market1501(d)


def test_unreadable_images(tmp_path):
    d = market_tree(tmp_path/'m')
    bad = d/'bounding_box_train'/'0003_c2s1_000999_00.jpg'
    bad.write_bytes(b'not a jpeg')
    ds = Market1501(d)                                           # names parse: reading is lazy
    with pytest.raises(UnreadableImageError, match='0003_c2s1_000999_00.jpg'): Market1501(d, verify=True)
    v = Market1501(d, verify=True, skip_bad=True)
    assert v.num_skipped == 1 and len(v.train) == len(ds.train) - 1
    i = [it.path for it in ds.train].index(str(bad))
    with pytest.raises(UnreadableImageError, match=r"cannot read image '.*0003_c2s1_000999_00.jpg'"): ImageDataset(ds.train)[i]
    skip = ImageDataset(ds.train, skip_bad=True)
    x = skip[i]
    assert skip.num_bad == 1 and x['pid'] == ds.train[i].pid and x['index'] == i   # replaced by a crop of the same person
    assert x['img'].shape == (3, 16, 8) and x['img'].dtype == torch.float32


# ---------------------------------------------------------------------------------------------- MSMT17
def msmt_tree(root, version='MSMT17_V1'):
    tr, te = {'MSMT17_V1': ('train', 'test'), 'MSMT17_V2': ('mask_train_v2', 'mask_test_v2')}[version]
    d = root/version
    def write(list_name, folder, rows):
        lines = []
        for pid, label, cam, k in rows:
            rel = f'{pid:04d}/{pid:04d}_{k:03d}_{cam:02d}_0303morning_{k:04d}_0.jpg'
            img(d/folder/rel); lines.append(f'{rel} {label}')
        (d/list_name).write_text('\n'.join(lines) + '\n')
    write('list_train.txt', tr, [(p, p, c, k) for p in range(3) for c, k in ((1, 0), (15, 1))])
    write('list_val.txt', tr, [(p, p, 4, 2) for p in range(3)])
    write('list_query.txt', te, [(p, p, 2, 0) for p in range(3, 5)])
    write('list_gallery.txt', te, [(p, p, c, 1 + c) for p in range(3, 6) for c in (3, 9)])
    return d


@pytest.mark.parametrize('version', ['MSMT17_V1', 'MSMT17_V2'])
def test_msmt17(tmp_path, version):
    d = msmt_tree(tmp_path, version)
    ds = MSMT17(tmp_path)
    assert ds.version == version and ds.root == d
    assert len(ds.train) == 9 and ds.num_train_pids == 3 and ds.num_train_cams == 3
    assert {i.camid for i in ds.train} == {0, 14, 3}
    assert len(MSMT17(d, include_val=False).train) == 6
    assert [i.pid for i in ds.query] == [3, 4] and {i.camid for i in ds.gallery} == {2, 8}
    assert all(Path(i.path).exists() for i in ds.train + ds.query + ds.gallery)
    assert isinstance(build_dataset('MSMT17_V2', tmp_path), MSMT17) and recognise_layout(tmp_path) == 'msmt17'


def test_msmt17_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match='does not exist'): MSMT17(tmp_path/'nowhere')
    d = msmt_tree(tmp_path)
    (d/'list_gallery.txt').unlink()
    with pytest.raises(DatasetLayoutError, match=r'lacks list_gallery.txt'): MSMT17(tmp_path)
    d = msmt_tree(tmp_path/'b')
    (d/'list_query.txt').write_text('0003/0003_000_02_0303morning_0000_0.jpg 3\nfoo.jpg\n')
    with pytest.raises(ValueError, match=r"list_query.txt, line 2: cannot parse 'foo.jpg'"): MSMT17(d)
    (d/'list_query.txt').write_text('\n')
    with pytest.raises(ValueError, match='lists no images'): MSMT17(d)
    (d/'list_query.txt').write_text('0003/0003_000_02_0303morning_0099_0.jpg 3\n')
    with pytest.raises(DatasetLayoutError, match='which does not exist'): MSMT17(d)


# ---------------------------------------------------------------------------------------------- MARS
def mars_tree(root):
    "MARS layout: frames under bbox_*/<pid>/, name lists and track tables in info/ (1-based rows)."
    d = root/'MARS'
    def frames(home, pid, cam, t, n):
        tag = '00-1' if pid == -1 else f'{pid:04d}'
        names = [f'{tag}C{cam}T{t:04d}F{f:03d}.jpg' for f in range(1, n + 1)]
        for nm in names: img(d/home/tag/nm, (max(pid, 0) * 20, cam * 30, 0))
        return names
    def build(home, tracks):
        names, rows = [], []
        for pid, cam, t, n in tracks:
            new = frames(home, pid, cam, t, n)
            rows.append([len(names) + 1, len(names) + len(new), pid, cam]); names += new
        return names, np.array(rows, dtype=np.int32)
    tr_names, tr = build('bbox_train', [(1, 1, 1, 5), (1, 2, 1, 3), (7, 1, 1, 4), (9, 3, 2, 2)])
    te_names, te = build('bbox_test', [(2, 1, 1, 4), (2, 2, 1, 6), (4, 1, 1, 3), (4, 3, 1, 5), (0, 2, 1, 2), (-1, 1, 1, 2)])
    (d/'info').mkdir(parents=True)
    (d/'info'/'train_name.txt').write_text('\n'.join(tr_names) + '\n')
    (d/'info'/'test_name.txt').write_text('\n'.join(te_names) + '\n')
    savemat(d/'info'/'tracks_train_info.mat', {'track_train_info': tr})
    savemat(d/'info'/'tracks_test_info.mat', {'track_test_info': te})
    savemat(d/'info'/'query_IDX.mat', {'query_IDX': np.array([[1, 3]])})     # rows 1 and 3 (1-based) are queries
    return d


def test_mars(tmp_path):
    d = mars_tree(tmp_path)
    ds = MARS(tmp_path)
    assert ds.video and ds.root == d
    assert [(i.pid, i.camid, len(i.frames)) for i in ds.train] == [(0, 0, 5), (0, 1, 3), (1, 0, 4), (2, 2, 2)]
    assert [(i.pid, i.camid) for i in ds.query] == [(2, 0), (4, 0)]
    assert [(i.pid, i.camid, len(i.frames)) for i in ds.gallery] == [(2, 1, 6), (4, 2, 5), (0, 1, 2)]   # junk dropped
    assert all(Path(f).exists() for i in ds.train + ds.query + ds.gallery for f in i.frames)
    assert ds.train[0].frames[0].endswith('bbox_train/0001/0001C1T0001F001.jpg') and ds.train[0].path.endswith('0001C1T0001')
    assert [int(f[-7:-4]) for f in ds.gallery[0].frames] == list(range(1, 7))
    assert 'tracklets' in ds.summary() and ds.stats()['train'] == (3, 4, 3, 14)
    assert len(MARS(d, min_seq_len=4).train) == 2
    assert isinstance(build_dataset('Mars', tmp_path), MARS) and recognise_layout(d) == 'mars'


def test_mars_errors(tmp_path):
    d = mars_tree(tmp_path)
    (d/'info'/'query_IDX.mat').unlink()
    with pytest.raises(DatasetLayoutError, match=r"info' lacks query_IDX.mat"): MARS(d)
    savemat(d/'info'/'query_IDX.mat', {'query_IDX': np.array([[1, 99]])})
    with pytest.raises(ValueError, match='has 6 rows'): MARS(d)
    savemat(d/'info'/'query_IDX.mat', {'wrong_key': np.array([[1]])})
    with pytest.raises(ValueError, match="has no variable 'query_IDX'"): MARS(d)
    savemat(d/'info'/'query_IDX.mat', {'query_IDX': np.array([[1, 3]])})
    names = (d/'info'/'test_name.txt').read_text().replace('0002C1T0001F002', 'garbage_name')
    (d/'info'/'test_name.txt').write_text(names)
    with pytest.raises(ValueError, match="cannot parse the frame name 'garbage_name.jpg'"): MARS(d)
    (d/'info'/'test_name.txt').write_text(names.replace('garbage_name', '0003C1T0001F002'))
    with pytest.raises(ValueError, match=r"row 1 says pid 2, camera 1, but holds frame '0003C1T0001F002.jpg'"): MARS(d)
    import shutil; shutil.rmtree(d/'bbox_test')
    with pytest.raises(DatasetLayoutError, match='lacks bbox_test/'): MARS(tmp_path)


# ---------------------------------------------------------------------------------------------- DukeMTMC-VideoReID
def dukev_tree(root):
    d = root/'DukeMTMC-VideoReID'
    def tracklet(split, pid, tid, cam, frames):
        for f in frames: img(d/split/f'{pid:04d}'/f'{tid:04d}'/f'{pid:04d}_C{cam}_F{f:04d}_X{1000 + f}.jpg')
    tracklet('train', 5, 1, 2, [3, 1, 2, 10]); tracklet('train', 5, 2, 6, [1, 2]); tracklet('train', 9, 1, 1, [2, 3, 4])
    tracklet('query', 11, 1, 3, [1, 2]); tracklet('gallery', 11, 2, 5, [1, 2, 3]); tracklet('gallery', 12, 1, 8, [4])
    return d


def test_dukev(tmp_path):
    d = dukev_tree(tmp_path)
    ds = DukeMTMCVideoReID(tmp_path)
    assert [(i.pid, i.camid, len(i.frames)) for i in ds.train] == [(0, 1, 4), (0, 5, 2), (1, 0, 3)]
    assert [Path(f).name.split('_')[2] for f in ds.train[0].frames] == ['F0001', 'F0002', 'F0003', 'F0010']   # frame order
    assert ds.train[0].path == str(d/'train'/'0005'/'0001')
    assert [(i.pid, i.camid) for i in ds.gallery] == [(11, 4), (12, 7)] and ds.query[0].pid == 11
    assert isinstance(build_dataset('duke-video', tmp_path), DukeMTMCVideoReID) and recognise_layout(d) == 'dukemtmcvideoreid'
    img(d/'query'/'0011'/'0001'/'frame.jpg')
    with pytest.raises(ValueError, match=r"cannot parse the frame name '.*frame.jpg'"): DukeMTMCVideoReID(d)
    import shutil; shutil.rmtree(d/'gallery')
    with pytest.raises(DatasetLayoutError, match=r"lacks gallery/; expected train/, query/, gallery/"): DukeMTMCVideoReID(d)


# ---------------------------------------------------------------------------------------------- build_dataset
def test_build_dataset(tmp_path):
    market_tree(tmp_path/'market'/'Market-1501-v15.09.15')
    market_tree(tmp_path/'duke'/'DukeMTMC-reID')
    market_tree(tmp_path/'cuhk'/'cuhk03-np'/'detected')
    for name in ('market1501', 'Market-1501', 'MARKET'): assert type(build_dataset(name, tmp_path/'market')) is Market1501
    assert type(build_dataset(tmp_path/'market')) is Market1501
    assert type(build_dataset(tmp_path/'duke')) is DukeMTMCreID and type(build_dataset('DukeMTMC-reID', tmp_path/'duke')) is DukeMTMCreID
    assert type(build_dataset('cuhk03_detected', tmp_path/'cuhk')) is CUHK03NP
    assert type(build_dataset(tmp_path/'cuhk'/'cuhk03-np', labeled=False)) is CUHK03NP
    with pytest.raises(ValueError, match='needs root='): build_dataset('market1501')
    with pytest.raises(ValueError, match='neither a known dataset'): build_dataset('imagenet')
    (tmp_path/'empty').mkdir()
    with pytest.raises(DatasetLayoutError, match='none of the known layouts'): build_dataset(tmp_path/'empty')
    market_tree(tmp_path/'both'/'Market-1501-v15.09.15'); market_tree(tmp_path/'both'/'DukeMTMC-reID')
    with pytest.raises(ValueError, match=r'holds several datasets \(DukeMTMC-reID/: dukemtmcreid, Market-1501-v15.09.15/: market1501\)'):
        build_dataset(tmp_path/'both')
    assert type(build_dataset('market', tmp_path/'both')) is Market1501


# ---------------------------------------------------------------------------------------------- transforms
def pose_sample(H=16, W=8):
    "An image whose part map marks keypoint k's pixel with label k+1 (a unique label under every keypoint)."
    rng = np.random.default_rng(0)
    kps = np.zeros((17, 3), np.float32)
    cells = rng.choice(H * W, 17, replace=False)
    kps[:, 0], kps[:, 1], kps[:, 2] = cells % W, cells // W, 2
    parts = np.zeros((H, W), np.uint8)
    parts[kps[:, 1].astype(int), kps[:, 0].astype(int)] = np.arange(1, 18)
    return kps, parts


@pytest.mark.parametrize('flip', [0.0, 1.0])
def test_transforms_keep_keypoints_on_their_pixels(tmp_path, flip):
    "Resize x3, (flip), pad and random crop: every visible keypoint still sits on its own label (swapped when flipped)."
    kps, parts = pose_sample()
    f = img(tmp_path/'0001_c1s1_000001_00.jpg')
    ann = {f.name: dict(keypoints=kps, parts=parts, attrs=np.array([1, 0, 1], np.uint8))}
    t = build_transforms((48, 24), train=True, flip_p=flip, pad=5, erase_p=1.0)
    ds = ImageDataset([ReIDItem(str(f), 0, 0)], t, ann)
    perm = FLIP_PERM_COCO17 if flip else list(range(17))
    seen_out = 0
    for seed in range(20):
        torch.manual_seed(seed)
        x = ds[0]
        assert x['img'].shape == (3, 48, 24) and x['parts'].shape == (48, 24) and x['parts'].dtype == torch.int64
        assert x['keypoints'].dtype == torch.float32 and x['attrs'].tolist() == [1.0, 0.0, 1.0]
        for k, (u, v, vis) in enumerate(x['keypoints'].tolist()):
            inside = 0 <= u <= 23 and 0 <= v <= 47
            assert (vis > 0) == inside
            if inside: assert x['parts'][int(v), int(u)] == perm[k] + 1, (seed, k)
            else: seen_out += 1
        assert u == int(u) and v == int(v)                        # x3 resize maps pixel centres to pixel centres
    assert seen_out > 0                                           # some crops pushed keypoints out (and hid them)


def test_video_dataset(tmp_path):
    d = mars_tree(tmp_path)
    ds = MARS(d)
    tr = VideoDataset(ds.train, seq_len=4, mode='train', transform=build_transforms((32, 16), train=True), seed=0)
    x = tr[0]
    assert x['img'].shape == (4, 3, 32, 16) and x['pid'] == 0 and x['camid'] == 0
    te = VideoDataset(ds.gallery, seq_len=4, mode='test', transform=build_transforms((32, 16), train=False))
    assert te[1]['img'].shape == (2, 4, 3, 32, 16)              # 5 frames -> 2 clips (the last padded)
    assert te.frame_indices(1) == [[0, 1, 2, 3], [4, 4, 4, 4]]
    with pytest.raises(ValueError, match='not tracklets'): VideoDataset(Market1501(market_tree(tmp_path/'m')).train)
    with pytest.raises(ValueError, match="mode must be 'train' or 'test'"): VideoDataset(ds.train, mode='eval')
    # restricted random sampling draws one frame per chunk, covering the whole tracklet
    rng = np.random.default_rng(0)
    draws = np.array([restricted_random_indices(40, 4, rng) for _ in range(200)])
    for t in range(4): assert draws[:, t].min() == 10 * t and draws[:, t].max() == 10 * t + 9


# ---------------------------------------------------------------------------------------------- PK sampler
def test_pk_sampler_batches():
    pids = [p for p in range(30) for _ in range(1 + p % 7)]
    s = PKSampler(pids, p=5, k=4, seed=3)
    batches = list(s)
    assert len(batches) == len(s) > 0
    for b in batches:
        c = Counter(pids[i] for i in b)
        assert len(b) == 20 and len(c) == 5 and set(c.values()) == {4}
    assert batches == list(PKSampler(pids, p=5, k=4, seed=3))                  # deterministic
    assert batches != list(PKSampler(pids, p=5, k=4, seed=4))
    s.set_epoch(1); assert list(s) != batches
    s.set_epoch(0); assert list(s) == batches
    # an identity with many images appears in several batches; one with 1 image is sampled with replacement
    items = [ReIDItem(f'{i}.jpg', pid, 0) for i, pid in enumerate(pids)]
    assert list(PKSampler(items, p=5, k=4, seed=3)) == batches
    with pytest.raises(ValueError, match='p and k must be >= 1'): PKSampler(pids, p=0, k=4)


@pytest.mark.parametrize('R', [2, 3])
def test_pk_sampler_distributed(R):
    pids = [p for p in range(60) for _ in range(2 + p % 5)]
    for epoch in range(3):
        samplers = [PKSampler(pids, p=4, k=2, seed=0, num_replicas=R, rank=r) for r in range(R)]
        for s in samplers: s.set_epoch(epoch)
        assert len({len(s) for s in samplers}) == 1 and len(samplers[0]) > 0
        seen = [{pids[i] for b in s for i in b} for s in samplers]
        for a in range(R):
            for b in range(a + 1, R): assert not seen[a] & seen[b]
        for s in samplers:
            for b in s: assert len(b) == 8 and len({pids[i] for i in b}) == 4
    with pytest.raises(ValueError, match=r'rank=2 must be in \[0, num_replicas=2\)'): PKSampler(pids, 4, 2, num_replicas=2, rank=2)


def test_loader_collates_pose_batches(tmp_path):
    d = market_tree(tmp_path/'m')
    ds = Market1501(d)
    kps, parts = pose_sample()
    ann = {Path(i.path).name: dict(keypoints=kps, parts=parts, attrs=np.zeros(4, np.uint8)) for i in ds.train}
    dl = torch.utils.data.DataLoader(ImageDataset(ds.train, build_transforms((32, 16)), ann), batch_sampler=PKSampler(ds.train, 3, 2))
    b = next(iter(dl))
    assert b['img'].shape == (6, 3, 32, 16) and b['keypoints'].shape == (6, 17, 3) and b['parts'].shape == (6, 32, 16)
    assert type(b['img']) is torch.Tensor and b['pid'].tolist().count(b['pid'][0].item()) == 2


# ---------------------------------------------------------------------------------------------- the synthetic world
@pytest.fixture(scope='module')
def synth_root(tmp_path_factory):
    from reid_lit.synth import make_synth_reid
    return make_synth_reid(tmp_path_factory.mktemp('synth'), num_train_ids=6, num_test_ids=5, num_cams=3, size=(64, 32),
                           seed=1, video=True, tracklet_len=(3, 5))


def test_synth_round_trip(synth_root):
    "The generator's counts come back through Market1501 (images) and MARS (tracklets), annotations included."
    from reid_lit.synth import synth_info, load_annotations
    c = synth_info(synth_root)['counts']
    m = Market1501(synth_root)
    assert (len(m.train), m.num_train_pids) == (c['bounding_box_train']['images'], c['bounding_box_train']['ids'])
    assert (len(m.query), len({i.pid for i in m.query})) == (c['query']['images'], c['query']['ids'])
    g = c['bounding_box_test']
    assert len(m.gallery) == g['images'] - g['junk'] and sum(i.pid == 0 for i in m.gallery) == g['distractors']
    assert len({i.pid for i in m.gallery}) == g['ids']
    v = MARS(synth_root)
    for split in ('train', 'query', 'gallery'):
        items = getattr(v, split)
        assert (len(items), len({i.pid for i in items})) == (c['mars'][split]['tracklets'], c['mars'][split]['ids'])
    assert sum(len(i.frames) for i in v.train) == c['mars']['train']['frames']
    assert type(build_dataset(synth_root)) is Market1501 and type(build_dataset('synth_video', synth_root)) is MARS
    ann = load_annotations(synth_root)
    x = ImageDataset(m.train, build_transforms((64, 32), train=False), ann)[3]
    assert x['keypoints'].shape == (17, 3) and x['parts'].shape == (64, 32) and x['attrs'].shape == (len(ann.attr_names),)
    clip = VideoDataset(v.train, seq_len=4, transform=build_transforms((64, 32), train=False), annotations=ann, seed=0)[0]
    assert clip['img'].shape == (4, 3, 64, 32) and clip['keypoints'].shape == (4, 17, 3) and clip['parts'].shape == (4, 64, 32)


def test_synth_flip_is_exact(synth_root):
    "With flip only: image and part map mirror exactly, x' = W-1-x, y unchanged, left/right labels swapped."
    from torchvision.transforms import v2
    from reid_lit.data import PoseHorizontalFlip
    from reid_lit.synth import load_annotations
    m, ann = Market1501(synth_root), load_annotations(synth_root)
    plain = ImageDataset(m.train, None, ann)
    flipped = ImageDataset(m.train, v2.Compose([PoseHorizontalFlip(p=1.0)]), ann)
    for i in range(0, len(m.train), 7):
        a, b = plain[i], flipped[i]
        assert torch.equal(b['img'], a['img'].flip(-1)) and torch.equal(b['parts'], a['parts'].flip(-1))
        ka, kb = a['keypoints'], b['keypoints']
        for j, pj in enumerate(FLIP_PERM_COCO17):
            assert kb[j, 2] == ka[pj, 2]
            if ka[pj, 2] > 0: assert kb[j, 0] == 31 - ka[pj, 0] and kb[j, 1] == ka[pj, 1]
