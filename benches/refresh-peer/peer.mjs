// node oidc-provider 9 for the refresh-grant comparison: one confidential client
// (client_secret_basic) with refresh-token rotation and ES256 JWT access tokens, and N
// refresh tokens minted at start (printed one per line to the file given), so the load
// can chain rotations from them.
//
//   NODE_ENV=production node peer.mjs PORT TOKENS_FILE N
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const [PORT, FILE, N] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4] || 64)];
const issuer = `http://127.0.0.1:${PORT}`;
const RESOURCE = 'urn:bench:api';
const key = { ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
  kid: 'es', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  jwks: { keys: [key] },
  clients: [{
    client_id: 'bench-rp',
    client_secret: 'bench-secret-0123456789abcdef0123456789abcdef',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['https://rp.example/cb'],
    scope: 'openid offline_access api:read',
    id_token_signed_response_alg: 'ES256',
  }],
  scopes: ['openid', 'offline_access', 'api:read'],
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  rotateRefreshToken: true,
  issueRefreshToken: async () => true,
  ttl: { RefreshToken: 30 * 24 * 3600, AccessToken: 600, IdToken: 600, Grant: 30 * 24 * 3600 },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({
        scope: 'api:read', audience: RESOURCE, accessTokenTTL: 600,
        accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

const client = await provider.Client.find('bench-rp');
const tokens = [];
for (let i = 0; i < N; i += 1) {
  const grant = new provider.Grant({ accountId: `user-${i}`, clientId: client.clientId });
  grant.addOIDCScope('openid offline_access');
  grant.addResourceScope(RESOURCE, 'api:read');
  const grantId = await grant.save();
  const now = Math.floor(Date.now() / 1000);
  const rt = new provider.RefreshToken({
    accountId: `user-${i}`, client, grantId, scope: 'openid offline_access api:read',
    resource: RESOURCE, gty: 'authorization_code', authTime: now, iat: now,
  });
  tokens.push(await rt.save());
}
writeFileSync(FILE, `${tokens.join('\n')}\n`);

const server = provider.listen(PORT, '127.0.0.1', () => console.log(`READY ${issuer}`));
const stop = () => { server.close(() => process.exit(0)); setTimeout(() => process.exit(0), 1000).unref(); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
