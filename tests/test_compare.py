"""Chapter 20's `reid_lit_compare` from the shell: the miniature of a setting end to end (runs, tables, figures), and its usage errors."""
import os, subprocess, sys, shutil
from pathlib import Path
import pytest

def _cli(*args, runs, timeout=600):
    exe = shutil.which('reid_lit_compare')
    cmd = [exe] if exe else [sys.executable, '-c', 'from reid_lit.compare import reid_lit_compare; reid_lit_compare()']
    env = dict(os.environ, REID_LIT_RUNS=str(runs), REID_LIT_TEST='1')
    return subprocess.run(cmd + list(map(str, args)), capture_output=True, text=True, timeout=timeout, env=env)

def test_compare_cli_miniature(tmp_path):
    "--mini trains the miniature of the video setting (both models), writes the tidy table, the summary and the figures; a second call loads the runs."
    r = _cli('--setting', 'video', '--seeds', '0', '--mini', '--out', tmp_path / 'out', runs=tmp_path / 'runs')
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    names = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert names == ['video.csv', 'video.md', 'video_attention.png', 'video_map_vs_gmacs.png', 'video_ranked_lists.png'], names
    md = (tmp_path / 'out' / 'video.md').read_text()
    assert '| ASA-Net |' in md and 'Δ mAP vs baseline' in md and '[5] Table I' in md
    csv = (tmp_path / 'out' / 'video.csv').read_text().splitlines()
    assert csv[0].startswith('setting,model,seed,epochs,mAP,rank1,mINP') and len(csv) == 3
    assert len(list((tmp_path / 'runs' / '20_results' / 'video-mini').glob('*/result.json'))) == 2
    again = _cli('--setting', 'video', '--seeds', '0', '--mini', '--no_figures', '--out', tmp_path / 'out2', runs=tmp_path / 'runs', timeout=120)
    assert again.returncode == 0 and sorted(p.name for p in (tmp_path / 'out2').iterdir()) == ['video.csv', 'video.md']
    assert (tmp_path / 'out2' / 'video.csv').read_text() == (tmp_path / 'out' / 'video.csv').read_text()   # loaded, not retrained

@pytest.mark.parametrize('args,msg', [(('--setting', 'semi'), "--setting must be one of supervised, uda, usl, video"),
                                      (('--models', 'PCB', '--mini'), "has no model 'PCB'"),
                                      (('--budget', '0'), '--budget must be a positive number of epochs')])
def test_compare_usage_errors(tmp_path, args, msg):
    r = _cli(*args, runs=tmp_path / 'runs', timeout=120)
    assert r.returncode == 2 and msg in r.stderr, r.stderr[-2000:]
