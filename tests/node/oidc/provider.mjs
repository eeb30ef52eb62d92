// A real external IdP for authgate's tests: npm `oidc-provider` 9.13.3, shaped by a JSON config
// (path given as the only argument) into the IdPs authgate must work with:
//
//   Auth0-like     issuer ending in "/", only OIDC discovery, `resource` ignored in favour of a
//                  fixed "Default Audience", DCR at /oidc/register
//   Keycloak-like  issuer /realms/<r>, DCR at /realms/<r>/clients-registrations/openid-connect
//   broken shapes  DCR off, no PKCE S256 advertised, no RFC 8414 document, `resource` ignored
//                  (for `authgate idp check`)
//
// Sign-in and consent need no browser: /interaction/<uid> completes both prompts for the account
// named in the `X-Test-Account` header (or posted by the tiny form it shows without it), through
// provider.interactionDetails / interactionFinished.
//
// `token_claims` (optional) maps an account id to extra claims its access tokens carry, through
// oidc-provider's `extraTokenClaims` (e.g. Auth0 RBAC `permissions`, Keycloak `realm_access`).
//
// `store_file` (optional): the provider's state (sessions, grants, tokens) is written to this
// file when it is stopped (SIGTERM) and read back when it starts, so a provider stopped and
// started again still honours the grants it issued (an upstream outage, not a reset).
//
// `rotate_refresh` (optional): true rotates every refresh token (a second use of a spent one then
// ends the grant, oidc-provider's reuse detection); false never; unset: oidc-provider's default.
// `refresh_delay_ms` (optional): a refresh_token grant is answered this much later (after it is
// done), so that a test can hold a refresh in flight. GET /__counts answers how many token
// requests of each grant_type it answered, {"refresh_token": {"ok": n, "error": m}, ...}.
// `dpop` (optional): true turns on oidc-provider's DPoP feature (RFC 9449): a token request with
// a DPoP proof gets a DPoP-bound token (cnf.jkt), server nonces not required.
//
// Prints "READY <issuer>" on stdout once listening. Test use only.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const prefix = cfg.issuer_path || '';
const origin = `http://127.0.0.1:${cfg.port}`;
const issuer = origin + prefix + (cfg.trailing_slash ? '/' : '');

function resourceServer(_ctx, resource) {
  if (cfg.invalid_resources?.includes(resource)) throw new errors.InvalidTarget();
  return {
    scope: cfg.resource_scope ?? 'mcp',
    // An IdP that ignores `resource` (Auth0 without its compatibility profile) stamps its own
    // default audience instead.
    audience: cfg.ignore_resource ? cfg.fixed_audience : resource,
    accessTokenTTL: cfg.access_token_ttl ?? 600,
    accessTokenFormat: cfg.opaque_resources?.includes(resource) ? 'opaque' : 'jwt',
    jwt: { sign: { alg: cfg.alg ?? 'RS256' } },
  };
}

// The storage MemoryAdapter expects (get / set with maxAge / delete), kept in a file across runs.
class FileStore {
  #entries = new Map();

  constructor(path) {
    this.path = path;
    if (!existsSync(path)) return;
    const revive = (_key, v) => (Array.isArray(v?.__map__) ? new Map(v.__map__.map(([k, at]) => [k, at ?? Infinity])) : v);
    this.#entries = new Map(JSON.parse(readFileSync(path, 'utf8'), revive));
  }

  get(key) {
    const entry = this.#entries.get(key);
    if (entry?.expiry && entry.expiry <= Date.now()) this.#entries.delete(key);
    return this.#entries.get(key)?.value;
  }

  set(key, value, { maxAge } = {}) {
    this.#entries.set(key, { value, expiry: maxAge ? Date.now() + maxAge : undefined });
  }

  delete(key) {
    this.#entries.delete(key);
  }

