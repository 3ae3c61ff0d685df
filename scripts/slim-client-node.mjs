#!/usr/bin/env node
// Lets @kubernetes/client-node's KubeConfig load without the generated API client, which meshsync
// never calls (it makes its own requests). client-node's dist/config.js takes two names from
// './gen/index.js', and that index loads the whole generated API: ~50 MB of RSS, ~23 MB of heap
// and ~0.5 s of start-up. This rewrites that one import to the two files that define the names.
// The image build runs it on its production node_modules; it stops the build (exit 1) when the
// file no longer looks as expected or the index is still reachable, rather than ship unslimmed.
//
//   node scripts/slim-client-node.mjs [node_modules]     (default: ./node_modules)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const GEN_INDEX_IMPORT = "import { createConfiguration, ServerConfiguration, } from './gen/index.js';";
const DIRECT_IMPORTS = "import { createConfiguration } from './gen/configuration.js';\nimport { ServerConfiguration } from './gen/servers.js';";

/** Every file reachable from `entry` through relative static imports and re-exports. */
function reachable(entry) {
  const seen = new Set();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s*['"](\.{1,2}\/[^'"]+)['"]/gm)) {
      pending.push(resolve(dirname(file), specifier));
    }
  }
  return seen;
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
if (reachable(config).has(join(dist, 'gen', 'index.js'))) fail(`${config} still reaches gen/index.js through another import`);
console.error(`slim-client-node: ${config} no longer loads the generated API`);
