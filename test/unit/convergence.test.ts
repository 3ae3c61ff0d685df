import { expect } from 'chai';
import type { KubeObject } from '../../core/index.ts';
import { compareResourceVersions, compareWithCluster, PlainConsumer, RegressionTracker, summarize } from '../support/convergence.ts';

const pod = (name: string, uid: string, rv: string): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'shop', uid, resourceVersion: rv } });
const wire = (type: string, object: KubeObject) => JSON.stringify({ type, object, cluster_id: 'c1' });

describe('convergence (test support)', () => {
  it('compares resourceVersions as etcd revisions, not as text', () => {
    expect(compareResourceVersions('9', '10')).to.equal(-1);
    expect(compareResourceVersions('10', '10')).to.equal(0);
    expect(compareResourceVersions('100000000000000000001', '100000000000000000000')).to.equal(1);
    expect(compareResourceVersions('abc', '10')).to.equal(undefined);
  });

  it('a plain consumer applies events in order and ignores resync markers', () => {
    const consumer = new PlainConsumer();
    consumer.apply(wire('ADDED', pod('a', 'u-a', '1')));
    consumer.apply(wire('ADDED', pod('b', 'u-b', '2')));
    consumer.apply(JSON.stringify({ type: 'RESYNC_BEGIN', resync_id: 'r1', cluster_id: 'c1' }));
    consumer.apply(wire('MODIFIED', pod('a', 'u-a', '3')));
    consumer.apply(JSON.stringify({ type: 'RESYNC_END', resync_id: 'r1', cluster_id: 'c1', count: 1 }));
    // A framed consumer would drop b here (the resync did not mention it); a plain one keeps it.
    expect([...consumer.view.keys()].sort()).to.deep.equal(['u-a', 'u-b']);
    expect(consumer.view.get('u-a')?.metadata.resourceVersion).to.equal('3');
    expect(consumer.ignored).to.equal(2);
    consumer.apply(new TextEncoder().encode(wire('DELETED', pod('b', 'u-b', '4'))));
    expect([...consumer.view.keys()]).to.deep.equal(['u-a']);
    expect(consumer.regressions).to.deep.equal([]);
  });

  it('records every resourceVersion that went backwards for an object, a re-announcement after its DELETED included', () => {
    const tracker = new RegressionTracker();
    for (const rv of ['5', '7', '6', '7', '9']) tracker.observe(pod('a', 'u-a', rv));
    tracker.observe(pod('b', 'u-b', '3'));
    expect(tracker.regressions).to.deep.equal([{ key: 'u-a', from: '7', to: '6' }]);
    const consumer = new PlainConsumer();
    consumer.applyEvent('ADDED', pod('c', 'u-c', '10'));
    consumer.applyEvent('DELETED', pod('c', 'u-c', '12'));
    consumer.applyEvent('MODIFIED', pod('c', 'u-c', '11')); // a held MODIFIED after the DELETED: a ghost
    expect(consumer.regressions).to.deep.equal([{ key: 'u-c', from: '12', to: '11' }]);
    expect(consumer.view.has('u-c')).to.equal(true);
  });

  it('reports missing, extra and stale objects against the cluster, by uid', () => {
    // The cluster's list items carry no kind: matched by uid all the same.
    const truth: KubeObject[] = [
      { metadata: { name: 'same', namespace: 'shop', uid: 'u1', resourceVersion: '10' } },
      { metadata: { name: 'newer', namespace: 'shop', uid: 'u2', resourceVersion: '20' } },
      { metadata: { name: 'absent', namespace: 'shop', uid: 'u3', resourceVersion: '30' } },
    ];
    const view = [pod('same', 'u1', '10'), pod('newer', 'u2', '15'), pod('ghost', 'u4', '5')];
    const report = compareWithCluster(view, truth);
    expect(report.missing).to.deep.equal(['object shop/absent (u3)']);
    expect(report.extra).to.deep.equal(['Pod shop/ghost (u4)']);
    expect(report.stale).to.deep.equal(['object shop/newer (u2): rv 15 < 20']);
    expect(report.converged).to.equal(false);
    expect(summarize(report)).to.equal('1 missing (object shop/absent (u3)); 1 extra (Pod shop/ghost (u4)); 1 stale (object shop/newer (u2): rv 15 < 20); 0 regressions');
  });

  it('is converged only with nothing missing, extra, stale or regressed; include narrows both sides', () => {
    const truth = [pod('a', 'u1', '10'), { metadata: { name: 'cm', namespace: 'kube-system', uid: 'u9', resourceVersion: '1' } }];
    const view = [pod('a', 'u1', '10')];
    expect(compareWithCluster(view, truth).missing).to.have.length(1);
    const onlyShop = (object: KubeObject) => object.metadata.namespace === 'shop';
    expect(compareWithCluster(view, truth, { include: onlyShop }).converged).to.equal(true);
    const regressed = compareWithCluster(view, truth, { include: onlyShop, regressions: [{ key: 'u1', from: '10', to: '9' }] });
    expect(regressed.converged).to.equal(false);
    expect(summarize(regressed)).to.contain('1 regressions ({"key":"u1","from":"10","to":"9"})');
  });
});
