// A real OpenID provider for ds01-web's sign-in tests: panva's node-oidc-provider with a
// sign-in form of its own (no development interactions) that checks the test accounts'
// passwords. Started by tests/plugins/web/oidc_env.py as
//   node provider.mjs CONFIG.json
// from a directory whose node_modules is the install of scripts/ci/setup-oidc.sh. CONFIG:
//   {"issuer": "http://127.0.0.1:PORT", "host": "127.0.0.1", "port": PORT,
//    "clients": [{"client_id", "client_secret", "redirect_uris": [...]}],
//    "accounts": {"<login>": {"password": "...", "claims": {"preferred_username": ...}}},
//    "claims_in_id_token": false}
// Prints "listening" once it accepts connections.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = cfg.accounts;

const escape = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const provider = new Provider(cfg.issuer, {
  clients: cfg.clients.map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
  },
  conformIdTokenClaims: !cfg.claims_in_id_token,
  cookies: { keys: ['ds01-test-provider-cookie-key'] },
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account.claims }; } };
  },
  // first-party client: consent is given at once (only the login prompt is shown)
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email');
    await grant.save();
    return grant;
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!doctype html><html lang="en"><title>Provider error</title><p id="error">${escape(out.error)}: ${escape(out.error_description)}</p></html>`;
  },
});

function loginPage(uid, message) {
  return `<!doctype html><html lang="en"><head><title>Test provider sign-in</title></head><body>
<h1>Test university sign-in</h1>${message ? `<p id="problem">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label for="login">Login</label><input id="login" name="login" autocomplete="username">
<label for="password">Password</label><input id="password" name="password" type="password">
<button type="submit">Sign in at the provider</button></form></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

const handler = provider.callback();
const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, cfg.issuer);
    const match = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (!match) return handler(req, res);
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'POST' && match[2]) {
      const form = await readForm(req);
      const account = accounts[form.get('login')];
      if (!account || account.password !== form.get('password')) {
        res.writeHead(401, { 'content-type': 'text/html' });
        return res.end(loginPage(details.uid, 'wrong login or password'));
      }
      return await provider.interactionFinished(
        req, res, { login: { accountId: form.get('login') } }, { mergeWithLastSubmission: false },
      );
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end(loginPage(details.uid, ''));
  } catch (error) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    return res.end(`test provider: ${error}`);
  }
});
server.listen(cfg.port, cfg.host, () => console.log('listening'));
