"""The book in JupyterLab: the server lists the chapters, and a chapter runs through a real kernel.

Starts JupyterLab headless on 127.0.0.1 with a token (as `jupyter lab nbs/` would, without a
browser), lists the notebooks through its contents API, fetches a chapter through that API and
executes it top to bottom in a real IPython kernel with nbclient, outside `nbdev_test`.
"""
import json, os, secrets, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'

def _free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp('jupyter-home')
    env = {**os.environ, 'JUPYTER_CONFIG_DIR': str(home/'config'), 'JUPYTER_RUNTIME_DIR': str(home/'runtime'),
           'JUPYTER_DATA_DIR': str(Path(sys.prefix)/'share'/'jupyter')}
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
           f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={NBS}', '--ServerApp.open_browser=False']
    if hasattr(os, 'geteuid') and os.geteuid() == 0: cmd.append('--allow-root')  # CI machines run as root
    log = open(home/'lab.log', 'w')
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f'http://127.0.0.1:{port}'
    try:
        for _ in range(120):
            if proc.poll() is not None: break
            try:
                _get(base, '/api/status', token); break
            except OSError: time.sleep(0.5)
        else: pass
        assert proc.poll() is None, f"JupyterLab exited early:\n{(home/'lab.log').read_text()[-3000:]}"
        yield base, token
    finally:
        proc.terminate()
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()

def _get(base, path, token):
    req = urllib.request.Request(f'{base}{path}', headers={'Authorization': f'token {token}'})
    with urllib.request.urlopen(req, timeout=10) as r: return json.loads(r.read())

def test_token_is_required(lab):
    base, _ = lab
    with pytest.raises(urllib.error.HTTPError) as e: _get(base, '/api/contents', 'wrong-token')
    assert e.value.code == 403

def test_lab_lists_the_chapters(lab):
    base, token = lab
    listing = _get(base, '/api/contents', token)
    names = {c['name'] for c in listing['content'] if c['type'] == 'notebook'}
    expected = {p.name for p in NBS.glob('*.ipynb')}
    assert expected <= names, f"JupyterLab does not list {sorted(expected - names)}"
    assert 'index.ipynb' in names and '00_core.ipynb' in names

def test_chapter_runs_in_a_kernel(lab, tmp_path):
    "Fetch 00_core through the contents API and run it top to bottom in a real kernel."
    base, token = lab
    model = _get(base, '/api/contents/00_core.ipynb?content=1', token)
    nb = nbformat.from_dict(model['content'])
    # the saved notebook runs in the kernel as a reader runs it: from nbs/, without IN_TEST
    env_keep = {k: os.environ.pop(k) for k in ('IN_TEST', 'REID_LIT_TEST') if k in os.environ}
    try:
        NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(NBS)}}).execute()
    finally: os.environ.update(env_keep)
    errors = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []) if o.get('output_type') == 'error']
    assert not errors, errors
    outs = ''.join(o.get('text', '') for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []))
    assert 'sleep:' in outs   # the Timer example printed its time
