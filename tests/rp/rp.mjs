// Third-party relying parties against a running Gatehouse, for tests/api/interop.rs.
// Usage: node rp.mjs SCENARIO 'JSON parameters'. Prints one JSON object: what the library
// returned, or the error it threw (its class, code, OAuth error and parsed challenges).
// The issuer is plain http on 127.0.0.1, which the libraries allow only when asked to.
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';
import * as jose from 'jose';

const [scenario, raw] = process.argv.slice(2);
const params = JSON.parse(raw ?? '{}');
const insecure = { [oauth.allowInsecureRequests]: true };

async function discover(issuer) {
  const url = new URL(issuer);
  const response = await oauth.discoveryRequest(url, { algorithm: 'oidc', ...insecure });
  return oauth.processDiscoveryResponse(url, response);
}

// openid-client's configuration for a client registered with `metadata` (its secret, when
// given, sent with client_secret_basic; a public client authenticates with `none`).
function configure({ issuer, client_id, client_secret, metadata }) {
  const auth = client_secret ? client.ClientSecretBasic(client_secret) : client.None();
  return client.discovery(new URL(issuer), client_id, metadata ?? {}, auth, {
    execute: [client.allowInsecureRequests],
  });
}

const header = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString());

const scenarios = {
  // openid-client's authorization request (PKCE, state, nonce, plus `extra` parameters):
  // the URL for the test's browser, and what code_grant needs to check the answer.
  async authorization_url(params) {
    const config = await configure(params);
    const code_verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: params.redirect_uri,
      scope: params.scope,
      code_challenge: await client.calculatePKCECodeChallenge(code_verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...(params.extra ?? {}),
    });
    return { url: url.href, code_verifier, state, nonce };
  },

  // openid-client's code redemption of the `callback` URL the browser reached: it checks
  // the response's iss and state, the ID token's signature (against JWKS, with the
  // algorithm the client registered, RS256 by default), nonce and at_hash. With
  // `userinfo`, it also fetches the userinfo claims.
  // With `form_post` (the body the browser POSTed to the redirect URI), the response
  // came in response_mode=form_post.
  async code_grant(params) {
    const config = await configure(params);
    const answer = params.form_post
      ? new Request(params.redirect_uri, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: params.form_post,
        })
      : new URL(params.callback);
    const tokens = await client.authorizationCodeGrant(config, answer, {
      pkceCodeVerifier: params.code_verifier,
      expectedState: params.state,
      expectedNonce: params.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    const userinfo = params.userinfo
      ? await client.fetchUserInfo(config, tokens.access_token, claims.sub)
      : null;
    return {
      claims,
      id_token_header: header(tokens.id_token),
      access_token_header: header(tokens.access_token),
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token ?? null,
      id_token: tokens.id_token,
      userinfo,
    };
  },


  // openid-client's RP-initiated logout URL (end_session_endpoint from discovery).
  async end_session_url(params) {
    const config = await configure(params);
    return { url: client.buildEndSessionUrl(config, params.logout).href };
  },

  // A relying party's validation of a back-channel logout token (Back-Channel Logout 1.0
  // §2.6), with jose: the signature against the issuer's JWKS in the client's ID-token
  // algorithm, iss, aud, iat, `typ: logout+jwt`, the logout event, sid or sub, no nonce.
  async logout_token({ issuer, client_id, token, alg }) {
    const as = await discover(issuer);
    const jwks = jose.createRemoteJWKSet(new URL(as.jwks_uri));
    const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
      issuer,
      audience: client_id,
      typ: 'logout+jwt',
      algorithms: [alg ?? 'RS256'],
      requiredClaims: ['iat', 'exp', 'jti', 'events'],
      maxTokenAge: '2 minutes',
    });
    const event = payload.events?.['http://schemas.openid.net/event/backchannel-logout'];
    if (typeof event !== 'object' || event === null || Array.isArray(event)) {
      throw new Error('the token carries no back-channel logout event');
    }
    if (!payload.sid && !payload.sub) throw new Error('the token names neither sid nor sub');
    if ('nonce' in payload) throw new Error('a logout token must not carry a nonce');
    return { header: protectedHeader, claims: payload };
  },

  // openid-client's device authorization request (RFC 8628 §3.1).
  async device_start(params) {
    const config = await configure(params);
    const started = await client.initiateDeviceAuthorization(config, { scope: params.scope });
    return started;
  },

  // openid-client polling the token endpoint for a device the user already approved or
  // denied (it waits the interval first).
  async device_poll(params) {
    const config = await configure(params);
    const tokens = await client.pollDeviceAuthorizationGrant(config, params.started);
    return { claims: tokens.claims() ?? null, scope: tokens.scope ?? null, access_token: tokens.access_token };
  },

  // oauth4webapi's client credentials grant with client_secret_basic.
  async client_credentials({ issuer, client_id, client_secret, scope }) {
    const as = await discover(issuer);
    const client = { client_id };
    const response = await oauth.clientCredentialsGrantRequest(
      as, client, oauth.ClientSecretBasic(client_secret), new URLSearchParams({ scope }), insecure,
    );
    const tokens = await oauth.processClientCredentialsResponse(as, client, response);
    return { token_type: tokens.token_type, scope: tokens.scope };
  },

  // oauth4webapi's pushed authorization request (RFC 9126) with client_secret_basic, PKCE
  // and `extra` parameters: the request_uri for the test's browser and the PKCE verifier
  // for the redemption.
  async par({ issuer, client_id, client_secret, redirect_uri, scope, extra }) {
    const as = await discover(issuer);
    const client = { client_id };
    const code_verifier = oauth.generateRandomCodeVerifier();
    const parameters = new URLSearchParams({
      response_type: 'code',
      redirect_uri,
      scope,
      code_challenge: await oauth.calculatePKCECodeChallenge(code_verifier),
      code_challenge_method: 'S256',
      ...(extra ?? {}),
    });
    const response = await oauth.pushedAuthorizationRequest(
      as, client, oauth.ClientSecretBasic(client_secret), parameters, insecure,
    );
    const pushed = await oauth.processPushedAuthorizationResponse(as, client, response);
    return { ...pushed, code_verifier, endpoint: as.pushed_authorization_request_endpoint };
  },

  // oauth4webapi's client credentials grant with a DPoP key (`alg`, ES256 by default),
  // then a DPoP-protected GET of `resource`. Each step retries once when the server asks
  // for a nonce (use_dpop_nonce), as RFC 9449 §8 has clients do; `retries` counts them.
  async dpop_client_credentials({ issuer, client_id, client_secret, scope, resource, alg }) {
    const as = await discover(issuer);
    const client = { client_id };
    const keyPair = await oauth.generateKeyPair(alg ?? 'ES256');
    const DPoP = oauth.DPoP(client, keyPair);
    let retries = 0;
    const once = async (step) => {
      try {
        return await step();
      } catch (e) {
        if (!oauth.isDPoPNonceError(e)) throw e;
        retries += 1;
        return step();
      }
    };
    const tokens = await once(async () => {
      const response = await oauth.clientCredentialsGrantRequest(
        as, client, oauth.ClientSecretBasic(client_secret), new URLSearchParams({ scope }),
        { DPoP, ...insecure },
      );
      return oauth.processClientCredentialsResponse(as, client, response);
    });
    const answer = await once(() =>
      oauth.protectedResourceRequest(
        tokens.access_token, 'GET', new URL(resource), new Headers(), null, { DPoP, ...insecure },
      ),
    );
    const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));
    return {
      token_type: tokens.token_type,
      access_token: tokens.access_token,
      jkt,
      status: answer.status,
      body: await answer.json(),
      retries,
    };
  },
};

function described(e) {
  return {
    threw: e.constructor?.name ?? 'Error',
    code: e.code ?? null,
    status: e.status ?? null,
    error: e.error ?? null,
    error_description: e.error_description ?? null,
    challenges: Array.isArray(e.cause) ? e.cause : null,
    message: String(e.message ?? e),
  };
}

const run = scenarios[scenario];
if (!run) {
  console.log(JSON.stringify({ threw: 'UnknownScenario', message: scenario }));
  process.exit(2);
}
try {
  console.log(JSON.stringify({ ok: await run(params) }));
} catch (e) {
  console.log(JSON.stringify(described(e)));
}
