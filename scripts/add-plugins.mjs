// Adds the third-party plugin packages named by the image's PLUGINS build argument (npm package
// specs separated by spaces: names, name@version, tarballs under image-plugins/) to the production
// node_modules, beside the built-ins. Run by the Dockerfile with node: the base may have no shell.
import { execFileSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';

const specs = (process.env.PLUGINS ?? '').split(/\s+/).filter(Boolean);
if (specs.length === 0) process.exit(0);

const npm = [join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'), '/usr/local/lib/node_modules/npm/bin/npm-cli.js'].find(existsSync);
if (npm === undefined) throw new Error('add-plugins: npm is not in this build image');
// --legacy-peer-deps: a plugin's peer dependency on meshsync is this very package, never one from the registry.
execFileSync(process.execPath, [npm, 'install', '--omit=dev', '--no-save', '--legacy-peer-deps', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=warn', ...specs], { stdio: 'inherit' });
// A plugin imports 'meshsync': that is /app, the package these node_modules belong to.
if (!existsSync('node_modules/meshsync')) symlinkSync('..', 'node_modules/meshsync', 'dir');
console.log(`add-plugins: ${specs.join(' ')}`);
