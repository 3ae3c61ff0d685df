// Checks the built site as a reader sees it: serves .vitepress/dist on a free 127.0.0.1 port, opens
// every page in headless Chromium and fails on a broken internal link or anchor, a console error, a
// failed or external request; takes screenshots and tries the search box. Run: npm run check.
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, mkdirSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = fileURLToPath(new URL('.', import.meta.url));
const dist = join(here, '.vitepress', 'dist');
const screenshots = join(here, 'screenshots');
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SEARCH_TERM = 'whitelist';
// --strict: a page part marked missing-in-build (a plugin or example not written yet) fails the check; else it is a warning.
const strict = process.argv.includes('--strict');
const warnings = [];
const SCREENSHOT_PAGES = { home: '/', reference: '/reference/config', concepts: '/guide/concepts' };

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.woff2': 'font/woff2', '.json': 'application/json', '.txt': 'text/plain', '.ico': 'image/x-icon',
};

/** Maps a URL path to a file as a static host with clean URLs would (`/guide/x` → `guide/x.html`). */
function fileFor(pathname) {
  const clean = decodeURIComponent(pathname).replace(/\/+$/, '/');
  const candidates = clean.endsWith('/') ? [`${clean}index.html`] : [clean, `${clean}.html`, `${clean}/index.html`];
  for (const candidate of candidates) {
    const file = join(dist, candidate);
    if (!file.startsWith(dist)) return undefined;
    if (existsSync(file) && statSync(file).isFile()) return file;
  }
  return undefined;
}

function serve() {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const file = fileFor(url.pathname);
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end(existsSync(join(dist, '404.html')) ? readFileSync(join(dist, '404.html')) : 'not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function htmlPages(dir = dist) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...htmlPages(path));
    else if (name.endsWith('.html') && name !== '404.html') {
      const rel = relative(dist, path).split(sep).join('/');
      out.push(`/${rel.replace(/(^|\/)index\.html$/, '$1').replace(/\.html$/, '')}`);
    }
  }
  return out.sort();
}

/** The page a link points to, as the key pages are stored under (`/guide/x`, `/reference/plugins/`). */
function pageKey(pathname) {
  const path = decodeURIComponent(pathname).replace(/\.html$/, '').replace(/\/index$/, '/');
  return path === '' ? '/' : path;
}

async function main() {
  if (!existsSync(dist)) throw new Error(`no built site at ${dist}: run npm run build first`);
  if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
  const started = Date.now();
  const failures = [];
  const server = await serve();
  const origin = `http://127.0.0.1:${server.address().port}`;
  const userDataDir = mkdtempSync(join(tmpdir(), 'meshsync-site-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  try {
    // Nothing may leave the machine: any request to another origin is blocked and reported.
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(origin) || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
      failures.push(`external request blocked: ${url} (from ${route.request().frame().url()})`);
      return route.abort();
    });
    const page = context.pages()[0] ?? (await context.newPage());
    let current = '';
    page.on('console', (msg) => { if (msg.type() === 'error') failures.push(`${current}: console error: ${msg.text()}`); });
    page.on('pageerror', (error) => failures.push(`${current}: uncaught exception: ${error.message}`));
    page.on('requestfailed', (req) => {
      if (!req.url().startsWith(origin)) return; // reported by the route above
      // Navigating to the next page cancels VitePress's prefetches; a missing file shows up as an HTTP status instead.
      if (req.failure()?.errorText === 'net::ERR_ABORTED') return;
      failures.push(`${current}: request failed: ${req.url()} (${req.failure()?.errorText})`);
    });
    page.on('response', (res) => { if (res.status() >= 400) failures.push(`${current}: HTTP ${res.status()} for ${res.url()}`); });

    const queue = htmlPages();
    const known = new Set(queue);
    const anchors = new Map(); // page key → ids on it
    const links = []; // { from, page, hash, href }
    while (queue.length > 0) {
      const path = queue.shift();
      current = path;
      const response = await page.goto(origin + path, { waitUntil: 'networkidle' });
      if (!response || response.status() !== 200) {
        anchors.set(path, null);
        continue;
      }
      const found = await page.evaluate(() => ({
        ids: [...document.querySelectorAll('[id], a[name]')].map((el) => el.id || el.getAttribute('name')),
        hrefs: [...document.querySelectorAll('a[href]')].map((a) => a.href),
        missing: [...document.querySelectorAll('.missing-in-build')].map((el) => el.innerText.replace(/\s+/g, ' ').trim()),
      }));
      for (const message of found.missing) (strict ? failures : warnings).push(`${path}: ${message}`);
      anchors.set(path, new Set(found.ids));
      for (const href of found.hrefs) {
        const url = new URL(href);
        if (url.origin !== origin) continue;
        const key = pageKey(url.pathname);
        links.push({ from: path, page: key, hash: decodeURIComponent(url.hash.slice(1)), href: url.pathname + url.hash });
        if (!known.has(key) && !/\.[a-z0-9]+$/i.test(key)) {
          known.add(key);
          queue.push(key);
        }
      }
    }
    const reported = new Set();
    for (const link of links) {
      const ids = anchors.get(link.page);
      let problem;
      if (ids === undefined && /\.[a-z0-9]+$/i.test(link.page)) problem = fileFor(link.page) ? undefined : 'no such file';
      else if (!ids) problem = 'no such page';
      else if (link.hash && !ids.has(link.hash)) problem = `no #${link.hash} on ${link.page}`;
      const line = problem && `${link.from}: broken link ${link.href}: ${problem}`;
      if (line && !reported.has(line)) {
        reported.add(line);
        failures.push(line);
      }
    }

    rmSync(screenshots, { recursive: true, force: true });
    mkdirSync(screenshots, { recursive: true });
    for (const [name, path] of Object.entries(SCREENSHOT_PAGES)) {
      current = path;
      await page.goto(origin + path, { waitUntil: 'networkidle' });
      await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: name !== 'home' });
    }

    current = '/ (search)';
    await page.goto(origin + '/', { waitUntil: 'networkidle' });
    const searchButton = page.locator('#local-search button, .VPNavBarSearch button').first();
    if ((await searchButton.count()) > 0) {
      await searchButton.click();
      const input = page.locator('.VPLocalSearchBox input');
      await input.waitFor({ timeout: 10_000 });
      await input.fill(SEARCH_TERM);
      const results = page.locator('.VPLocalSearchBox .results li');
      try {
        await results.first().waitFor({ timeout: 10_000 });
        await page.screenshot({ path: join(screenshots, 'search.png') });
      } catch {
        failures.push(`search: typing "${SEARCH_TERM}" showed no result`);
      }
    }

    for (const warning of warnings) console.warn(`website check: warning: ${warning}`);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (failures.length > 0) {
      console.error(`website check FAILED: ${failures.length} problem(s) on ${anchors.size} pages (${seconds}s):`);
      for (const failure of failures) console.error(`  - ${failure}`);
      process.exitCode = 1;
    } else {
      console.log(`website check passed: ${anchors.size} pages, ${links.length} internal links and anchors, no console error or failed request, search finds "${SEARCH_TERM}" (${seconds}s); screenshots in ${relative(process.cwd(), screenshots) || '.'}`);
    }
  } finally {
    await context.close();
    server.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`website check FAILED: ${error.stack ?? error}`);
  process.exitCode = 1;
});
