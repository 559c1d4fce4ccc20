"""Build the documentation site without Quarto: nbdev's notebook processing, then smalldocs.

`nbdev_docs` is the command where Quarto is installed. Here Quarto cannot be installed, so this
script runs the same nbdev steps that `nbdev_docs` runs before calling Quarto (nbdev.yml, the
module index, processing every notebook into `_proc/`), then renders `_proc/` with smalldocs,
which reads the same `_quarto.yml`. smalldocs renders saved outputs only: it never runs code.

The site works with no network: smalldocs points pages with maths at KaTeX on a CDN, so the build
copies KaTeX's `dist/` (npm's `katex` package, the version smalldocs names, installed once into
`.cache/katex`) into `site_libs/katex/` and points every page there; it drops the theme's web-font
`@import`, and fails if any page or stylesheet still loads a script, style, font or image from
another host. Links to other sites (`<a href>`) stay.

    python scripts/build_site.py            # site in _docs/
    python scripts/build_site.py --out DIR  # site in DIR
"""
import argparse, html.parser, json, os, re, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KATEX_CACHE = ROOT/'.cache'/'katex'   # npm --prefix: KaTeX lands in node_modules/katex/dist

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
    make_offline(out)
    print(f"site written to {out}")
    return out

# ---------------------------------------------------------------- a site that needs no network

class OfflineError(RuntimeError): "The site cannot be made to work without a network."

