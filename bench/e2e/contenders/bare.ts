/**
 * Contender (a), the limit: a bare script doing the same initial sync as meshsync (LIST in pages
 * of 500, then WATCH from the list's resourceVersion, resumed when the server ends it), parsing
 * each page and each watch line, and publishing each object with the raw NATS client, in
 * meshsync's wire format (kind/apiVersion set, managedFields dropped), so the bytes match.
 * No store, no coalescing, no confirmation (no flush): nothing but parse and stringify.
 *
 *   node bare.js <api-url> <token> <nats-url> <subject> [<ca-file>]   (https when the URL says so)
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { connect } from '@nats-io/transport-node';

const [apiUrl, token, natsUrl, subject, caFile] = process.argv.slice(2);
const api = new URL(apiUrl);
const secure = api.protocol === 'https:';
const agent = secure ? new https.Agent({ keepAlive: true, ca: caFile ? readFileSync(caFile) : undefined }) : new http.Agent({ keepAlive: true });
const nc = await connect({ servers: natsUrl, name: 'bench-bare' });
process.on('SIGTERM', () => process.exit(0));

function request(path: string, onData: (chunk: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).get({ hostname: api.hostname, port: api.port, path, agent, headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' } }, (res) => {
      res.setEncoding('utf8');
      if (res.statusCode !== 200) reject(new Error(`GET ${path}: HTTP ${res.statusCode}`));
      res.on('data', onData);
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function publish(type: string, object: any): void {
  const { managedFields: _dropped, ...metadata } = object.metadata;
  object.metadata = metadata;
  object.kind = 'Pod';
  object.apiVersion = 'v1';
  nc.publish(subject, `{"object":${JSON.stringify(object)},"type":"${type}","cluster_id":"bench"}`);
}

let resourceVersion = '';
let continueToken = '';
do {
  let body = '';
  await request(`/api/v1/pods?limit=500${continueToken ? `&continue=${encodeURIComponent(continueToken)}` : ''}`, (chunk) => (body += chunk));
  const page = JSON.parse(body);
  for (const item of page.items) publish('ADDED', item);
  continueToken = page.metadata.continue ?? '';
  resourceVersion = page.metadata.resourceVersion;
} while (continueToken);

for (;;) {
  let rest = '';
  await request(`/api/v1/pods?watch=1&allowWatchBookmarks=true&resourceVersion=${resourceVersion}`, (chunk) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      if (!line) continue;
      const event = JSON.parse(line);
      resourceVersion = event.object?.metadata?.resourceVersion ?? resourceVersion;
      if (event.type === 'ADDED' || event.type === 'MODIFIED' || event.type === 'DELETED') publish(event.type, event.object);
    }
  });
}
