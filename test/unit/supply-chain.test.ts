import { expect } from 'chai';
import { readFileSync } from 'node:fs';

/** The lockfile as npm ci reads it: every installed package pinned by version and content hash. */
const lock = JSON.parse(readFileSync(new URL('../../package-lock.json', import.meta.url), 'utf8')) as {
  lockfileVersion: number;
  packages: Record<string, { version?: string; integrity?: string; resolved?: string; link?: boolean }>;
};

describe('supply chain (finding 11)', () => {
  it('locks every installed package by version and sha512 integrity, so npm ci refuses a tarball that differs', () => {
    expect(lock.lockfileVersion).to.be.at.least(3);
    const installed = Object.entries(lock.packages).filter(([path, entry]) => path.startsWith('node_modules/') && !entry.link);
    expect(installed.length).to.be.greaterThan(100);
    const loose = installed.filter(([, entry]) => !entry.version || !/^sha512-[A-Za-z0-9+/]{86}==$/.test(entry.integrity ?? '')).map(([path]) => path);
    expect(loose, 'packages without a sha512 integrity').to.deep.equal([]);
    // A resolved URL, where npm wrote one, points at the public registry (no git or tarball URLs).
    const elsewhere = installed.filter(([, entry]) => entry.resolved !== undefined && !entry.resolved.startsWith('https://registry.npmjs.org/')).map(([path]) => path);
    expect(elsewhere).to.deep.equal([]);
  });
});