  save() {
    const replace = (_key, v) => (v instanceof Map ? { __map__: [...v] } : v); // Infinity → null
    writeFileSync(this.path, JSON.stringify([...this.#entries], replace));
  }
}

const fileStore = cfg.store_file ? new FileStore(cfg.store_file) : undefined;

const configuration = {
  ...(fileStore ? { adapter: (model) => new MemoryAdapter(model, fileStore) } : {}),
  clients: cfg.clients ?? [],
  jwks: { keys: cfg.keys },
  cookies: { keys: ['authgate-test-cookie-key'] },
  // the resource's scopes are known to the AS too (an Auth0 API permission, a Keycloak client scope)
  scopes: ['openid', 'offline_access', 'profile', 'email', ...(cfg.resource_scope ?? 'mcp').split(' ')],
  claims: { openid: ['sub'], profile: ['preferred_username'], email: ['email'] },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() { return { sub: id, preferred_username: id, email: `${id}@example.test` }; },
    };
  },
  interactions: { url: (_ctx, interaction) => `${prefix}/interaction/${interaction.uid}` },
  // per-account claims in its access tokens (RBAC permissions, roles); none for client_credentials
  extraTokenClaims: async (_ctx, token) => (token.accountId ? cfg.token_claims?.[token.accountId] : undefined),
  issueRefreshToken: async (_ctx, client) => cfg.refresh !== false && client.grantTypeAllowed('refresh_token'),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    dPoP: { enabled: cfg.dpop === true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    registration: { enabled: cfg.dcr !== false, initialAccessToken: false },
    registrationManagement: { enabled: cfg.dcr !== false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? cfg.default_resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => resourceServer(ctx, resource),
    },
  },
  ttl: { AccessToken: cfg.access_token_ttl ?? 600, IdToken: 600 },
  routes: { ...(cfg.routes ?? {}), ...(cfg.dcr_path ? { registration: cfg.dcr_path } : {}) },
  clientDefaults: { token_endpoint_auth_method: 'client_secret_basic', grant_types: ['authorization_code', 'refresh_token'] },
  ...(typeof cfg.rotate_refresh === 'boolean' ? { rotateRefreshToken: () => cfg.rotate_refresh } : {}),
};

const provider = new Provider(issuer, configuration);

// token requests answered, by grant_type and outcome (GET /__counts); refresh answers held back
const counts = {};
provider.use(async (ctx, next) => {
  await next();
  if (ctx.oidc?.route !== 'token') return;
  const grant = String(ctx.oidc.params?.grant_type ?? 'unknown');
  const outcome = ctx.status === 200 ? 'ok' : 'error';
  counts[grant] = counts[grant] ?? { ok: 0, error: 0 };
  counts[grant][outcome] += 1;
  if (grant === 'refresh_token' && cfg.refresh_delay_ms) await new Promise((r) => { setTimeout(r, cfg.refresh_delay_ms); });
});

if (cfg.s256 === false) {
  // An IdP that does not advertise PKCE S256 (MCP clients then refuse it).
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'discovery' && ctx.body) delete ctx.body.code_challenge_methods_supported;
  });
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function loginForm(res, uid) {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>test IdP sign-in</title><form method="post" action="${prefix}/interaction/${uid}">`
    + '<input name="account" value=""><button>Sign in</button></form>');
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  let account = req.headers['x-test-account'];
  if (!account && req.method === 'POST') account = (await readForm(req)).get('account');
  account = account || details.session?.accountId;
  if (!account) return loginForm(res, uid);
  if (details.prompt.name === 'login') {
    return provider.interactionFinished(req, res, { login: { accountId: account } }, { mergeWithLastSubmission: false });
  }
  const { missingOIDCScope = [], missingOIDCClaims = [], missingResourceScopes = {} } = details.prompt.details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  if (missingOIDCScope.length) grant.addOIDCScope(missingOIDCScope.join(' '));
  if (missingOIDCClaims.length) grant.addOIDCClaims(missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const callback = provider.callback();

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, origin);
    if (url.pathname === '/__counts') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(counts));
    }
    if (url.pathname === '/__health') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end('ok');
    }
    if (cfg.rfc8414 === false && url.pathname.includes('/.well-known/oauth-authorization-server')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end('{"error":"not_found"}');
    }
    if (prefix && !(url.pathname === prefix || url.pathname.startsWith(`${prefix}/`))) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end('{"error":"not_found"}');
    }
    const inner = url.pathname.slice(prefix.length) || '/';
    const match = inner.match(/^\/interaction\/([^/]+)$/);
    if (prefix) {
      req.originalUrl = req.url; // oidc-provider derives its mount path from this
      req.url = inner + url.search;
    }
    if (match) return await interaction(req, res, match[1]);
    return callback(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
    return res.end(String(err));
  }
});

server.listen(cfg.port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    fileStore?.save();
    process.exit(0);
  });
}
