/**
 * The receiving end (a child of the bench driver): subscribes to `bench.>`, counts messages per
 * subject for the phase the driver announced, and reads the write stamp (`bench/stamp`, in µs of
 * the monotonic clock, which all processes of the machine share) to compute the latency.
 * Only the stamp's bytes are looked at: the subscriber must not be the bottleneck.
 */
import { connect } from '@nats-io/transport-node';

export interface PhaseCommand { cmd: 'phase'; subject: string; expect: number; latency: boolean }
export interface EndCommand { cmd: 'end'; subject: string }
export type SubscriberMessage =
  | { type: 'ready' }
  | { type: 'ack' }
  | { type: 'done'; subject: string; at: number }
  | { type: 'stats'; subject: string; count: number; lastAt: number; latenciesUs: number[] };

interface Phase { expect: number; count: number; lastAt: number; latencies?: number[] }

const STAMP = Buffer.from('"bench/stamp":"');
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const send = (message: SubscriberMessage) => process.send!(message);

const nc = await connect({ servers: process.argv[2], name: 'bench-subscriber' });
const phases = new Map<string, Phase>();
nc.subscribe('bench.>', {
  callback: (_error, msg) => {
    const at = nowUs();
    const phase = phases.get(msg.subject);
    if (phase === undefined) return;
    phase.count++;
    phase.lastAt = at;
    if (phase.latencies) {
      const data = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
      const i = data.indexOf(STAMP);
      if (i >= 0) {
        let stamp = 0;
        for (let j = i + STAMP.length; data[j] >= 48 && data[j] <= 57; j++) stamp = stamp * 10 + data[j] - 48;
        phase.latencies.push(at - stamp);
      }
    }
    if (phase.count === phase.expect) send({ type: 'done', subject: msg.subject, at });
  },
});
await nc.flush();
process.on('message', (command: PhaseCommand | EndCommand) => {
  if (command.cmd === 'phase') {
    phases.set(command.subject, { expect: command.expect, count: 0, lastAt: 0, latencies: command.latency ? [] : undefined });
    send({ type: 'ack' });
  } else {
    const phase = phases.get(command.subject);
    phases.delete(command.subject);
    send({ type: 'stats', subject: command.subject, count: phase?.count ?? 0, lastAt: phase?.lastAt ?? 0, latenciesUs: phase?.latencies ?? [] });
  }
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
