"""House rules for the notebooks that nbdev_clean and nbdev_export do not check.

The docs build (nbdev's `exec_show_docs` processor) executes every cell that contains an import,
so a cell that imports must do nothing else: otherwise building the site would run training
loops, touch the GPU or fail on names defined in earlier cells. Each chapter also needs a title,
a summary line, and the closing `nbdev_export()` cell.
"""
import ast, json, re
from pathlib import Path

import pytest

NBS = Path(__file__).resolve().parents[1]/'nbs'
NOTEBOOKS = sorted(NBS.glob('*.ipynb'))
_EXPORT = re.compile(r'^#\|\s*(export|exports|exporti)\b', re.M)
_HARMLESS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

def _cells(nb): return json.loads(nb.read_text())['cells']

def _code(src:str)->str:
    "Cell source without IPython magics and shell lines, which ast cannot parse."
    return '\n'.join('' if l.lstrip().startswith(('%', '!')) else l for l in src.splitlines())

def _executed_by_docs_and_not_only_imports(src:str)->bool:
    if _EXPORT.search(src) or 'nbdev_export()' in src: return False
    try: tree = ast.parse(_code(src))
    except SyntaxError: return False
    if not any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree)): return False
    def ok(node):
        if isinstance(node, _HARMLESS): return True
        if isinstance(node, ast.Try):   # try: import x / except ImportError: fallback import or assignment
            return all(isinstance(n, (ast.Import, ast.ImportFrom, ast.Assign, ast.Pass)) for n in node.body + [s for h in node.handlers for s in h.body])
        return False
    return not all(ok(n) for n in tree.body)

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.stem)
def test_import_cells_only_import(nb):
    bad = [i for i, c in enumerate(_cells(nb)) if c['cell_type'] == 'code' and _executed_by_docs_and_not_only_imports(''.join(c['source']))]
    assert not bad, f"{nb.name}: cells {bad} mix imports with other code; the docs build executes them. Put the imports in a cell of their own."

@pytest.mark.parametrize('nb', [n for n in NOTEBOOKS if n.name != 'index.ipynb'], ids=lambda p: p.stem)
def test_chapter_form(nb):
    cells = _cells(nb)
    first = ''.join(cells[0]['source'])
    assert cells[0]['cell_type'] == 'markdown' and re.match(r'#\s+\S', first), f"{nb.name}: first cell must be '# Title'"
    assert re.search(r'^>\s+\S', first, re.M), f"{nb.name}: the first cell needs a '> one-line summary'"
    assert any(re.search(r'^#\|\s*default_exp\s+\w+', ''.join(c['source']), re.M) for c in cells), f"{nb.name}: no default_exp"
    assert 'nbdev_export()' in ''.join(cells[-1]['source']), f"{nb.name}: the last cell should call nbdev_export()"

_ABS_PATH = re.compile(r'(?<![\w/.~])/(work|root|home|Users|mnt|opt)/[\w.-]+')

@pytest.mark.parametrize('doc', NOTEBOOKS + [NBS.parent/'README.md'], ids=lambda p: p.stem)
def test_no_build_machine_paths(doc):
    "Sources cite papers and files by title and repository path, never by a path on the machine the book was built on (saved outputs may show temporary folders)."
    texts = [doc.read_text()] if doc.suffix == '.md' else [''.join(c['source']) for c in _cells(doc)]
    bad = sorted({m.group(0) for t in texts for m in _ABS_PATH.finditer(t)})
    assert not bad, f"{doc.name} contains absolute paths of the build machine: {bad}"
