// Test-only OpenID Provider for the Go package internal/oidctest.
//
// Usage: node server.mjs [config.json]   (without an argument the config is
// read from the first line of stdin). It listens on 127.0.0.1:<random port>,
// prints "LISTENING <issuer>" once ready and exits when stdin closes or on
// SIGTERM/SIGINT, so a dead parent never leaves it running.
//
// Config: {
//   "clients": [ <OAuth client metadata: client_id, client_secret,
//                 token_endpoint_auth_method, grant_types, redirect_uris,
//                 post_logout_redirect_uris, scope> ],
//   "resource": "urn:...",        // JWT access-token audience (default below)
//   "accessTokenTTL": 0           // seconds; 0 = oidc-provider defaults
// }
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

import Provider, { errors } from 'oidc-provider';

const stdin = createInterface({ input: process.stdin });
stdin.on('close', () => process.exit(0));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

const config = JSON.parse(process.argv[2]
  ? readFileSync(process.argv[2], 'utf8')
  : await new Promise((resolve) => { stdin.once('line', resolve); }));

const resource = config.resource || 'urn:erpnet:domainapi';
const resourceScopes = 'read update';

// One fresh RS256 signing key per run.
const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const clients = (config.clients || []).map((c) => ({
  ...c,
  // A client without authorization_code must not keep the default
  // response_types ["code"].
  response_types: (c.grant_types || ['authorization_code']).includes('authorization_code') ? ['code'] : [],
}));

const server = createServer();
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [{ ...jwk, kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' }] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', 'profile', 'email', ...resourceScopes.split(' ')],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
  // Put the scope claims into the ID token: the access token is for the
  // resource server, not for userinfo.
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: id, preferred_username: id, email: `${id}@example.test`, email_verified: true };
      },
    };
  },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, indicator) {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return {
          scope: resourceScopes,
          audience: resource,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
          ...(config.accessTokenTTL > 0 ? { accessTokenTTL: config.accessTokenTTL } : {}),
        };
      },
    },
  },
});

// Fail fast on invalid client metadata (otherwise checked on first use).
for (const { client_id: id } of clients) await provider.Client.find(id);

server.on('request', provider.callback());
console.log(`LISTENING ${issuer}`);
