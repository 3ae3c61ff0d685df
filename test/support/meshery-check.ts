/**
 * Drives test/meshery's Go program: Meshery Server's side of the wire, with Meshery's own modules.
 * `listen` subscribes as the server does and reports every decoded message; `parseWithGoMeshSync`
 * runs Go MeshSync's own model conversion on objects, for byte-for-byte diffs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { buildMesheryCheck } from '../meshery/build.ts';
import { sleep } from './wait.ts';

/** One KubernetesResource as the Go side decoded it (see `Object` in test/meshery/main.go). */
export interface DecodedObject {
  kind: string;
  apiVersion: string;
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  cluster_id: string;
  /** What meshsync's model.SetID computes: Meshery's key. */
  id: string;
  decoded: boolean;
  error?: string;
  unknown?: string;
}

export type CheckLine =
  | { kind: 'ready' }
  | { kind: 'event'; eventType: string; objectType: string; object: DecodedObject }
  | { kind: 'store'; object: DecodedObject }
  | { kind: 'meta'; objectType: string; version: string }
  | { kind: 'reply'; subject: string; objectType: string; text: string }
  | { kind: 'sent'; command: string; error?: string }
  | ({ kind: 'verdict' } & Verdict)
  | { kind: 'fatal'; error: string };

interface Counts {
  messages: number;
  decoded: number;
  failed: number;
  unknownFields: number;
  byEventType: Record<string, number>;
  byObjectType: Record<string, number>;
  errors: string[];
}

export interface Verdict {
  core: Counts;
  objectsSeen: number;
  unstableIds: string[];
  /** Meshery's table: every object's row after the events and store replies, by SetID id. */
  view: DecodedObject[];
  store: Counts;
  storeBatches: Record<string, number>;
  storeNonArray: number;
  storeIds: string[];
  metaVersions: string[];
  replies: Record<string, string[]>;
}

export interface MesheryCheck {
  readonly lines: CheckLine[];
  /** Sends a command (store, resync, meta, raw <json>) and waits until the Go side published it. */
  send(command: string): Promise<void>;
  verdict(): Promise<Verdict>;
  stop(): Promise<void>;
}

let binary: string | undefined;

/** Builds the checker if needed (minutes on a fresh machine; cached outside the clone after). */
export function mesheryCheckBinary(): string {
  return (binary ??= buildMesheryCheck());
}

export async function startMesheryCheck(url: string, options: { token?: string } = {}): Promise<MesheryCheck> {
  const child: ChildProcess = spawn(mesheryCheckBinary(), ['listen', '-url', url, ...(options.token ? ['-token', options.token] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: CheckLine[] = [];
  let partial = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop()!;
    for (const part of parts) if (part) lines.push(JSON.parse(part) as CheckLine);
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const waitLine = async (from: number, match: (line: CheckLine) => boolean, what: string, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = lines.slice(from).find(match);
      if (found) return found;
      const fatal = lines.find((line) => line.kind === 'fatal');
      if (fatal || child.exitCode !== null) throw new Error(`meshery-check ended before ${what}: ${JSON.stringify(fatal)} ${stderr}`);
      if (Date.now() > deadline) throw new Error(`meshery-check: timed out waiting for ${what}\n${stderr}`);
      await sleep(20);
    }
  };
  await waitLine(0, (line) => line.kind === 'ready', 'its subscriptions');
  return {
    lines,
    async send(command) {
      const from = lines.length;
      child.stdin!.write(`${command}\n`);
      const sent = await waitLine(from, (line) => line.kind === 'sent', `"${command}" to be sent`);
      if (sent.kind === 'sent' && sent.error) throw new Error(`meshery-check could not send ${command}: ${sent.error}`);
    },
    async verdict() {
      const from = lines.length;
      child.stdin!.write('verdict\n');
      const { kind: _kind, ...verdict } = await waitLine(from, (line) => line.kind === 'verdict', 'a verdict') as { kind: 'verdict' } & Verdict;
      return verdict;
    },
    async stop() {
      if (child.exitCode === null) child.stdin!.end('quit\n');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Go MeshSync's `ParseList` + `json.Marshal` of the broker.Message, one output line per input. */
export async function parseWithGoMeshSync(inputs: readonly { type: string; cluster_id: string; object: unknown }[]): Promise<string[]> {
  const child = spawn(mesheryCheckBinary(), ['parse'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.stdin.end(inputs.map((input) => JSON.stringify(input)).join('\n') + '\n');
  const code = await exited;
  if (code !== 0) throw new Error(`meshery-check parse exited with ${code}`);
  return out.split('\n').filter(Boolean);
}

/** Meshery's key of an object: base64 of `<cluster>.<kind>.<apiVersion>.<namespace>.<name>` (meshsync model.SetID). */
export function mesheryId(clusterId: string, object: { kind?: string; apiVersion?: string; metadata: { namespace?: string; name: string } }): string {
  return Buffer.from(`${clusterId}.${object.kind}.${object.apiVersion}.${object.metadata.namespace ?? ''}.${object.metadata.name}`).toString('base64');
}
