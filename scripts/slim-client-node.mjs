#!/usr/bin/env node
// Lets @kubernetes/client-node's KubeConfig load without the generated API client, which meshsync
// never calls (it makes its own requests). client-node's dist/config.js takes two names from
// './gen/index.js', and that index loads the whole generated API: ~50 MB of RSS, ~23 MB of heap
// and ~0.5 s of start-up. This rewrites that one import to the two files that define the names.
// The image build runs it on its production node_modules; it stops the build (exit 1) when the
// file no longer looks as expected or loading it still loads the generated API (its index, apis
// or models), rather than ship unslimmed.
//
//   node scripts/slim-client-node.mjs [node_modules]     (default: ./node_modules)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const GEN_INDEX_IMPORT = "import { createConfiguration, ServerConfiguration, } from './gen/index.js';";
const DIRECT_IMPORTS = "import { createConfiguration } from './gen/configuration.js';\nimport { ServerConfiguration } from './gen/servers.js';";

/** The URL of every module a fresh node loads to import `file`, as a resolve hook records them. */
function modulesLoadedBy(file) {
  const dir = mkdtempSync(join(tmpdir(), 'slim-client-node-'));
  const record = join(dir, 'loaded');
  const hooks = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(${JSON.stringify(record)}, resolved.url + '\\n');
  return resolved;
}`;
  const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
  try {
    writeFileSync(record, '');
    execFileSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(file).href)});`], { stdio: ['ignore', 'ignore', 'inherit'] });
    return readFileSync(record, 'utf8').split('\n').filter(Boolean);
  } catch {
    fail(`${file} does not load (node's error above)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function fail(message) {
  console.error(`slim-client-node: ${message}`);
  process.exit(1);
}

const dist = join(resolve(process.argv[2] ?? 'node_modules'), '@kubernetes', 'client-node', 'dist');
const config = join(dist, 'config.js');
if (!existsSync(config)) fail(`${config} not found: is @kubernetes/client-node installed there?`);
const text = readFileSync(config, 'utf8');
if (text.includes(GEN_INDEX_IMPORT)) writeFileSync(config, text.replace(GEN_INDEX_IMPORT, DIRECT_IMPORTS));
else if (!text.includes(DIRECT_IMPORTS)) fail(`${config} does not import from './gen/index.js' as client-node 1.4 does; review this script for the installed version`);
const generated = modulesLoadedBy(config).filter((url) => /\/dist\/gen\/(index\.js$|apis\/|models\/)/.test(url));
if (generated.length > 0) fail(`${config} still loads the generated API: ${generated.slice(0, 3).join(', ')}${generated.length > 3 ? ', ...' : ''}`);
console.error(`slim-client-node: ${config} no longer loads the generated API`);
