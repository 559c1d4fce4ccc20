"Shared pytest setup: small budgets everywhere, and the time of each test file in the summary."
import os, time

import pytest
from collections import defaultdict
from pathlib import Path

os.environ.setdefault('REID_LIT_TEST', '1')   # chapters and CLIs shrink their budgets
os.environ.setdefault('MPLBACKEND', 'Agg')

ROOT = Path(__file__).resolve().parents[1]
_file_times = defaultdict(float)

def pytest_runtest_logreport(report):
    _file_times[report.location[0]] += report.duration

def pytest_terminal_summary(terminalreporter):
    if not _file_times: return
    terminalreporter.section('time per test file')
    for f, t in sorted(_file_times.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f'{t:8.1f} s  {f}')


@pytest.fixture(scope='module')
def one_thread():
    "torch on one thread for a test module (the machines are shared; small models are faster so)."
    import torch
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def market(tmp_path_factory):
    "A miniature Market-1501 tree (`test_train.fake_market`), parsed."
    from reid_lit.data import build_dataset
    from test_train import fake_market
    return build_dataset(fake_market(tmp_path_factory.mktemp('market')))
