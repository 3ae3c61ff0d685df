import { expect } from 'chai';
import { closestNames, didYouMean, editDistance } from '../../core/suggest.ts';

describe('did you mean', () => {
  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('nast', 'nats')).to.equal(1);
    expect(editDistance('kitten', 'sitting')).to.equal(3);
  });

  it('offers the names a typo or a short form is close to, nearest first, and nothing unrelated', () => {
    expect(closestNames('formt', ['format', 'color'])).to.deep.equal(['format']);
    expect(closestNames('valdate', ['run', 'validate', 'print-config', 'snapshot'])).to.deep.equal(['validate']);
    expect(closestNames('snap', ['run', 'validate', 'snapshot'])).to.deep.equal(['snapshot']);
    expect(closestNames('clusterid', ['clusterId', 'plugins'])).to.deep.equal(['clusterId']);
    expect(closestNames('frobnicate', ['run', 'validate', 'snapshot'])).to.deep.equal([]);
    expect(closestNames('nast', ['file', 'nats'])).to.deep.equal(['nats']);
  });

  it('words the hint for an error message, or says nothing', () => {
    expect(didYouMean('--tiemout', ['--timeout', '--out'], (name) => name)).to.equal('; did you mean --timeout?');
    expect(didYouMean('zzz', ['run'])).to.equal('');
  });
});
