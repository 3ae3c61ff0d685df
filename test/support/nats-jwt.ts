/**
 * Decentralised NATS auth for tests: an operator, an account and a user, with the JWTs nats-server
 * checks (signed here with nkeys, as `nsc` would) and the user's creds file in `nsc`'s format.
 */
import { createHash } from 'node:crypto';
import { nkeys } from '@nats-io/transport-node';

type KeyPair = ReturnType<typeof nkeys.createUser>;

const base64url = (data: string | Uint8Array) => Buffer.from(data).toString('base64url');

function sign(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const header = base64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));
  const claims: Record<string, unknown> = { iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject, nats: { ...nats, version: 2 } };
  claims.jti = createHash('sha256').update(JSON.stringify(claims)).digest('base64url').slice(0, 52);
  const body = `${header}.${base64url(JSON.stringify(claims))}`;
  return `${body}.${base64url(issuer.sign(new TextEncoder().encode(body)))}`;
}

export interface DecentralizedAuth {
  /** nats-server config text: the operator, and the account preloaded in a memory resolver. */
  readonly serverConfig: string;
  /** A creds file's text for the user. */
  readonly creds: string;
  /** The user's seed, to check it never shows up in logs. */
  readonly userSeed: string;
}

export function decentralizedAuth(): DecentralizedAuth {
  const operator = nkeys.createOperator();
  const account = nkeys.createAccount();
  const user = nkeys.createUser();
  const unlimited = { subs: -1, data: -1, payload: -1 };
  const operatorJwt = sign(operator, operator.getPublicKey(), 'test-operator', { type: 'operator' });
  const accountJwt = sign(operator, account.getPublicKey(), 'test-account', {
    type: 'account', limits: { ...unlimited, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 }, default_permissions: { pub: {}, sub: {} },
  });
  const userJwt = sign(account, user.getPublicKey(), 'meshsync', { type: 'user', pub: {}, sub: {}, ...unlimited });
  const userSeed = new TextDecoder().decode(user.getSeed());
  return {
    serverConfig: `operator: ${operatorJwt}\nresolver: MEMORY\nresolver_preload: { ${account.getPublicKey()}: ${accountJwt} }`,
    creds: [
      '-----BEGIN NATS USER JWT-----', userJwt, '------END NATS USER JWT------', '',
      '************************* IMPORTANT *************************',
      'NKEY Seed printed below can be used to sign and prove identity.', '',
      '-----BEGIN USER NKEY SEED-----', userSeed, '------END USER NKEY SEED------', '',
    ].join('\n'),
    userSeed,
  };
}
