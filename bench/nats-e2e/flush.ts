/**
 * Throughput of the confirmed-publish strategy: 500 publishes + one flush per batch (what the sink
 * does) against a flush per message, and against fire-and-forget (no confirmation at all).
 * Run: npx tsx bench/nats-e2e/flush.ts   (needs nats-server; reports events/s and ratios).
 */
import { connect } from '@nats-io/transport-node';
import { makeObject, POD } from '../../testing/index.ts';
import { encodeEvent } from '../../plugins/nats/encode.ts';
import { startNatsServer } from '../../test/support/nats-server.ts';

const server = await startNatsServer();
const nc = await connect({ servers: server.url });
const sub = await connect({ servers: server.url });
sub.subscribe('bench', { callback: () => undefined });
await sub.flush();
const events = Array.from({ length: 500 }, (_, i) => ({ type: 'ADDED' as const, resource: POD, object: makeObject(POD, `p${i}`, {}, { spec: { containers: [{ name: 'c', image: 'nginx:1.27' }] } }), clusterId: 'bench', observedAt: 0 }));
const maxPayload = nc.info!.max_payload;

async function run(name: string, batches: number, publishBatch: () => Promise<void>): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < batches; i++) await publishBatch();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const rate = (batches * events.length) / seconds;
  console.log(`${name.padEnd(34)} ${Math.round(rate).toLocaleString().padStart(10)} events/s`);
  return rate;
}

const encodeAll = () => events.map((e) => encodeEvent(e, { withHeaders: true, maxPayload }));
const batched = await run('500 publishes + 1 flush (sink)', 100, async () => {
  for (const m of encodeAll()) nc.publish('bench', m.payload, { headers: m.headers });
  await nc.flush();
});
const perMessage = await run('flush after every publish', 10, async () => {
  for (const m of encodeAll()) {
    nc.publish('bench', m.payload, { headers: m.headers });
    await nc.flush();
  }
});
const unconfirmed = await run('no confirmation (at-most-once)', 100, async () => {
  for (const m of encodeAll()) nc.publish('bench', m.payload, { headers: m.headers });
});
await nc.flush();
console.log(`batched / per-message flush: ${(batched / perMessage).toFixed(1)}x; batched / unconfirmed: ${(batched / unconfirmed).toFixed(2)}`);
await nc.close();
await sub.close();
await server.dispose();
