import { existsSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type DefaultTheme, type MarkdownRenderer } from 'vitepress';

// Written by scripts/website-reference.ts, so new plugins show up without editing this file.
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const sidebarFile = fileURLToPath(new URL('../reference/sidebar.json', import.meta.url));
const referenceSidebar: DefaultTheme.SidebarItem[] = existsSync(sidebarFile)
  ? JSON.parse(readFileSync(sidebarFile, 'utf8'))
  : [];

// Strict builds (CI, once everything has landed) fail on a code include whose file is missing;
// otherwise the page shows a marked placeholder, which `check.mjs` reports as a warning.
const strict = process.env.MESHSYNC_WEBSITE_STRICT === '1';

function tolerateMissingSnippets(md: MarkdownRenderer): void {
  const fence = md.renderer.rules.fence!;
  md.renderer.rules.fence = (tokens, idx, options, env, self) => {
    const src = (tokens[idx] as { src?: [string, string?] }).src;
    if (!strict && src && !existsSync(src[0])) {
      const shown = relative(repoRoot, src[0]);
      console.warn(`website: warning: ${shown} does not exist yet (included by ${env.relativePath})`);
      return `<div class="warning custom-block missing-in-build"><p class="custom-block-title">Not in this build yet</p><p><code>${md.utils.escapeHtml(shown)}</code> is not in this build yet; this code appears here when it lands.</p></div>\n`;
    }
    return fence(tokens, idx, options, env, self);
  };
}

export default defineConfig({
  title: 'meshsync',
  description: 'Keeps an outside system in sync with a Kubernetes cluster: watch, filter, redact, publish to NATS.',
  lang: 'en-US',
  cleanUrls: true,
  lastUpdated: false,
  // The site must work offline: no external fonts, scripts or images (the check fails on any external request).
  head: [['link', { rel: 'icon', type: 'image/svg+xml', href: '/logo.svg' }]],
  srcExclude: ['README.md', 'screenshots/**'],
  markdown: { lineNumbers: false, config: tolerateMissingSnippets },
  themeConfig: {
    logo: '/logo.svg',
    search: { provider: 'local' },
    nav: [
      { text: 'Guide', link: '/guide/getting-started', activeMatch: '^/guide/' },
      { text: 'Reference', link: '/reference/config', activeMatch: '^/reference/' },
      { text: 'Plugins', link: '/reference/plugins/', activeMatch: '^/reference/plugins/' },
    ],
    sidebar: {
      '/': [
        {
          text: 'Guide',
          items: [
            { text: 'Getting started', link: '/guide/getting-started' },
            { text: 'Concepts', link: '/guide/concepts' },
            { text: 'Configuration', link: '/guide/configuration' },
            { text: 'Writing a plugin', link: '/guide/writing-a-plugin' },
            { text: 'Deploying', link: '/guide/deploying' },
            { text: 'Installing with Helm', link: '/guide/install-helm' },
            { text: 'Installing with meshsync install', link: '/guide/install-meshsync' },
            { text: 'Installing with kustomize', link: '/guide/install-kustomize' },
            { text: 'Operating', link: '/guide/operating' },
            { text: 'Replacing MeshSync in Meshery (operator)', link: '/guide/meshery' },
          ],
        },
        { text: 'Reference', items: referenceSidebar },
      ],
    },
    outline: { level: [2, 3] },
    footer: { message: 'Apache-2.0 licensed.' },
  },
});
