// A real OpenID Connect provider (the `oidc-provider` package) for Konsil's single sign-on tests.
//
//   node tests/oidc/provider.mjs CONFIG.json
//
// CONFIG.json (written by tests/oidc_provider.py) holds the port, the issuer, the
// clients, the accounts (tests/oidc/accounts.json plus what a test changes) and the
// misbehaviour a test asks for. The provider prints "ready <port>" once it listens.
//
// Its login page is its own (not oidc-provider's development pages, which load web fonts): a
// form with the account name and password, and a "cancel" button that answers access_denied.
// Accounts marked "mfa" log in with amr ["pwd", "otp"] and the acr urn:konsil:test:mfa.
//
// Misbehaviour, for the tests of what Konsil must refuse. The provider signs these tokens with
// its own key (the one its JWKS publishes), exactly as it signs every other token:
//   mint.audience        - id_tokens are issued for this audience instead of the client
//   mint.expiredSeconds  - id_tokens expired this many seconds ago when they are issued
//   mint.authTimeAgoSeconds - id_tokens say the person last signed in this many seconds ago,
//                          as a provider that ignores prompt=login / max_age=0 would
import { readFileSync } from 'node:fs';
import { exportJWK, generateKeyPair, SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts;
const mint = config.mint ?? {};

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await exportJWK(privateKey)), kid: 'test-key-1', alg: 'RS256', use: 'sig' };

function page(title, body) {
  return `<!doctype html><html lang="de"><head><meta charset="utf-8"><title>${escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"></head>
<body><main><h1>${escape(title)}</h1>${body}</main></body></html>`;
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys: [signingJwk] },
  cookies: { keys: ['konsil-test-provider-cookie-key'] },
  scopes: ['openid', 'email', 'profile', 'konsil'],
  // acr and amr in every id_token, as Keycloak sends them (amr with its "amr" mapper).
  claims: {
    openid: ['sub', 'acr', 'amr'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    konsil: ['roles', 'practice', 'specialty'],
  },
  acrValues: ['urn:konsil:test:pwd', 'urn:konsil:test:mfa'],
  conformIdTokenClaims: false, // scope claims go into the id_token too, as Keycloak does
  pkce: { required: () => true },
  ttl: { AuthorizationCode: 120, IdToken: 3600, AccessToken: 3600, Interaction: 600, Session: 3600, Grant: 3600 },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('Abmelden beim Test-Anbieter?', `${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes">Ja, abmelden</button>`);
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = page('Abgemeldet', '<p>Sie sind beim Test-Anbieter abgemeldet.</p>');
      },
    },
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Fehler beim Test-Anbieter', `<pre>${escape(JSON.stringify(out))}</pre>`);
  },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...account.claims };
      },
    };
  },
  // Konsil is a first-party client of the hospital's provider: no consent screen.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    const grant = grantId
      ? await ctx.oidc.provider.Grant.find(grantId)
      : new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(ctx.oidc.params.scope);
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

// The login interaction: GET shows the form, POST checks it.
provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([\w-]+)(\/login|\/abort)?$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET' && !match[2]) {
    ctx.type = 'html';
    ctx.body = page('Anmeldung Klinik-Konto (Test)', `
<form method="post" action="/interaction/${details.uid}/login">
<label>Benutzername <input name="login" autocomplete="username" autofocus></label>
<label>Passwort <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Anmelden</button></form>
<form method="post" action="/interaction/${details.uid}/abort"><button type="submit">Abbrechen</button></form>`);
    return undefined;
  }
  if (ctx.method === 'POST' && match[2] === '/abort') {
    return provider.interactionFinished(ctx.req, ctx.res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  if (ctx.method === 'POST' && match[2] === '/login') {
    const form = new URLSearchParams(await readBody(ctx.req));
    const account = accounts[form.get('login')];
    if (!account || form.get('password') !== config.password) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = page('Anmeldung fehlgeschlagen', '<p>Benutzername oder Passwort falsch.</p>');
      return undefined;
    }
    const mfa = Boolean(account.mfa);
    return provider.interactionFinished(ctx.req, ctx.res, {
      login: {
        accountId: form.get('login'),
        acr: mfa ? 'urn:konsil:test:mfa' : 'urn:konsil:test:pwd',
        amr: mfa ? ['pwd', 'otp'] : ['pwd'],
      },
    }, { mergeWithLastSubmission: false });
  }
  ctx.status = 405;
  return undefined;
});

// Misbehaviour (see the top of this file): re-sign the id_token of a token response.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== '/token' || ctx.status !== 200 || !ctx.body?.id_token) return;
  if (mint.audience === undefined && mint.expiredSeconds === undefined
    && mint.authTimeAgoSeconds === undefined) return;
  const claims = decodeJwt(ctx.body.id_token);
  const header = decodeProtectedHeader(ctx.body.id_token);
  if (mint.audience !== undefined) claims.aud = mint.audience;
  if (mint.expiredSeconds !== undefined) {
    const now = Math.floor(Date.now() / 1000);
    claims.exp = now - mint.expiredSeconds;
    claims.iat = claims.exp - 300;
    claims.auth_time = claims.iat;
  }
  if (mint.authTimeAgoSeconds !== undefined) {
    claims.auth_time = Math.floor(Date.now() / 1000) - mint.authTimeAgoSeconds;
  }
  ctx.body = { ...ctx.body, id_token: await new SignJWT(claims).setProtectedHeader(header).sign(privateKey) };
});

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      data += chunk;
      if (data.length > 10_000) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${config.port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
