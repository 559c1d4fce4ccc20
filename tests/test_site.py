"""The documentation site, built without Quarto and read in headless Chromium.

Builds the `_quarto.yml` site with `scripts/build_site.py` (nbdev's processing, then smalldocs) into
a temporary folder, serves it on 127.0.0.1, and checks every chapter page as a reader sees it:
its title, the API reference of its exported names (show_doc tables with parameter comments),
its saved figures, no visible nbdev directives, working sidebar links in the book's order, rendered
maths, search, and no console errors. The site must work with no network: Chromium resolves no
host but 127.0.0.1 and every request to another host is aborted, and a page that even tries one
fails; KaTeX comes from the site's own `site_libs/katex`, which the build bundles. A screenshot of
one chapter goes to `test_outputs/site/`.
"""
import functools, http.server, importlib, json, re, shutil, sys, threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
OUT = ROOT/'test_outputs'/'site'
sys.path.insert(0, str(ROOT/'scripts'))


def page_name(nb:Path)->str:
    "The page Quarto (and our build) writes for a notebook: number prefix dropped, lower case."
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(nb).name

def notebooks():
    return sorted(NBS.glob('*.ipynb'))

def chapters():
    return [nb for nb in notebooks() if nb.name != 'index.ipynb']

def nb_json(nb:Path)->dict: return json.loads(nb.read_text())

def nb_title(nb:Path)->str:
    first = ''.join(nb_json(nb)['cells'][0]['source'])
    m = re.search(r'^#\s+(.+)$', first, re.M)
    assert m, f"{nb.name}: the first cell must start with '# Title'"
    return m.group(1).strip()

def nb_module(nb:Path)->str|None:
    for c in nb_json(nb)['cells']:
        m = re.search(r'^#\|\s*default_exp\s+(\S+)', ''.join(c['source']), re.M)
        if m: return m.group(1)
    return None

def nb_image_count(nb:Path)->int:
    "Number of figures saved in the notebook's outputs (shown cells only)."
    n = 0
    for c in nb_json(nb)['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] != 'code' or re.search(r'^#\|\s*(hide|include:\s*false|output:\s*false)', src, re.M): continue
        n += sum(any(k in o.get('data', {}) for k in ('image/png', 'image/jpeg', 'image/svg+xml')) for o in c.get('outputs', []))
    return n

def has_math(nb:Path)->bool:
    return any(c['cell_type'] == 'markdown' and '$' in ''.join(c['source']) for c in nb_json(nb)['cells'])

def exported_names(module:str)->list[str]:
    "Exported functions and classes of `reid_lit.module` (nbdev draws no API reference for constants)."
    import inspect
    mod = importlib.import_module(f'reid_lit.{module}')
    return [n for n in getattr(mod, '__all__', []) if not n.startswith('_')
            and (inspect.isfunction(getattr(mod, n, None)) or inspect.isclass(getattr(mod, n, None)))
            and getattr(getattr(mod, n), '__module__', '') == mod.__name__]


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope='session')
def site(tmp_path_factory):
    "Build the site once into a temporary folder."
    import build_site
    out = tmp_path_factory.mktemp('site')/'_docs'
    build_site.build(out, check=True)
    return out

@pytest.fixture(scope='session')
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True); t.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

@pytest.fixture(scope='session')
def browser():
    from playwright.sync_api import sync_playwright
    exe = shutil.which('chromium') or shutil.which('chromium-browser')
    assert exe, "Chromium is needed for the browser check: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=[
            '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
            '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
            # no network but the test server: no host resolves, so nothing can slip past the page's route
            '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'])
        yield b
        b.close()

def is_local(url:str, base:str)->bool:
    "Whether `url` is the test server's (or needs no network: data:, blob:, about:)."
    u = urlsplit(url)
    return u.scheme in ('data', 'blob', 'about') or (u.scheme, u.netloc) == tuple(urlsplit(base)[:2])

