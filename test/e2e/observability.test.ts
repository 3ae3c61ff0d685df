// The chart's alerts and dashboard (deploy/helm/meshery-meshsync/files/) with the real Prometheus:
// promtool checks and unit-tests the rules; a Prometheus scraping a running meshsync (simulated
// cluster, real nats-server) loads them and answers every dashboard query with series.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startSimulator, type KubeSimulator } from '../../testing/simulator/index.ts';
import { seedDemoCluster, startChurn } from '../../testing/simulator/demo.ts';
import { ROOT, startMeshsync, type MeshsyncProcess } from '../support/meshsync-process.ts';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.ts';
import { promtool, startPrometheus, type PrometheusHandle } from '../support/prometheus.ts';
import { freePort, untilAsync } from '../support/wait.ts';

const FILES = join(ROOT, 'deploy', 'helm', 'meshery-meshsync', 'files');
const RULES = join(FILES, 'alerts.rules.yaml');
const RULE_TESTS = join(ROOT, 'test', 'fixtures', 'prometheus', 'alerts.test.yaml');

type RuleTests = { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] };
type Dashboard = { panels: { title: string; targets: { expr: string }[] }[] };

describe('the alert rules (files/alerts.rules.yaml)', () => {
  it('pass promtool check rules', async function () {
    this.timeout(30_000);
    expect(await promtool(['check', 'rules', RULES])).to.match(/SUCCESS: 7 rules found/);
  });

  it('pass their promtool unit tests', async function () {
    this.timeout(30_000);
    expect(await promtool(['test', 'rules', RULE_TESTS], join(ROOT, 'test', 'fixtures', 'prometheus'))).to.contain('SUCCESS');
  });

  it('have a unit test where each alert fires and one where it does not', () => {
    const alerts = (parse(readFileSync(RULES, 'utf8')) as { groups: { rules: { alert?: string }[] }[] })
      .groups.flatMap((g) => g.rules).map((r) => r.alert).filter(Boolean);
    const cases = (parse(readFileSync(RULE_TESTS, 'utf8')) as RuleTests).tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of alerts) {
      const mine = cases.filter((c) => c.alertname === alert);
      expect(mine.some((c) => c.exp_alerts.length > 0), `${alert} fires in a test`).to.equal(true);
      expect(mine.some((c) => c.exp_alerts.length === 0), `${alert} stays quiet in a test`).to.equal(true);
    }
  });
});

describe('the Grafana dashboard (files/dashboard.json) against a real Prometheus scraping meshsync', function () {
  let sim: KubeSimulator;
  let stopChurn: () => void;
  let nats: NatsServerHandle;
  let meshsync: MeshsyncProcess;
  let prometheus: PrometheusHandle;
  let dir: string;
  const dashboard = JSON.parse(readFileSync(join(FILES, 'dashboard.json'), 'utf8')) as Dashboard;

  before(async function () {
    this.timeout(120_000);
    dir = mkdtempSync(join(tmpdir(), 'meshsync-observability-'));
    sim = await startSimulator();
    seedDemoCluster(sim);
    stopChurn = startChurn(sim, { intervalMs: 200 });
    // RBAC without configmaps, so the errors panel and the forbidden alert have a 403 to show.
    sim.forbid('configmaps.v1.');
    await sim.writeKubeconfig(join(dir, 'kubeconfig'));
    nats = await startNatsServer();
    const port = await freePort();
    meshsync = startMeshsync({
      dir,
      config: {
        plugins: [
          ['meshsync:kubernetes', { kubeconfig: join(dir, 'kubeconfig') }],
          'meshsync:nats',
          ['meshsync:metrics', { port, host: '127.0.0.1' }],
        ],
      },
      env: { BROKER_URL: nats.url },
    });
    await meshsync.waitForLog(/serving \/metrics/);
    prometheus = await startPrometheus({ targets: [`127.0.0.1:${port}`], ruleFiles: [RULES] });
    // rate() needs two scrapes with published events in between.
    await untilAsync(async () => (await prometheus.query('count_over_time(meshsync_events_published_total[1m])')).some((s) => Number(s.value[1]) >= 3),
      'three scrapes of published events', 60_000);
  });

  after(async function () {
    this.timeout(30_000);
    await prometheus?.dispose();
    await meshsync?.stop();
    await nats?.dispose();
    stopChurn?.();
    await sim?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('has the panels the issue asks for', () => {
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const metric of ['meshsync_events_published_total', 'meshsync_watched_resources_total', 'meshsync_broker_connected',
      'meshsync_queue_oldest_event_age_seconds', 'meshsync_watch_errors_total', 'meshsync_events_dropped_total']) {
      expect(exprs, metric).to.contain(metric);
    }
  });

  it('gets at least one series for every query of every panel', async function () {
    this.timeout(30_000);
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) {
        // Grafana's own variable, as Grafana substitutes it for a 1 s scrape interval; any other `$` is a variable this test cannot fill.
        const query = expr.replaceAll('$__rate_interval', '1m');
        expect(query, `${panel.title}: ${expr}`).not.to.contain('$');
        const series = await prometheus.query(query);
        expect(series, `${panel.title}: ${expr}`).to.have.length.greaterThan(0);
      }
    }
  });

  it('shows what the simulated cluster holds and that the broker is connected', async () => {
    const broker = await prometheus.query('min by (instance) (meshsync_broker_connected)');
    expect(broker.map((s) => s.value[1])).to.deep.equal(['1']);
    const pods = await prometheus.query('sum by (resource) (meshsync_watched_resources_total{resource="pods.v1."})');
    expect(Number(pods[0].value[1])).to.be.greaterThan(0);
    const watchErrors = await prometheus.query('sum by (resource, reason) (meshsync_watch_errors_total)');
    expect(watchErrors.map((s) => s.metric)).to.deep.include({ resource: 'configmaps.v1.', reason: 'forbidden' });
    // A forbidden resource does not hold the initial sync: MeshSyncResourceForbidden alone reports it.
    const initialSync = await prometheus.query('meshsync_initial_sync_seconds');
    expect(Number(initialSync[0].value[1])).to.be.greaterThan(0);
  });

  it('has Prometheus load the alert rules and hold the forbidden resource\'s alert pending, and no other', async function () {
    this.timeout(30_000);
    const alerts = async () => (await prometheus.api<{ alerts: { labels: Record<string, string>; state: string }[] }>('alerts')).alerts;
    await untilAsync(async () => (await alerts())
      .some((a) => a.labels.alertname === 'MeshSyncResourceForbidden' && a.labels.resource === 'configmaps.v1.' && a.state === 'pending'),
    'MeshSyncResourceForbidden pending for configmaps.v1.', 20_000);
    expect((await alerts()).map((a) => `${a.labels.alertname} ${a.labels.resource ?? ''}`)).to.deep.equal(['MeshSyncResourceForbidden configmaps.v1.']);
    const groups = (await prometheus.api<{ groups: { rules: { name: string; health: string }[] }[] }>('rules')).groups;
    const rules = groups.flatMap((g) => g.rules);
    expect(rules).to.have.length(7);
    expect(rules.filter((r) => r.health !== 'ok')).to.deep.equal([]);
  });
});
