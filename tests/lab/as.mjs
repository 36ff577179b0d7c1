// tokentrail lab authorization server (OAuth 2.0) built on panva's oidc-provider 9.x.
//
// Usage: node as.mjs [PORT] [CONFIG_JSON]
//   PORT        or env LAB_AS_PORT   (listens on 127.0.0.1 only; issuer http://127.0.0.1:PORT)
//   CONFIG_JSON or env LAB_CONFIG    (clients, resources, lab secret; written by lab.sh start)
//
// Env (all optional):
//   LAB_ACCESS_TTL   access token / client_credentials token lifetime, seconds (default 300)
//   LAB_DEVICE_TTL   device_code lifetime, seconds (default 600)
//   LAB_GRANT_TTL    grant lifetime, seconds (default 3600)
//   LAB_APPROVE_SECRET  secret for POST /lab/approve (else config.approve_secret)
//   LAB_EVENTS_FILE  append provider events as JSON lines here (default: stdout)
//   LAB_EVENTS_URL   also POST each event (JSON) to this URL, fire-and-forget
//   LAB_HTTP_LOG     "0" disables the per-request "http" event lines (default on)
//   LAB_TOKEN_LOG    TEST INSTRUMENTATION ONLY, off by default: append the raw
//                    value of every access token issued (client_credentials,
//                    device code, token exchange) to this file, one per line,
//                    file mode 0600. Lets a test grep tokentrail's output for
//                    the real token values (tests/integration/t_lab_no_secrets.sh).
//
// Lab only. Never expose this outside 127.0.0.1.

import crypto from 'node:crypto';
import fs from 'node:fs';
import process from 'node:process';

import Provider, { errors } from 'oidc-provider';

const HOST = '127.0.0.1';
const port = Number(process.argv[2] || process.env.LAB_AS_PORT);
const configPath = process.argv[3] || process.env.LAB_CONFIG;
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !configPath) {
  process.stderr.write('usage: node as.mjs PORT CONFIG_JSON (or LAB_AS_PORT / LAB_CONFIG)\n');
  process.exit(2);
}

const cfg = JSON.parse(fs.readFileSync(configPath, 'utf8'));