class Page:
    "One page opened in Chromium with no network but the test server: its console errors and the external requests it tried."
    def __init__(self, browser, url, base):
        self.ctx = browser.new_context(viewport={'width': 1280, 'height': 1000}, service_workers='block')
        self.page = self.ctx.new_page()
        self.errors, self.external = [], []
        self.page.on('console', lambda m: self.errors.append(m.text) if m.type == 'error' else None)
        self.page.on('pageerror', lambda e: self.errors.append(f'page error: {e}'))
        def route(r):
            if is_local(r.request.url, base): return r.continue_()
            self.note_external(r.request.url); return r.abort('blockedbyclient')
        self.ctx.route('**/*', route)                                       # every page of the context, popups too
        self.pending = {}
        def on_request(r):
            if not is_local(r.url, base): self.note_external(r.url)          # seen even if it bypassed the route
            self.pending[r.url] = r
        self.page.on('request', on_request)
        for ev in ('requestfinished', 'requestfailed'): self.page.on(ev, lambda r: self.pending.pop(r.url, None))
        self.response = self.page.goto(url, wait_until='load')             # the document, its scripts, styles and images
        self.ready()
    def ready(self, timeout=60_000):
        "Wait for what the checks read: fonts loaded, every image decoded, KaTeX done with every equation."
        # Not 'networkidle': with request interception Chromium sometimes keeps a finished request
        # pending, and the wait then hangs for the whole timeout although the page is complete.
        try:
            self.page.wait_for_function("""() => document.readyState === 'complete'
                && [...document.images].every(i => i.complete)
                && [...document.querySelectorAll('.math')].every(e => e.querySelector('.katex'))""", timeout=timeout)
            self.page.evaluate('() => document.fonts.ready.then(() => true)')
        except Exception as e:
            raise AssertionError(f"{self.page.url}: not ready after {timeout / 1000:.0f} s ({e}); requests still pending: {list(self.pending)[:10]}; blocked requests to other hosts: {self.external[:10]}") from e
    def note_external(self, url):
        if url not in self.external: self.external.append(url)
    def check_offline(self, name):
        "The page tried no request to another host, and every image on it loaded."
        assert not self.external, f"{name}: the page tried {len(self.external)} requests to other hosts (all blocked): {self.external[:10]}"
        broken = self.page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))")
        assert not broken, f"{name}: images that do not load: {broken}"
    def real_errors(self): return list(self.errors)   # every request is local, so any console error is the page's own
    def close(self): self.ctx.close()

@pytest.fixture(scope='session')
def open_page(browser, server):
    pages = []
    def _open(name):
        p = Page(browser, f'{server}/{name}', server); pages.append(p); return p
    yield _open
    for p in pages: p.close()


# ---------------------------------------------------------------- tests

def test_site_files(site):
    "index.html and one page per notebook, named as Quarto names them; the site title is set."
    assert (site/'index.html').exists()
    missing = [nb.name for nb in notebooks() if not (site/page_name(nb)).exists()]
    assert not missing, f"no page for {missing}; pages: {sorted(p.name for p in site.glob('*.html'))}"
    assert '<title>reid_lit</title>' in (site/'index.html').read_text()

def test_site_is_self_contained(site):
    "KaTeX and its fonts are in the site's site_libs, and no page or stylesheet loads anything from another host."
    katex = site/'site_libs'/'katex'
    for f in ('katex.min.js', 'katex.min.css', 'contrib/auto-render.min.js'):
        assert (katex/f).is_file() and (katex/f).stat().st_size > 1000, f"site_libs/katex/{f} is missing"
    css = (katex/'katex.min.css').read_text()
    fonts = set(re.findall(r'url\((fonts/[^)]+\.woff2)\)', css))
    assert fonts, "katex.min.css names no woff2 fonts"
    missing = sorted(f for f in fonts if not (katex/f).is_file())
    assert not missing, f"KaTeX fonts missing from site_libs/katex: {missing}"
    pages = sorted(site.rglob('*.html'))
    cdn = [p.name for p in pages if 'cdn.jsdelivr.net' in p.read_text()]
    assert not cdn, f"pages that still name the CDN: {cdn}"
    tag = re.compile(r'<(?:script|link|img|iframe|source)\b[^>]*?\b(?:src|href|srcset)=["\']?\s*(?:https?:)?//[^>]*>', re.I)
    external = {p.name: tag.findall(p.read_text())[:3] for p in pages if tag.search(p.read_text())}
    assert not external, f"pages that load from other hosts: {external}"
    imports = {p.relative_to(site).as_posix() for p in site.rglob('*.css') if re.search(r'(@import|url\()\s*["\']?\s*(url\()?["\']?\s*(https?:)?//', p.read_text())}
    assert not imports, f"stylesheets that load from other hosts: {imports}"
    # each page with maths points at KaTeX where it is, seen from the page's folder
    for p in pages:
        for ref in re.findall(r'(?:src|href)="([^"]*katex[^"]*\.(?:js|css))"', p.read_text()):
            assert (p.parent/ref).resolve().is_file(), f"{p.name}: {ref} does not exist"

@pytest.mark.parametrize('nb', chapters(), ids=lambda p: p.stem)
def test_chapter_page(nb, open_page):
    p = open_page(page_name(nb))
    try: _check_chapter_page(nb, p)
    finally: p.close()                                                          # one browser context at a time: the book has many pages

