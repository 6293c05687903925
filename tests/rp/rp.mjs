// Third-party relying parties against a running Gatehouse, for tests/api/interop.rs.
// Usage: node rp.mjs SCENARIO 'JSON parameters'. Prints one JSON object: what the library
// returned, or the error it threw (its class, code, OAuth error and parsed challenges).
// The issuer is plain http on 127.0.0.1, which the libraries allow only when asked to.
import * as oauth from 'oauth4webapi';

const [scenario, raw] = process.argv.slice(2);
const params = JSON.parse(raw ?? '{}');
const insecure = { [oauth.allowInsecureRequests]: true };

async function discover(issuer) {
  const url = new URL(issuer);
  const response = await oauth.discoveryRequest(url, { algorithm: 'oidc', ...insecure });
  return oauth.processDiscoveryResponse(url, response);
}

const scenarios = {
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
