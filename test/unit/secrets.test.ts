import { expect } from 'chai';
import { createLogger } from '../../core/log.ts';
import { MASK, redactSecretsInText, redactUrlCredentials, withoutJsonExcerpt } from '../../core/secrets.ts';

describe('redactUrlCredentials', () => {
  const cases: [string, string, string][] = [
    ['keeps the user and masks the password', 'nats://app:Pw-1@nats:4222', `nats://app:${MASK}@nats:4222`],
    ['masks a bare token whole', 'nats://T0KEN@nats:4222', `nats://${MASK}@nats:4222`],
    ['masks every URL of a comma-separated list', 'nats://a:PwOne@h:4299,nats://b:PwTwo@h:4298', `nats://a:${MASK}@h:4299,nats://b:${MASK}@h:4298`],
    ['masks a URL without a scheme, as BROKER_URL takes it', 'alice:NoSchemePw@127.0.0.1:4301', `alice:${MASK}@127.0.0.1:4301`],
    ['masks a password holding a slash', 'nats://admin:pa/ssSecret@nats:4222', `nats://admin:${MASK}@nats:4222`],
    ['masks a password holding an @', 'nats://admin:p@ssSecret@nats:4222', `nats://admin:${MASK}@nats:4222`],
    ['masks URLs inside a sentence', 'cannot reach nats://a:Pw@h:1, retrying (was tls://k3y@h:2)', `cannot reach nats://a:${MASK}@h:1, retrying (was tls://${MASK}@h:2)`],
    ['leaves a URL without credentials alone', 'nats://nats.meshery.svc:4222', 'nats://nats.meshery.svc:4222'],
    ['leaves an image digest alone', 'registry.example.com/web@sha256:0123abcd', 'registry.example.com/web@sha256:0123abcd'],
  ];
  it('takes time in proportion to the text, whatever it holds', () => {
    // One regex over the text would rescan a run without `@` from each of its characters: minutes here.
    const text = `${'a'.repeat(200_000)} ${'b'.repeat(200_000)} nats://u:pw@h`;
    expect(redactUrlCredentials(text).endsWith(`nats://u:${MASK}@h`)).to.equal(true);
    expect(redactSecretsInText(`${' "x'.repeat(50_000)} is not valid JSON`)).to.be.a('string');
  });

  for (const [what, text, want] of cases) {
    it(what, () => {
      expect(redactUrlCredentials(text)).to.equal(want);
      expect(redactUrlCredentials(want), 'masking twice changes nothing').to.equal(want);
    });
  }
});

describe('logs', () => {
  it('mask the credentials a logged error quotes, in its message, its stack and its cause', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false, destination: { write: (line: string) => lines.push(line) } as never });
    const cause = new Error('dial nats://app:CausePw@nats:4222 refused');
    logger.error({ err: new Error('cannot publish: token=Tok3n-9 to nats://a:ErrPw@h:1,nats://b:ErrPw2@h:2', { cause }) }, 'publish failed');
    logger.warn({ err: new Error('cannot publish: token=Tok3n-9 to nats://a:ErrPw@h:1,nats://b:ErrPw2@h:2', { cause }) }, 'publish failed; retrying');
    expect(lines).to.have.length(2);
    for (const line of lines) for (const secret of ['CausePw', 'Tok3n-9', 'ErrPw', 'ErrPw2']) expect(line).to.not.include(secret);
    const record = JSON.parse(lines[0]);
    expect(record.err.message).to.equal(`cannot publish: token=${MASK} to nats://a:${MASK}@h:1,nats://b:${MASK}@h:2: dial nats://app:${MASK}@nats:4222 refused`);
    expect(record.err.stack).to.include(`nats://a:${MASK}@h:1`);
    expect(JSON.parse(lines[1]).err.causes).to.deep.equal([`dial nats://app:${MASK}@nats:4222 refused`]);
  });

  it('log a warning\'s error in one line (type, code, message, causes), its stack only at debug level', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false, destination: { write: (line: string) => lines.push(line) } as never });
    const error = Object.assign(new Error('cannot reach the API server', { cause: new Error('connect ECONNREFUSED 127.0.0.1:1') }), { code: 'MESHSYNC_KUBE_UNREACHABLE' });
    logger.warn({ err: error }, 'listing pods; retrying');
    expect(JSON.parse(lines[0]).err).to.deep.equal({ type: 'Error', code: 'MESHSYNC_KUBE_UNREACHABLE', message: 'cannot reach the API server', causes: ['connect ECONNREFUSED 127.0.0.1:1'] });
    logger.level = 'debug';
    logger.warn({ err: error }, 'listing pods; retrying');
    expect(JSON.parse(lines[1]).err.stack).to.match(/^Error: cannot reach the API server\n\s+at /);
  });

  it('log an error whose details refer to themselves, without throwing', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false, destination: { write: (line: string) => lines.push(line) } as never });
    const details: Record<string, unknown> = { url: 'nats://a:Pw@h' };
    details.self = details;
    logger.error({ err: Object.assign(new Error('boom'), { details }) }, 'failed');
    expect(JSON.parse(lines[0]).err.details.url).to.equal(`nats://a:${MASK}@h`);
  });
});

describe('redactSecretsInText', () => {
  it('masks key=value pairs, also at the end of a longer name and with quoted keys', () => {
    for (const [text, want] of [
      ['bad password=s3cret here', `bad password=${MASK} here`],
      ['access_token=abc123&x=1', `access_token=${MASK}`],
      ['client_secret: abc123', `client_secret: ${MASK}`],
      ['api_key=zzz', `api_key=${MASK}`],
      ['{"password":"hunter2","user":"app"}', `{"password":${MASK},"user":"app"}`],
      ['monkey=banana', 'monkey=banana'],
    ]) expect(redactSecretsInText(text)).to.equal(want);
  });
});

describe('withoutJsonExcerpt', () => {
  it('drops the text V8 quotes from JSON it could not parse, keeping what went wrong', () => {
    let message = '';
    try {
      JSON.parse('{"kind":"Secret","data":{"password":UzNDUkVULVZBTFVF}}');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message, 'V8 quotes the text (the premise)').to.include('UzNDUk');
    expect(withoutJsonExcerpt(message)).to.equal("Unexpected token 'U' (the text is not shown)");
    expect(redactSecretsInText(`watch of secrets.v1.: ${message}`)).to.not.include('UzNDUk');
  });
});