def _check_chapter_page(nb, p):
    assert p.response.ok
    pg = p.page
    # the title, and the site title in the navbar and the tab
    assert pg.locator('h1').first.inner_text().strip() == nb_title(nb)
    assert pg.title().endswith('reid_lit'), pg.title()
    assert pg.locator('.navbar-title').first.inner_text().strip() == 'reid_lit'
    text = pg.locator('main').first.inner_text()
    # nbdev directives never show
    assert not re.search(r'#\|\s*(export|hide|default_exp|exporti|exports|slow|notest|cuda)\b', text), \
        f"{nb.name}: an nbdev directive is visible on the page"
    # the API reference: every exported name has a heading and a parameter table
    mod = nb_module(nb)
    if mod:
        for name in exported_names(mod):
            heading = pg.locator(f'h3:text-is("{name}"), h4:text-is("{name}")')
            assert heading.count() >= 1, f"{nb.name}: no API reference for `{name}`"
        n_tables = pg.evaluate("() => [...document.querySelectorAll('main table')].filter(t => [...t.querySelectorAll('th')].some(h => h.innerText.trim() === 'Details')).length")
        documented = [n for n in exported_names(mod) if _has_params(mod, n)]
        assert n_tables >= len(documented), f"{nb.name}: {n_tables} parameter tables for {len(documented)} documented names"
    # saved figures are shown and load
    n_fig = nb_image_count(nb)
    if n_fig:
        imgs = pg.locator('main img')
        assert imgs.count() >= n_fig, f"{nb.name}: {n_fig} saved figures but {imgs.count()} images on the page"
        broken = pg.evaluate("() => [...document.querySelectorAll('main img')].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))")
        assert not broken, f"{nb.name}: images that do not load: {broken}"
    # maths is rendered by KaTeX, not left as raw LaTeX
    if has_math(nb): _check_math(pg, nb.name)
    p.check_offline(nb.name)
    assert not p.real_errors(), f"{nb.name}: console errors {p.real_errors()}"

def _has_params(mod, name):
    "Whether `name` has documented parameters (then show_doc draws a table)."
    from fastcore.docments import docments
    obj = getattr(importlib.import_module(f'reid_lit.{mod}'), name)
    if not callable(obj): return False
    try: d = docments(obj, full=True)
    except Exception: return False
    d.pop('self', None); d.pop('return', None)
    return any(v.get('docment') for v in d.values())

def _check_math(pg, name):
    n_math = pg.locator('.math').count()
    assert n_math > 0, f"{name}: maths in the notebook but none on the page"
    n_katex = pg.locator('.math .katex').count()
    assert n_katex == n_math, f"{name}: {n_math - n_katex} of {n_math} equations are not rendered by KaTeX"
    raw = pg.evaluate("() => [...document.querySelectorAll('.math')].filter(e => /\\\\\\(|\\\\\\[|\\$\\$/.test(e.innerText)).length")
    assert raw == 0, f"{name}: {raw} equations show raw LaTeX"
    # from the site's own copy of KaTeX, with its fonts
    assert pg.evaluate("() => [...document.scripts].some(s => /site_libs\\/katex\\/katex\\.min\\.js$/.test(s.src))"), f"{name}: KaTeX is not loaded from site_libs/katex"
    faces = pg.evaluate("() => document.fonts.ready.then(f => [...f].filter(x => x.family.includes('KaTeX')).map(x => [x.family, x.status]))")
    assert any(st == 'loaded' for _, st in faces), f"{name}: no KaTeX font loaded: {faces}"
    failed = [f for f, st in faces if st == 'error']
    assert not failed, f"{name}: KaTeX fonts that failed to load: {failed}"

def test_index_page_and_math(open_page):
    p = open_page('index.html')
    assert p.page.locator('h1').first.inner_text().strip() == 'reid_lit'
    _check_math(p.page, 'index')
    p.check_offline('index')
    assert not p.real_errors(), p.real_errors()

