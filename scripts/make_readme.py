"""Make README.md from nbs/index.ipynb without Quarto, or check that it is up to date.

`nbdev_readme` (run by `nbdev_docs`) renders index.ipynb to GitHub markdown with Quarto. Where
Quarto is absent this script does the same job with nbdev's own notebook processing (the
processors `nbdev_docs` applies: directives, hidden cells, front matter) followed by nbconvert's
markdown exporter. Links to chapter notebooks point into nbs/ so they work on GitHub.

    python scripts/make_readme.py           # write README.md
    python scripts/make_readme.py --check   # exit 1 when README.md differs from index.ipynb
"""
import argparse, re, sys, tempfile
from pathlib import Path

def render_readme()->str:
    "README.md text rendered from the processed `index.ipynb`."
    import nbformat, yaml
    from nbconvert import MarkdownExporter
    from nbdev.config import get_config
    from nbdev.processors import FilterDefaults
    from nbdev.serve_drv import exec_nb
    cfg = get_config()
    src = cfg.nbs_path/cfg.readme_nb
    with tempfile.TemporaryDirectory() as d:
        dst = Path(d)/src.name
        exec_nb(src, dst, FilterDefaults)   # nbdev's processing, as for the site
        nb = nbformat.read(dst, as_version=4)
    front = {}
    if nb.cells and nb.cells[0].cell_type == 'raw' and nb.cells[0].source.lstrip().startswith('---'):
        front = yaml.safe_load(nb.cells.pop(0).source.strip().strip('-')) or {}
    body, _ = MarkdownExporter(exclude_input_prompt=True, exclude_output_prompt=True).from_notebook_node(nb)
    # Chapter links: `NN_name.ipynb` in the book becomes `nbs/NN_name.ipynb` in the repository.
    body = re.sub(r'\]\((\d\d\w*\.ipynb)\)', lambda m: f'](nbs/{m.group(1)})', body)
    body = re.sub(r'\n{3,}', '\n\n', body).strip()
    head = f"# {front.get('title', cfg.lib_name)}\n\n"
    if front.get('description'): head += f"> {front['description']}\n\n"
    return head + body + '\n'

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--check', action='store_true', help='compare with README.md instead of writing it')
    args = ap.parse_args()
    from nbdev.config import get_config
    readme = get_config().config_path/'README.md'
    text = render_readme()
    if args.check:
        if not readme.exists() or readme.read_text() != text:
            print(f"README.md is not what nbs/index.ipynb renders to: run `python scripts/make_readme.py`", file=sys.stderr)
            sys.exit(1)
        print("README.md matches nbs/index.ipynb")
    else:
        readme.write_text(text); print(f"wrote {readme}")

if __name__ == '__main__': main()