function intEnv(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`${name} must be a positive integer, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return n;
}

const TTL = {
  access: intEnv('LAB_ACCESS_TTL', cfg.ttl?.access ?? 300),
  device: intEnv('LAB_DEVICE_TTL', cfg.ttl?.device ?? 600),
  grant: intEnv('LAB_GRANT_TTL', cfg.ttl?.grant ?? 3600),
};
const APPROVE_SECRET = process.env.LAB_APPROVE_SECRET || cfg.approve_secret || '';
const ISSUER = `http://${HOST}:${port}`;

// ---------------------------------------------------------------------------
// Resources (RFC 8707). Without a resource indicator (explicit or default)
// oidc-provider silently drops non-OIDC scopes such as db:orders:read.
const resources = cfg.resources || {
  'urn:tokentrail:lab:api': { scope: 'db:orders:read db:orders:write db:customers:read' },
};
const DEFAULT_RESOURCE = cfg.default_resource || Object.keys(resources)[0];
if (!resources[DEFAULT_RESOURCE]) {
  process.stderr.write(`default_resource ${DEFAULT_RESOURCE} is not in resources\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Events: JSON lines, never containing a raw token value.
const eventsOut = process.env.LAB_EVENTS_FILE
  ? fs.createWriteStream(process.env.LAB_EVENTS_FILE, { flags: 'a' })
  : process.stdout;
const eventsUrl = process.env.LAB_EVENTS_URL || '';
const httpLog = process.env.LAB_HTTP_LOG !== '0';

function emitEvent(ev, fields) {
  const rec = { ts: new Date().toISOString(), src: 'lab-as', ev, ...fields };
  for (const k of Object.keys(rec)) if (rec[k] === undefined) delete rec[k];
  const line = JSON.stringify(rec);
  eventsOut.write(`${line}\n`);
  if (eventsUrl) {
    fetch(eventsUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: line,
      signal: AbortSignal.timeout(2000),
    }).catch(() => {});
  }
}

// Log-safe token id. For opaque tokens the token value *is* token.jti, so this is
// exactly "sha256:" + hex(SHA-256(access_token as sent by the client)).
function tidOf(value) {
  return `sha256:${crypto.createHash('sha256').update(value, 'utf8').digest('hex')}`;
}

// ---------------------------------------------------------------------------
// Storage adapter: plain Maps with expiry, no size cap. (The bundled memory
// adapter is an LRU of 1000 entries and silently evicts live tokens under load.)
const store = new Map(); // key -> { payload, expiresAt }
const byUserCode = new Map(); // userCode -> id
const byUid = new Map(); // session uid -> id
const byGrant = new Map(); // grantId -> Set of keys

function alive(entry) {
  return entry && (entry.expiresAt === Infinity || entry.expiresAt > Date.now());
}

class MapAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(key, { payload, expiresAt });
    if (payload.grantId) {
      let set = byGrant.get(payload.grantId);
      if (!set) byGrant.set(payload.grantId, (set = new Set()));
      set.add(key);
    }
    if (payload.userCode) byUserCode.set(payload.userCode, id);
    if (this.model === 'Session' && payload.uid) byUid.set(payload.uid, id);
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!alive(entry)) return undefined;
    return entry.payload;
  }

  async findByUserCode(userCode) {
    const id = byUserCode.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUid(uid) {
    const id = byUid.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const set = byGrant.get(grantId);
    if (!set) return;
    for (const key of set) store.delete(key);
    byGrant.delete(grantId);
  }
}

// Sweep expired entries once a second so memory stays bounded by the TTLs.
setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) if (entry.expiresAt <= now) store.delete(key);
  for (const [code, id] of byUserCode) if (!store.has(`DeviceCode:${id}`)) byUserCode.delete(code);
  for (const [uid, id] of byUid) if (!store.has(`Session:${id}`)) byUid.delete(uid);
  for (const [gid, set] of byGrant) {
    for (const key of set) if (!store.has(key)) set.delete(key);
    if (set.size === 0) byGrant.delete(gid);
  }
}, 1000).unref();

// ---------------------------------------------------------------------------
// Clients. Lab roles: "client" (default), "admin" (may revoke/introspect any
// token), "rs" (resource server: introspection only).
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TT_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

const clientRole = new Map();
const clientApiScopes = new Map();
const clients = (cfg.clients || []).map((c) => {
  clientRole.set(c.client_id, c.lab_role || 'client');
  clientApiScopes.set(c.client_id, new Set((c.lab_api_scopes || '').split(' ').filter(Boolean)));
  const meta = {
    client_id: c.client_id,
    grant_types: c.grant_types || ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: c.token_endpoint_auth_method
      || (c.client_secret ? 'client_secret_basic' : 'none'),
  };
  if (c.client_secret) meta.client_secret = c.client_secret;
  return meta;
});

const isPrivileged = (client) => ['admin', 'rs'].includes(clientRole.get(client.clientId));

function resourceInfoFor(resource, client) {
  const rs = resources[resource];
  if (!rs) throw new errors.InvalidTarget(`unknown resource indicator ${resource}`);
  const allowed = clientApiScopes.get(client.clientId) || new Set();
  const scope = rs.scope.split(' ').filter((s) => allowed.has(s)).join(' ');
  return {
    scope,
    audience: rs.audience || resource,
    accessTokenTTL: TTL.access,
    accessTokenFormat: 'opaque',
  };
}

// ---------------------------------------------------------------------------
// Provider configuration.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'lab-rs256', use: 'sig', alg: 'RS256' };

const configuration = {
  clients,
  adapter: MapAdapter,
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
  features: {
    devInteractions: { enabled: true }, // also allows a scripted browser-ish approval
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    introspection: {
      enabled: true,
      // RS clients and the admin may introspect any token; others only their own.
      async allowedPolicy(ctx, client, token) {
        return isPrivileged(client) || token.clientId === client.clientId;
      },
    },
    revocation: {
      enabled: true,
      // The owner may revoke; the lab admin may revoke anyone's token.
      async allowedPolicy(ctx, client, token) {
        if (token.clientId === client.clientId) return true;
        if (clientRole.get(client.clientId) === 'admin') return true;
        throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
      },
    },
    resourceIndicators: {
      enabled: true,
      async defaultResource(ctx, client, oneOf) {
        return oneOf || DEFAULT_RESOURCE;
      },
      async useGrantedResource() { return true; },
      async getResourceServerInfo(ctx, resource, client) {
        return resourceInfoFor(resource, client);
      },
    },
  },
  // Lab copy of the token: extra claims show up in introspection, and therefore
  // in mod_oauth2's OAUTH2_CLAIM_* env vars and the RS access log.
  async extraTokenClaims(ctx, token) {
    return { ...(token.extra || {}), tid: tidOf(token.jti) };
  },
  ttl: {
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || TTL.access,
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || TTL.access,
    DeviceCode: TTL.device,
    Grant: TTL.grant,
    Interaction: 600,
    Session: TTL.grant,
    IdToken: TTL.access,
    AuthorizationCode: 60,
    RefreshToken: TTL.grant,
  },
  // Opaque token ids long enough to be unguessable (default 256 bits).
};

const provider = new Provider(ISSUER, configuration);
provider.proxy = false;

// ---------------------------------------------------------------------------
// RFC 8693 token exchange. oidc-provider has no built-in token-exchange grant;
// this is a minimal lab implementation through provider.registerGrantType():
// subject_token must be an active opaque access token from this AS; the new
// token is issued to the exchanging client, for one resource, with scopes that
// are in the subject token AND allowed for the exchanging client. It carries
// RFC 8693 "act" (the exchanging client) and the subject token's tid.
async function tokenExchangeHandler(ctx) {
  const { params, client } = ctx.oidc;
  if (!params.subject_token) throw new errors.InvalidRequest('missing required parameter \'subject_token\'');
  if (params.subject_token_type !== TT_ACCESS_TOKEN) {
    throw new errors.InvalidRequest('unsupported subject_token_type');
  }
  if (params.requested_token_type && params.requested_token_type !== TT_ACCESS_TOKEN) {
    throw new errors.InvalidRequest('unsupported requested_token_type');
  }
  if (params.actor_token) throw new errors.InvalidRequest('actor_token is not supported by the lab');

  const subject = (await provider.ClientCredentials.find(params.subject_token))
    || (await provider.AccessToken.find(params.subject_token));
  if (!subject || !subject.isValid) throw new errors.InvalidGrant('subject_token is not active');

  let resource = params.resource ?? params.audience;
  if (Array.isArray(resource)) {
    if (resource.length !== 1) throw new errors.InvalidTarget('only one resource/audience is supported');
    [resource] = resource;
  }
  if (!resource) {
    resource = (Array.isArray(subject.aud) ? subject.aud[0] : subject.aud) || DEFAULT_RESOURCE;
  }
  const info = resourceInfoFor(resource, client);
  const rsScopes = new Set(info.scope.split(' ').filter(Boolean));
  const subjectScopes = subject.scopes;
  const requested = params.scope ? params.scope.split(' ').filter(Boolean) : [...subjectScopes];
  const scope = requested.filter((s) => subjectScopes.has(s) && rsScopes.has(s));
  if (scope.length === 0) throw new errors.InvalidScope('no requested scope is both held by the subject token and allowed for this client', params.scope || '');

  const token = new provider.ClientCredentials({
    client,
    resourceServer: new provider.ResourceServer(resource, info),
    scope: scope.join(' '),
  });
  token.extra = {
    act: { sub: client.clientId },
    subject_tid: subject.extra?.tid,
    subject_client_id: subject.clientId,
    ...(subject.accountId ? { subject_sub: subject.accountId } : {}),
  };
  ctx.oidc.entity('ClientCredentials', token);
  const value = await token.save();

  ctx.body = {
    access_token: value,
    issued_token_type: TT_ACCESS_TOKEN,
    token_type: 'Bearer',
    expires_in: token.expiration,
    scope: token.scope,
  };
}
provider.registerGrantType(
  TOKEN_EXCHANGE,
  tokenExchangeHandler,
  ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope', 'actor_token', 'actor_token_type'],
  ['resource', 'audience'],
);

// ---------------------------------------------------------------------------
// Event forwarding.
function tokenFields(token) {
  return {
    kind: token.kind,
    client_id: token.clientId,
    tid: token.extra?.tid,
    scope: token.scope,
    aud: token.aud,
    sub: token.accountId,
    gty: token.gty,
    exp: token.exp ?? (token.expiration ? (token.iat ?? Math.floor(Date.now() / 1000)) + token.expiration : undefined),
  };
}
for (const ev of ['client_credentials.saved', 'client_credentials.destroyed',
  'access_token.saved', 'access_token.destroyed']) {
  provider.on(ev, (token) => emitEvent(ev, tokenFields(token)));
}

// LAB_TOKEN_LOG (test instrumentation, off by default): the raw value of every
// access token, one per line, in a 0600 file. For opaque tokens in
// oidc-provider 9.x the value is the model's jti (formats/opaque.js
// getValueAndPayload returns { value: token.jti }), and `*.saved` is emitted
// by BaseModel.save() before the token response is sent. The write is
// synchronous, so a token is in the file before its client has it.
if (process.env.LAB_TOKEN_LOG) {
  const tokenLogFd = fs.openSync(process.env.LAB_TOKEN_LOG, 'a', 0o600);
  fs.fchmodSync(tokenLogFd, 0o600);
  process.stderr.write(`LAB_TOKEN_LOG is set: raw access tokens are appended to ${process.env.LAB_TOKEN_LOG} (test instrumentation)\n`);
  for (const ev of ['client_credentials.saved', 'access_token.saved']) {
    provider.on(ev, (token) => {
      try {
        if (typeof token.jti === 'string' && token.jti) fs.writeSync(tokenLogFd, `${token.jti}\n`);
      } catch (err) {
        process.stderr.write(`LAB_TOKEN_LOG: write failed: ${err.message}\n`);
      }
    });
  }
}
provider.on('grant.success', (ctx) => {
  const tok = ctx.oidc.entities.ClientCredentials || ctx.oidc.entities.AccessToken;
  emitEvent('grant.success', {
    grant_type: ctx.oidc.params?.grant_type,
    client_id: ctx.oidc.client?.clientId,
    tid: tok?.extra?.tid,
  });
});
provider.on('grant.revoked', (ctx, grantId) => emitEvent('grant.revoked', {
  client_id: ctx.oidc?.client?.clientId, grant_id: grantId,
}));
provider.on('device_authorization.success', (ctx, body) => emitEvent('device_authorization.success', {
  client_id: ctx.oidc.client?.clientId, expires_in: body?.expires_in,
}));
for (const ev of ['grant.error', 'revocation.error', 'introspection.error',
  'device_authorization.error', 'server_error']) {
  provider.on(ev, (ctx, err) => emitEvent(ev, {
    client_id: ctx?.oidc?.client?.clientId,
    grant_type: ev === 'grant.error' ? ctx?.oidc?.params?.grant_type : undefined,
    error: err?.error || err?.name,
    error_description: err?.error_description || err?.message,
  }));
}

// ---------------------------------------------------------------------------
// Koa middleware: the lab approval route + optional request log.
function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) { reject(new Error('body too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function secretOk(ctx) {
  if (!APPROVE_SECRET) return false;
  const auth = ctx.get('authorization');
  const presented = auth.startsWith('Bearer ') ? auth.slice(7) : ctx.get('x-lab-secret');
  const a = Buffer.from(presented);
  const b = Buffer.from(APPROVE_SECRET);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

// POST /lab/approve  (Authorization: Bearer <lab secret>)
//   form or JSON body: user_code (required), account (default "lab-user"),
//   scope (optional subset of the requested scope), deny=1 (=> access_denied).
async function labApprove(ctx) {
  ctx.set('cache-control', 'no-store');
  if (ctx.method !== 'POST') { ctx.status = 405; ctx.body = { error: 'method_not_allowed' }; return; }
  if (!secretOk(ctx)) { ctx.status = 401; ctx.body = { error: 'unauthorized' }; return; }
  const raw = await readBody(ctx.req);
  let body;
  if ((ctx.get('content-type') || '').includes('json')) {
    try { body = JSON.parse(raw || '{}'); } catch { ctx.status = 400; ctx.body = { error: 'invalid_json' }; return; }
  } else {
    body = Object.fromEntries(new URLSearchParams(raw));
  }
  const userCode = String(body.user_code || '').toUpperCase().replace(/\W/g, '');
  if (!userCode) { ctx.status = 400; ctx.body = { error: 'invalid_request', error_description: 'user_code required' }; return; }

  const code = await provider.DeviceCode.findByUserCode(userCode, { ignoreExpiration: true });
  if (!code) { ctx.status = 404; ctx.body = { error: 'not_found' }; return; }
  if (code.isExpired) { ctx.status = 410; ctx.body = { error: 'expired_token' }; return; }
  if (code.accountId || code.error) { ctx.status = 409; ctx.body = { error: 'already_used' }; return; }

  if (body.deny && body.deny !== '0' && body.deny !== 'false') {
    code.error = 'access_denied';
    code.errorDescription = 'denied through the lab approval route';
    await code.save();
    emitEvent('lab.device.denied', { client_id: code.clientId });
    ctx.body = { denied: true, client_id: code.clientId };
    return;
  }

  const client = await provider.Client.find(code.clientId);
  const params = code.params || {};
  let resource = params.resource;
  if (Array.isArray(resource)) [resource] = resource;
  resource = resource || DEFAULT_RESOURCE;
  const info = resourceInfoFor(resource, client);
  const rsScopes = new Set(info.scope.split(' ').filter(Boolean));
  let requested = String(params.scope || '').split(' ').filter(Boolean);
  if (body.scope) {
    const subset = new Set(String(body.scope).split(' ').filter(Boolean));
    requested = requested.filter((s) => subset.has(s));
  }
  const apiScopes = requested.filter((s) => rsScopes.has(s));
  const oidcScopes = requested.filter((s) => s === 'openid');
  const accountId = String(body.account || 'lab-user');

  const grant = new provider.Grant({ accountId, clientId: code.clientId });
  if (apiScopes.length) grant.addResourceScope(resource, apiScopes.join(' '));
  if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
  const grantId = await grant.save();

  Object.assign(code, {
    accountId,
    grantId,
    authTime: Math.floor(Date.now() / 1000),
    scope: [...oidcScopes, ...apiScopes].join(' '),
    resource,
  });
  await code.save();
  emitEvent('lab.device.approved', { client_id: code.clientId, sub: accountId, scope: code.scope });
  ctx.body = { approved: true, client_id: code.clientId, account: accountId, scope: code.scope, resource };
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/lab/approve') {
    await labApprove(ctx);
    return;
  }
  if (ctx.path === '/lab/health') {
    ctx.body = { ok: true, issuer: ISSUER };
    return;
  }
  const t0 = process.hrtime.bigint();
  try {
    await next();
  } finally {
    if (httpLog) {
      let caller;
      const auth = ctx.get('authorization');
      if (auth.startsWith('Basic ')) {
        // client_secret_basic: log only the (url-encoded) client_id, never the secret.
        const dec = Buffer.from(auth.slice(6), 'base64').toString('utf8');
        const i = dec.indexOf(':');
        if (i > 0) {
          try { caller = decodeURIComponent(dec.slice(0, i)); } catch { caller = undefined; }
        }
      }
      emitEvent('http', {
        method: ctx.method,
        path: ctx.path,
        status: ctx.status,
        caller: caller || ctx.oidc?.client?.clientId,
        dur_us: Number((process.hrtime.bigint() - t0) / 1000n),
      });
    }
  }
});

const server = provider.listen(port, HOST);
server.on('listening', () => {
  emitEvent('lab.as.listening', {
    issuer: ISSUER, pid: process.pid, default_resource: DEFAULT_RESOURCE, ttl: TTL,
    clients: clients.map((c) => c.client_id),
  });
});
server.on('error', (err) => {
  process.stderr.write(`listen failed: ${err.message}\n`);
  process.exit(1);
});

function shutdown(sig) {
  emitEvent('lab.as.stopping', { signal: sig });
  server.close();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
