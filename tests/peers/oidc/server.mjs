// A real OpenID Provider (panva's oidc-provider, an OpenID-certified OP) on loopback for the SSO
// tests and for trying the relying party by hand.
//
// Configuration is JSON, from the file named by OIDC_PEER_CONFIG_FILE or the text of OIDC_PEER_CONFIG:
//   {
//     "port": 0,                          // 0: any free port (the chosen one is printed)
//     "signing_keys": [<private JWK>],    // with kid and alg; generated here when absent
//     "cookie_keys": ["..."],
//     "initial_access_token": "...",     // enables dynamic registration (RFC 7591) at /reg
//     "admin_token": "...",              // Bearer token for the /_peer/ endpoints
//     "conform_id_token_claims": true,    // true: email, name, groups only from userinfo
//     "acr_values": ["urn:example:mfa"],
//     "amr_choices": ["pwd", "pwd otp", "pwd hwk"],
//     "clients": [{"client_id", "client_secret", "redirect_uris", "backchannel_logout_uri", ...}],
//     "accounts": [{"sub", "email", "email_verified", "name", "groups", "amr", "acr"}]
//   }
// On start it prints one JSON line to stdout: {"issuer": "http://127.0.0.1:<port>", "port": <port>}.
//
// By hand, next to `make run` (IAM_OUTBOUND_ALLOW_NETWORKS=127.0.0.0/8 lets the server reach it):
//   npm ci --prefix tests/peers/oidc
//   OIDC_PEER_CONFIG='{"port": 9400, "clients": [{"client_id": "demo", "client_secret": "demo-secret",
//     "redirect_uris": ["http://127.0.0.1:8000/sso/<org>/<connection>/oidc/callback/"],
//     "backchannel_logout_uri": "http://127.0.0.1:8000/sso/<org>/<connection>/oidc/backchannel-logout/",
//     "backchannel_logout_session_required": true}],
//     "accounts": [{"sub": "alice", "email": "alice@<verified domain>", "email_verified": true}]}' \
//     node tests/peers/oidc/server.mjs
// then create the connection with issuer http://127.0.0.1:9400, client id demo, secret demo-secret.
// This version of oidc-provider asks for Node 22 in a warning; it runs on Node 20 (which CI has).
//
// Features on: PKCE required for every client (S256 only), the RFC 9207 `iss` authorization
// response parameter (always on in this version, advertised in discovery), back-channel logout,
// RP-initiated logout, dynamic registration when an initial access token is configured. The
// development interactions are off: /interaction/<uid> is a small form of our own (choose an account
// and how it authenticated), and consent is given automatically.
//
// Test-only endpoints (Bearer admin_token):
//   POST /_peer/accounts              upsert an account {"sub", ...}
//   GET  /_peer/sessions?sub=S         the sids this OP issued for S: [{"sub", "client_id", "sid"}]
//   POST /_peer/backchannel-logout     {"client_id", "sub", "sid"?, "deliver"?: true}: make a logout
//                                      token with the OP's own code and keys; deliver it to the
//                                      client's backchannel_logout_uri, or return it
//   POST /_peer/next-id-token          {"id_token"}: the next token response carries this id_token
//                                      instead of the one the OP issued (attack tests)
//   GET  /_peer/last-token-response    the last token response's id_token (never the access token)

import { createServer, request as httpRequest } from 'node:http';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const config = JSON.parse(
  process.env.OIDC_PEER_CONFIG_FILE
    ? readFileSync(process.env.OIDC_PEER_CONFIG_FILE, 'utf8')
    : (process.env.OIDC_PEER_CONFIG || '{}'),
);

const accounts = new Map((config.accounts || []).map((a) => [a.sub, a]));
const issuedSessions = [];
let nextIdToken = null;
let lastIdToken = null;

