"""The console scripts: --help, one-line usage errors (exit 2), and a tiny train → resume → eval → synth round trip."""
import os, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch

from reid_lit.train import load_checkpoint, reid_lit_eval, reid_lit_synth, reid_lit_train
from test_train import fake_market

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'}   # tiny models: one thread is fastest
TINY = ['--backbone', 'resnet18_w8', '--size', '32x16', '--p', '4', '--k', '2', '--workers', '0', '--device', 'cpu', '--no-progress']


def cli(*args, timeout=120):
    exe = shutil.which(args[0])
    assert exe, f"{args[0]} is not installed (pip install -e .)"
    return subprocess.run([exe, *map(str, args[1:])], capture_output=True, text=True, timeout=timeout, env=ENV)


@pytest.fixture(scope='module')
def market(tmp_path_factory): return fake_market(tmp_path_factory.mktemp('market'))


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_help():
    "--help of the installed script (one subprocess), and of the other two parsers in-process."
    from fastcore.script import anno_parser
    r = cli('reid_lit_train', '--help')
    assert r.returncode == 0, r.stderr
    for w in ['Without arguments', '--batch_size', '--resume', '--compile', '--no-amp']: assert w in r.stdout, w
    for f, words in ((reid_lit_eval, ['CMC and mAP', '--rerank', '--figure']), (reid_lit_synth, ['synthetic', '--num_train_ids', '--video'])):
        h = anno_parser(f.__wrapped__, f.__name__).format_help()
        for w in words: assert w in h, (f.__name__, w)
    assert shutil.which('reid_lit_eval') and shutil.which('reid_lit_synth')


def one_line_error(capsys, f, **kw):
    "Call a console-script function in-process; it must exit with code 2 and one line on stderr."
    with pytest.raises(SystemExit) as e: f(**kw)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2, err
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    return err


def test_usage_errors(capsys, market, tmp_path):
    e = one_line_error(capsys, reid_lit_train, dataset=str(market), batch_size=30, k=4)
    assert 'batch_size 30 is not divisible by K=4' in e
    e = one_line_error(capsys, reid_lit_train, dataset=str(tmp_path / 'nowhere'))
    assert 'nowhere' in e and 'dataset' in e
    e = one_line_error(capsys, reid_lit_train, dataset=str(market), model='resnet9000')
    assert "unknown model 'resnet9000'" in e and 'baseline' in e
    assert 'unknown preset' in one_line_error(capsys, reid_lit_train, preset='tpu')
    assert '--size must look like 256x128' in one_line_error(capsys, reid_lit_train, size='big')
    assert 'identities' in one_line_error(capsys, reid_lit_train, dataset=str(market), p=50, device='cpu')
    assert 'does not exist' in one_line_error(capsys, reid_lit_eval, checkpoint=str(tmp_path / 'none.pt'))
    assert '--num_cams must be a positive integer' in one_line_error(capsys, reid_lit_synth, out=str(tmp_path / 's'), num_cams=0)


def test_usage_error_from_the_shell():
    r = cli('reid_lit_train', '--batch_size', '30', '--k', '4')
    assert r.returncode == 2 and r.stderr.strip() == 'reid_lit_train: error: --batch_size 30 is not divisible by K=4 (a batch is P identities x K images)'
    assert r.stdout == ''


def test_train_resume_eval(market, tmp_path):
    out = tmp_path / 'run'
    r = cli('reid_lit_train', '--dataset', market, '--epochs', '2', '--eval_every', '1', '--out', out, *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "results of preset 'cpu', seed 0" in r.stdout
    table = r.stdout[r.stdout.index('results of preset'):]
    for w in ('mAP', 'Rank-1', 'Rank-5', 'Rank-10', 'untrained (epoch 0)', 'trained (epoch 2)', 'trained/untrained mAP'): assert w in table, w
    assert {p.name for p in out.iterdir()} == {'best.pt', 'last.pt', 'history.json', 'curves.png'}
    # the run folder is protected: a second run there must say so
    r = cli('reid_lit_train', '--dataset', market, '--out', out, *TINY)
    assert r.returncode == 2 and 'already holds a run' in r.stderr
    # resume and extend the schedule to 3 epochs
    r = cli('reid_lit_train', '--resume', out, '--epochs', '3', '--eval_every', '1', *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'resumed from' in r.stdout and 'trained (epoch 3)' in r.stdout
    assert load_checkpoint(out / 'last.pt')['epoch'] == 3
    # evaluate: table, re-ranking, ranked-list figure
    fig = tmp_path / 'ranked.png'
    r = cli('reid_lit_eval', out, '--rerank', '--figure', fig, '--device', 'cpu', '--workers', '0')
    assert r.returncode == 0, r.stderr[-3000:]
    for w in ('mAP', 'mINP', 'Rank-1', 'Rank-10', 're-ranked'): assert w in r.stdout, w
    assert fig.is_file() and fig.stat().st_size > 1000


def test_synth(tmp_path):
    pytest.importorskip('reid_lit.synth')
    r = cli('reid_lit_synth', tmp_path / 'world', '--num_train_ids', '4', '--num_test_ids', '4', '--num_cams', '2', '--size', '64x32')
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / 'world' / 'bounding_box_train').is_dir() and 'train' in r.stdout
