"""Build the documentation site without Quarto: nbdev's notebook processing, then smalldocs.

`nbdev_docs` is the command where Quarto is installed. Here Quarto cannot be installed, so this
script runs the same nbdev steps that `nbdev_docs` runs before calling Quarto (nbdev.yml, the
module index, processing every notebook into `_proc/`), then renders `_proc/` with smalldocs,
which reads the same `_quarto.yml`. smalldocs renders saved outputs only: it never runs code.

    python scripts/build_site.py            # site in _docs/
    python scripts/build_site.py --out DIR  # site in DIR
"""
import argparse, json, re, shutil, subprocess, sys
from pathlib import Path

def _front_matter(nb:dict)->dict:
    "The YAML front matter nbdev writes into the first raw cell of a processed notebook."
    import yaml
    for c in nb['cells'][:2]:
        src = ''.join(c['source'])
        if c['cell_type'] == 'raw' and src.lstrip().startswith('---'):
            return yaml.safe_load(src.strip().strip('-')) or {}
    return {}

def _use_output_names(cache:Path):
    "Rename `_proc/NN_name.ipynb` to its `output-file` (as Quarto names the page) and fix links to it."
    renames = {}
    for nb_path in sorted(cache.glob('*.ipynb')):
        out = _front_matter(json.loads(nb_path.read_text())).get('output-file')
        if out and Path(out).stem != nb_path.stem: renames[nb_path.name] = Path(out).stem + '.ipynb'
    for old, new in renames.items(): (cache/old).rename(cache/new)
    for nb_path in cache.glob('*.ipynb'):   # smalldocs names pages after files, so `output-file` has done its job
        nb = json.loads(nb_path.read_text())
        c = nb['cells'][0] if nb['cells'] else None
        if c and c['cell_type'] == 'raw' and 'output-file:' in ''.join(c['source']):
            c['source'] = re.sub(r'^output-file: .*\n', '', ''.join(c['source']), flags=re.M)
            nb_path.write_text(json.dumps(nb, indent=1))
    pat = re.compile(r'(?<![\w.-])(' + '|'.join(map(re.escape, renames)) + r')(?=[)#"\'\s]|$)') if renames else None
    if pat is None: return renames
    sub = lambda s: pat.sub(lambda m: renames[m.group(1)], s)
    for nb_path in cache.glob('*.ipynb'):
        nb = json.loads(nb_path.read_text())
        for c in nb['cells']:
            if c['cell_type'] == 'markdown': c['source'] = sub(''.join(c['source']))
        nb_path.write_text(json.dumps(nb, indent=1))
    for yml in cache.glob('*.yml'): yml.write_text(sub(yml.read_text()))
    return renames

def build(out:Path|None=None, check:bool=True, n_workers:int=2)->Path:
    "Process the notebooks into `_proc/` and render the site into `out` (default: settings' doc_path)."
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml
    from nbdev.doclinks import _build_modidx
    from nbdev.serve import proc_nbs
    cfg = get_config()
    refresh_quarto_yml()       # nbs/nbdev.yml from settings.ini (title, site-url, output-dir)
    _build_modidx()            # reid_lit/_modidx.py, used for links between pages
    cache = proc_nbs(cfg.nbs_path, n_workers=n_workers, force=True)  # _proc/: notebooks with nbdev's processors applied
    _use_output_names(cache)
    smalldocs = [sys.executable, '-m', 'smalldocs.cli']
    if check:
        # Lists the keys and syntax smalldocs ignores; informative, so it does not stop the build.
        res = subprocess.run(smalldocs + ['check', str(cache)], capture_output=True, text=True)
        print(res.stdout + res.stderr)
    subprocess.run(smalldocs + ['render', '--quiet', str(cache)], check=True)
    built = cache/cfg.doc_path.name
    out = Path(out) if out else cfg.doc_path
    if out.resolve() != built.resolve():
        shutil.rmtree(out, ignore_errors=True)
        shutil.move(str(built), str(out))
    print(f"site written to {out}")
    return out

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', type=Path, default=None, help='folder for the site (default: _docs)')
    ap.add_argument('--no-check', action='store_true', help='skip `smalldocs check`')
    args = ap.parse_args()
    build(args.out, check=not args.no_check)