function signingKeys() {
  if (config.signing_keys && config.signing_keys.length) {
    return config.signing_keys;
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return [{ ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' }];
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body, type = 'application/json') {
  const text = type === 'application/json' ? JSON.stringify(body) : body;
  res.writeHead(status, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'no-store' });
  res.end(text);
}

function accountClaims(account) {
  const claims = { sub: account.sub };
  for (const name of ['email', 'email_verified', 'name', 'groups']) {
    if (account[name] !== undefined) {
      claims[name] = account[name];
    }
  }
  return claims;
}

function loginPage(uid, details) {
  const choices = config.amr_choices || ['pwd', 'pwd otp', 'pwd hwk'];
  const options = [...accounts.values()].map((a) => {
    const label = a.email ? `${a.sub} (${a.email})` : a.sub;
    return `<option value="${escapeHtml(a.sub)}">${escapeHtml(label)}</option>`;
  }).join('');
  const amr = ['<option value="">(the account\'s default)</option>',
    ...choices.map((c) => `<option value="${escapeHtml(c)}">${escapeHtml(c)}</option>`)].join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test OpenID Provider: sign in</title></head>
<body>
<h1>Test OpenID Provider</h1>
<p>Signing in to <code>${escapeHtml(details.params.client_id)}</code></p>
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
  <label for="account">Account</label>
  <select id="account" name="account">${options}</select>
  <label for="amr">Authenticated with</label>
  <select id="amr" name="amr">${amr}</select>
  <label for="acr">acr</label>
  <input id="acr" name="acr" value="">
  <button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort">
  <button type="submit">Cancel</button>
</form>
</body></html>`;
}

// What oidc-provider needs of fetch for a back-channel logout: POST a form, read the status.
function deliver(url, options) {
  const target = new URL(url);
  if (target.protocol !== 'http:') {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  }
  const headers = Object.fromEntries(new Headers(options.headers).entries());
  const body = options.body === undefined ? undefined : String(options.body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(target, {
      method: options.method || 'GET',
      headers: { ...headers, connection: 'close', ...(body ? { 'content-length': Buffer.byteLength(body) } : {}) },
      agent: false,
      timeout: 5000,
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(new Response(null, { status: res.statusCode })));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

async function main() {
  const server = createServer();
  await new Promise((resolve) => server.listen(config.port || 0, '127.0.0.1', resolve));
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const configuration = {
    clients: config.clients || [],
    jwks: { keys: signingKeys() },
    cookies: { keys: config.cookie_keys || [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      // amr and acr belong to the authentication, so every ID token carries them when known.
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
      sid: null,
    },
    acrValues: config.acr_values || [],
    conformIdTokenClaims: config.conform_id_token_claims !== false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      registration: config.initial_access_token
        ? { enabled: true, initialAccessToken: config.initial_access_token }
        : { enabled: false },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const account = accounts.get(sub);
      if (!account) {
        return undefined;
      }
      return { accountId: sub, claims: async () => accountClaims(account) };
    },
    // Both the OP and the relying party it logs out live on loopback; the library's guard
    // against special-use addresses is for a public OP. Plain node:http without keep-alive, so no
    // idle connection to the test server outlives the delivery.
    fetch: deliver,
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>Error</title><h1>${escapeHtml(out.error)}</h1>`
        + `<p>${escapeHtml(out.error_description || '')}</p>`;
    },
  };
  const provider = new Provider(issuer, configuration);

  provider.on('authorization.success', (ctx) => {
    const { session, client } = ctx.oidc;
    if (session && client && session.accountId) {
      issuedSessions.push({
        sub: session.accountId, client_id: client.clientId, sid: session.sidFor(client.clientId),
      });
    }
  });

  // The token response: record its id_token, or swap in the one a test gave.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token) {
      if (nextIdToken) {
        ctx.body = { ...ctx.body, id_token: nextIdToken };
        nextIdToken = null;
      }
      lastIdToken = ctx.body.id_token;
    }
  });

  const handleProvider = provider.callback();

  async function interaction(req, res, uid, action) {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) {
      send(res, 400, { error: 'interaction mismatch' });
      return;
    }
    if (action === 'abort') {
      await provider.interactionFinished(req, res, {
        error: 'access_denied', error_description: 'The person cancelled the sign-in.',
      }, { mergeWithLastSubmission: false });
      return;
    }
    if (details.prompt.name === 'consent') {
      const { accountId } = details.session;
      const { prompt: { details: missing }, params } = details;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId, clientId: params.client_id });
      if (missing.missingOIDCScope) {
        grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      }
      if (missing.missingOIDCClaims) {
        grant.addOIDCClaims(missing.missingOIDCClaims);
      }
      if (missing.missingResourceScopes) {
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
      }
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    if (action === 'login' && req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      const account = accounts.get(form.get('account') || '');
      if (!account) {
        send(res, 400, loginPage(uid, details), 'text/html');
        return;
      }
      const amrText = form.get('amr') || (account.amr || ['pwd']).join(' ');
      const amr = amrText.split(/\s+/).filter(Boolean);
      const acr = form.get('acr') || account.acr || undefined;
      await provider.interactionFinished(req, res, {
        login: { accountId: account.sub, amr, ...(acr ? { acr } : {}) },
      }, { mergeWithLastSubmission: false });
      return;
    }
    send(res, 200, loginPage(uid, details), 'text/html');
  }

  function authorised(req) {
    return config.admin_token && req.headers.authorization === `Bearer ${config.admin_token}`;
  }

  async function admin(req, res, url) {
    if (!authorised(req)) {
      send(res, 401, { error: 'unauthorised' });
      return;
    }
    const body = req.method === 'POST' ? JSON.parse((await readBody(req)) || '{}') : {};
    switch (`${req.method} ${url.pathname}`) {
      case 'POST /_peer/accounts':
        accounts.set(body.sub, body);
        send(res, 200, body);
        return;
      case 'GET /_peer/sessions': {
        const sub = url.searchParams.get('sub');
        send(res, 200, issuedSessions.filter((s) => !sub || s.sub === sub));
        return;
      }
      case 'POST /_peer/next-id-token':
        nextIdToken = body.id_token || null;
        send(res, 200, { ok: true });
        return;
      case 'GET /_peer/last-token-response':
        send(res, 200, { id_token: lastIdToken });
        return;
      case 'POST /_peer/backchannel-logout': {
        const client = await provider.Client.find(body.client_id);
        if (!client) {
          send(res, 404, { error: 'no such client' });
          return;
        }
        if (body.deliver) {
          try {
            await client.backchannelLogout(body.sub, body.sid);
            send(res, 200, { delivered: true });
          } catch (err) {
            send(res, 502, { delivered: false, error: err.message });
          }
          return;
        }
        // What Client#backchannelLogout sends, returned instead of posted.
        const token = new provider.IdToken({ sub: body.sub }, { client, ctx: undefined });
        token.mask = { sub: null };
        token.set('events', { 'http://schemas.openid.net/event/backchannel-logout': {} });
        token.set('jti', randomUUID());
        if (body.sid) {
          token.set('sid', body.sid);
        }
        send(res, 200, { logout_token: await token.issue({ use: 'logout' }) });
        return;
      }
      default:
        send(res, 404, { error: 'not found' });
    }
  }

  server.on('request', async (req, res) => {
    const url = new URL(req.url, issuer);
    const match = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?$/);
    try {
      if (match) {
        await interaction(req, res, match[1], match[2]);
      } else if (url.pathname.startsWith('/_peer/')) {
        await admin(req, res, url);
      } else {
        handleProvider(req, res);
      }
    } catch (err) {
      if (!res.headersSent) {
        send(res, 400, { error: err.name || 'error', error_description: err.message });
      }
    }
  });

  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