def test_sidebar(open_page, site):
    "The sidebar lists the book in sidebar.yml's order, and every link opens a page."
    p = open_page('index.html')
    hrefs = p.page.eval_on_selector_all('#quarto-sidebar a[href$=".html"]', 'els => els.map(e => e.getAttribute("href"))')
    hrefs = [h.split('#')[0].lstrip('./') for h in hrefs]
    sidebar = yaml.safe_load((NBS/'sidebar.yml').read_text())['website']['sidebar']['contents']
    def flat(items):
        for it in items:
            if isinstance(it, str): yield it
            elif isinstance(it, dict) and 'contents' in it: yield from flat(it['contents'])
            elif isinstance(it, dict) and 'href' in it: yield it['href']
    expected = [page_name(Path(f)) for f in flat(sidebar)]
    assert [h for h in hrefs if h in expected] == expected, f"sidebar order {hrefs} != {expected}"
    listed = {f for f in flat(sidebar)}
    unlisted = [nb.name for nb in notebooks() if nb.name not in listed]
    assert not unlisted, f"notebooks missing from nbs/sidebar.yml: {unlisted}"
    for h in expected:
        assert (site/h).exists(), f"sidebar link {h} has no page"
    assert p.page.locator('#quarto-sidebar').is_visible(), "the sidebar is not shown on a wide screen"
    # a section folds and unfolds (Bootstrap's collapse, from site_libs)
    section = p.page.locator('#quarto-sidebar .sidebar-section').first
    sid = section.get_attribute('id')
    toggle = p.page.locator(f'#quarto-sidebar .sidebar-item-toggle[data-bs-target="#{sid}"]').first
    settled = "([el, shown]) => !el.classList.contains('collapsing') && el.classList.contains('show') === shown"
    toggle.click()
    p.page.wait_for_function(settled, arg=[section.element_handle(), False], timeout=10_000)
    assert not section.is_visible(), f"sidebar section {sid} did not fold"
    toggle.click()
    p.page.wait_for_function(settled, arg=[section.element_handle(), True], timeout=10_000)
    assert section.is_visible(), f"sidebar section {sid} did not unfold"
    # follow one link for real: the page opens, with its own entry marked
    last = next(nb for nb in notebooks() if page_name(nb) == expected[-1])
    p.page.locator(f'#quarto-sidebar a[href$="{expected[-1]}"]').first.click()
    p.page.wait_for_load_state('load')
    assert p.page.url.endswith(expected[-1])
    p.ready()
    assert p.page.locator('h1').first.inner_text().strip() == nb_title(last)
    active = p.page.eval_on_selector_all('#quarto-sidebar a.active', 'els => els.map(e => e.getAttribute("href"))')
    assert any(a.endswith(expected[-1]) for a in active), f"the sidebar marks {active}, not {expected[-1]}"
    p.check_offline(f'sidebar -> {expected[-1]}')
    assert not p.real_errors(), p.real_errors()

def _search_target():
    "A name documented in a chapter, to search for, and the page it is on."
    for nb in chapters():
        mod = nb_module(nb)
        for name in (exported_names(mod) if mod else []):
            if len(name) >= 8: return name, page_name(nb)
    pytest.skip("no exported name to search for")

@pytest.mark.parametrize('start', ['index.html', 'chapter'])
def test_search(open_page, start):
    "Search works with no network: the box loads search.json and Fuse from the site, lists hits, and a hit opens its page."
    name, target = _search_target()
    p = open_page(target if start == 'chapter' else start)
    pg = p.page
    assert pg.evaluate('() => typeof window.Fuse === "function"'), "Fuse (site_libs/fuse) did not load: search would fall back to substring matching"
    box = pg.locator('.smalldocs-search input[type="search"]').first
    box.click()
    box.fill(name)
    hits = pg.locator('.smalldocs-search-results.show a.search-result')
    try: hits.first.wait_for(state='visible', timeout=15_000)
    except Exception as e:
        shown = pg.locator('.smalldocs-search-results').first.inner_text()
        raise AssertionError(f"search for {name!r} from {start} showed no results (results box: {shown!r}; errors: {p.errors})") from e
    hrefs = hits.evaluate_all('els => els.map(e => e.getAttribute("href"))')
    want = [h for h in hrefs if h.split('#')[0].endswith(target)]
    assert want, f"search for {name!r} lists {hrefs[:10]}, none on {target}"
    pg.locator(f'.smalldocs-search-results.show a.search-result[href="{want[0]}"]').first.click()
    pg.wait_for_load_state('load')
    assert pg.url.split('#')[0].endswith(target), f"the hit opened {pg.url}, not {target}"
    p.ready()
    p.check_offline(f'search from {start}')
    assert not p.real_errors(), p.real_errors()

def test_screenshot(open_page):
    "A screenshot of one chapter page, for a person to look at."
    chapter = next((nb for nb in chapters() if nb_image_count(nb)), chapters()[0])
    p = open_page(page_name(chapter))
    OUT.mkdir(parents=True, exist_ok=True)
    shot = OUT/f'{chapter.stem}.png'
    p.page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    p.check_offline(chapter.name)
