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
//                 post_logout_redirect_uris, scope; "native": true for
//                 application_type native> ],
//   "resource": "urn:...",        // JWT access-token audience (default below)
//   "accessTokenTTL": 0,          // seconds; 0 = oidc-provider defaults
//   "erpnet": false               // true: mounted as ERP.net serves it (below)
// }
//
// With "erpnet": true the server looks like an ERP.net instance at
// http://127.0.0.1:<port> (the instance root): the provider is mounted under
// /id (issuer <root>/id) with IdentityServer's routes (/connect/authorize,
// /connect/token, /connect/endsession, /connect/revocation,
// /connect/introspect, /connect/userinfo,
// /.well-known/openid-configuration/jwks), /sys/auto-discovery at the root
// answers ERP.net's JSON naming the ID site and the Domain API, and
// /api/domain/odata/ is a stand-in that answers 200 to any request with a
// Bearer token and 401 without. It prints "LISTENING <issuer>".
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

const clients = (config.clients || []).map(({ native, ...c }) => ({
  ...c,
  // A native client's loopback redirect URIs match on any port.
  ...(native ? { application_type: 'native' } : {}),
  // A client without authorization_code must not keep the default
  // response_types ["code"].
  response_types: (c.grant_types || ['authorization_code']).includes('authorization_code') ? ['code'] : [],
}));

const server = createServer();
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const root = `http://127.0.0.1:${server.address().port}`;
const erpnet = config.erpnet === true;
const mount = erpnet ? '/id' : '';
const issuer = root + mount;

// IdentityServer's endpoint paths, as ERP.net serves them under /id.
const erpnetRoutes = {
  authorization: '/connect/authorize',
  token: '/connect/token',
  end_session: '/connect/endsession',
  revocation: '/connect/revocation',
  introspection: '/connect/introspect',
  userinfo: '/connect/userinfo',
  jwks: '/.well-known/openid-configuration/jwks',
};

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
  ...(erpnet ? { routes: erpnetRoutes } : {}),
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

if (!erpnet) {
  server.on('request', provider.callback());
} else {
  const callback = provider.callback();
  const autoDiscovery = JSON.stringify({
    WebSites: [
      { Type: 'ID', Url: issuer },
      { Type: 'DomainAPI', Url: `${root}/api/domain`, AdditionalProperties: { ODataServiceRoot: `${root}/api/domain/odata/` } },
    ],
  });
  const json = (res, status, body) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(body);
  };
  server.on('request', (req, res) => {
    const path = req.url.split('?')[0];
    if (path === mount || path.startsWith(`${mount}/`)) {
      // Mounted as connect/express do: oidc-provider finds its mount path
      // from originalUrl minus url.
      req.originalUrl = req.url;
      req.url = req.url.slice(mount.length) || '/';
      callback(req, res);
    } else if (path === '/sys/auto-discovery' && req.method === 'GET') {
      json(res, 200, autoDiscovery);
    } else if (path.startsWith('/api/domain/odata/')) {
      if (/^Bearer \S+$/.test(req.headers.authorization || '')) json(res, 200, '{"value":[]}');
      else json(res, 401, '{"error":{"message":"no bearer token"}}');
    } else {
      json(res, 404, '{"error":"not found"}');
    }
  });
}
console.log(`LISTENING ${issuer}`);