def katex_dist(version:str, cache:Path=KATEX_CACHE)->Path:
    "KaTeX `version`'s `dist/` folder: from `cache` when it is there, else installed there with npm."
    dist = cache/'node_modules'/'katex'/'dist'
    def found():
        try: return json.loads((dist.parent/'package.json').read_text()).get('version') == version and (dist/'katex.min.js').exists()
        except (OSError, ValueError): return False
    if found(): return dist
    npm = shutil.which('npm')
    if not npm:
        raise OfflineError(f"the site needs KaTeX {version} in site_libs, and neither npm nor a copy in {dist} is there.\n"
                           f"  Install npm (apt-get install npm), or put npm's katex@{version} package there "
                           f"(npm install --prefix {cache} katex@{version}).")
    cmd = [npm, 'install', '--prefix', str(cache), '--no-audit', '--no-fund', '--silent', f'katex@{version}']
    try: subprocess.run(cmd, check=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        raise OfflineError(f"`{' '.join(cmd)}` failed ({e}); the site needs KaTeX {version} in site_libs: "
                           f"reach the npm registry, or put the package into {dist.parent}") from e
    if not found(): raise OfflineError(f"npm ran, but KaTeX {version} is not in {dist}")
    return dist

def bundle_katex(site:Path, dist:Path|None=None)->int:
    "Copy KaTeX into `site/site_libs/katex` and point pages there instead of the CDN; the number of pages changed."
    from smalldocs.layout import KATEX          # e.g. https://cdn.jsdelivr.net/npm/katex@0.16.11/dist
    m = re.search(r'katex@([\d.]+)', KATEX)
    if not m: raise OfflineError(f"cannot read KaTeX's version from smalldocs' KATEX = {KATEX!r}")
    pages = [p for p in site.rglob('*.html') if KATEX in p.read_text(encoding='utf-8')]
    if not pages: return 0                     # no maths anywhere: nothing to bundle
    dist = dist or katex_dist(m.group(1))
    dest = site/'site_libs'/'katex'
    shutil.rmtree(dest, ignore_errors=True)
    (dest/'contrib').mkdir(parents=True)
    for f in ('katex.min.css', 'katex.min.js', 'contrib/auto-render.min.js'): shutil.copy2(dist/f, dest/f)
    shutil.copytree(dist/'fonts', dest/'fonts')   # all of them: the css names woff2, woff and ttf for each face
    if (dist.parent/'LICENSE').exists(): shutil.copy2(dist.parent/'LICENSE', dest/'LICENSE')
    css = (dest/'katex.min.css').read_text(encoding='utf-8')
    missing = [u for u in css_urls(css) if not (dest/u).exists()]
    if missing: raise OfflineError(f"katex.min.css names fonts that {dist} lacks: {missing[:5]}")
    for p in pages:
        rel = Path(os.path.relpath(dest, p.parent)).as_posix()   # katex in site_libs, seen from the page's folder
        p.write_text(p.read_text(encoding='utf-8').replace(KATEX + '/', rel + '/'), encoding='utf-8')
    return len(pages)

_EXTERNAL = re.compile(r'^\s*(https?:)?//', re.I)
_FETCHED_RELS = {'stylesheet', 'icon', 'shortcut', 'apple-touch-icon', 'mask-icon', 'manifest', 'preload',
                 'prefetch', 'modulepreload', 'preconnect', 'dns-prefetch', 'prerender'}

class _Resources(html.parser.HTMLParser):
    "The URLs a page makes the browser fetch by itself: scripts, styles, fonts, images, frames, media."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls, self._in = [], None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'link' and _FETCHED_RELS & set((a.get('rel') or '').lower().split()): self._add(tag, a.get('href'))
        if tag in ('script', 'img', 'iframe', 'frame', 'embed', 'audio', 'video', 'source', 'track', 'input'): self._add(tag, a.get('src'))
        if tag in ('img', 'source'):
            for part in (a.get('srcset') or '').split(','): self._add(tag, part.strip().split(' ')[0])
        if tag == 'video': self._add(tag, a.get('poster'))
        if tag == 'object': self._add(tag, a.get('data'))
        if tag in ('image', 'use'): self._add(tag, a.get('href') or a.get('xlink:href'))   # svg
        if a.get('style'): self._css(tag, a['style'])
        self._in = tag if tag in ('style', 'script') else None
    def handle_data(self, data):
        if self._in == 'style': self._css('style', data)
        if self._in == 'script':   # ES module imports from other hosts (smalldocs' mermaid is one)
            for u in re.findall(r'\bimport\b[^\'"]*[\'"]([^\'"]+)[\'"]', data): self._add('script import', u)
    def handle_endtag(self, tag): self._in = None
    def _css(self, tag, css):
        for u in css_urls(css): self._add(tag, u)
    def _add(self, tag, url):
        if url and _EXTERNAL.match(url): self.urls.append((tag, url.strip()))

def css_urls(css:str)->list[str]:
    "Every URL a stylesheet loads: `url(...)`, quoted or not, and `@import \"...\"`."
    pat = r'''url\(\s*(?:"([^"]*)"|'([^']*)'|([^'")\s]*))\s*\)|@import\s+(?:"([^"]*)"|'([^']*)')'''
    return [next(g for g in m.groups() if g is not None) for m in re.finditer(pat, css)]

def external_resources(site:Path)->dict[str, list[str]]:
    "Every script, style, font, image or frame that a page or stylesheet of `site` loads from another host, by file."
    found = {}
    for p in sorted(site.rglob('*.html')):
        r = _Resources(); r.feed(p.read_text(encoding='utf-8')); r.close()
        if r.urls: found[p.relative_to(site).as_posix()] = [f'<{t}> {u}' for t, u in r.urls]
    for p in sorted(site.rglob('*.css')):
        urls = [u for u in css_urls(p.read_text(encoding='utf-8')) if _EXTERNAL.match(u)]
        if urls: found[p.relative_to(site).as_posix()] = [f'css {u}' for u in urls]
    return found

def drop_web_fonts(site:Path)->list[str]:
    "Remove `@import`s of web fonts from other hosts (the Bootswatch themes import Google Fonts): the theme's own fallback fonts show instead."
    dropped = []
    imp = re.compile(r'''@import\s+(?:url\(\s*["']?(?P<u1>[^"')\s]+)["']?\s*\)|["'](?P<u2>[^"']+)["'])[^;]*;''')
    for p in site.rglob('*.css'):
        css = p.read_text(encoding='utf-8')
        def drop(m):
            url = m.group('u1') or m.group('u2')
            if not _EXTERNAL.match(url): return m.group(0)
            dropped.append(f'{p.relative_to(site).as_posix()}: {url}'); return ''
        new = imp.sub(drop, css)
        if new != css: p.write_text(new, encoding='utf-8')
    return dropped

def make_offline(site:Path, dist:Path|None=None):
    "Make `site` need no network: bundle KaTeX, drop web-font imports, then check that nothing loads from another host."
    n = bundle_katex(site, dist)
    if n: print(f"KaTeX bundled into site_libs/katex for {n} pages with maths")
    for d in drop_web_fonts(site): print(f"dropped a web font loaded from another host (the theme's fallback fonts show): {d}")
    left = external_resources(site)
    if left:
        lines = '\n'.join(f'  {f}: {u}' for f, us in left.items() for u in us)
        raise OfflineError(f"the site still loads from other hosts, so it does not work offline:\n{lines}")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', type=Path, default=None, help='folder for the site (default: _docs)')
    ap.add_argument('--no-check', action='store_true', help='skip `smalldocs check`')
    args = ap.parse_args()
    try: build(args.out, check=not args.no_check)
    except OfflineError as e: sys.exit(f"build_site: {e}")
