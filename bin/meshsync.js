#!/usr/bin/env node
// Launcher. The built CLI (dist/, from `npm run build`) when there is one: the npm package and the
// image ship it. In a clone without a build (right after `npm ci`), the TypeScript sources, run in
// this process through tsx (a dev dependency) with the `source` export condition, exactly as
// `npm run meshsync` runs them: `npx meshsync` and `node bin/meshsync.js` work from a fresh clone.
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';

const built = new URL('../dist/cli/main.js', import.meta.url);

async function load() {
  if (existsSync(fileURLToPath(built))) return import(built.href);
  let tsx;
  try {
    tsx = await import('tsx/esm/api');
  } catch {
    process.stderr.write('meshsync: no build in dist/ and no tsx to run the TypeScript sources: run `npm ci` (for the sources) or `npm run build`\n');
    process.exit(1);
  }
  // Packages resolve to their TypeScript (`source`) rather than to a dist/ not built; the config
  // loader reads the conditions from execArgv to resolve plugin packages the same way.
  register('data:text/javascript,export function resolve(s, c, next) { return next(s, { ...c, conditions: [...c.conditions, "source"] }); }');
  process.execArgv.push('--conditions=source');
  tsx.register();
  return import(new URL('../cli/main.ts', import.meta.url).href);
}

const { exit, formatError, main } = await load();
main(process.argv.slice(2)).then(exit, (error) => {
  process.stderr.write(formatError(error));
  return exit(1);
});
