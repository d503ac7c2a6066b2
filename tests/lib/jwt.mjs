// jwt.mjs - tokens minted in the tests with Node's crypto: HS256, RS256,
// ES256 (raw R||S) and EdDSA, and the key files a broker is configured with.
// Also the raw pieces to build broken tokens (b64url, sign).
import crypto from 'node:crypto';

export const b64url = (buf) => Buffer.from(buf).toString('base64url');
export const enc = (obj) => b64url(typeof obj === 'string' ? obj : JSON.stringify(obj));

/** A fresh HS256 key: {alg, secret}. */
export const hsKey = () => ({ alg: 'HS256', secret: crypto.randomBytes(32).toString('hex') });

/** A key of each kind, made once per test file. */
export function makeKeys() {
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ed = crypto.generateKeyPairSync('ed25519');
    const pem = (k) => k.publicKey.export({ type: 'spki', format: 'pem' });
    return {
        hs: hsKey(),
        rs: { alg: 'RS256', ...rsa, pem: pem(rsa) },
        es: { alg: 'ES256', ...ec, pem: pem(ec) },
        ed: { alg: 'EdDSA', ...ed, pem: pem(ed) },
    };
}

/** The signature of 'input' with key 'k' as its alg wants it. */
export function sign(k, input) {
    switch (k.alg) {
    case 'HS256': return crypto.createHmac('sha256', k.secret).update(input).digest();
    case 'RS256': return crypto.sign('sha256', Buffer.from(input), k.privateKey);
    case 'ES256': return crypto.sign('sha256', Buffer.from(input), { key: k.privateKey, dsaEncoding: 'ieee-p1363' });
    case 'EdDSA': return crypto.sign(null, Buffer.from(input), k.privateKey);
    default: throw new Error(`no alg ${k.alg}`);
    }
}

/**
 * A compact JWS of 'claims' signed with 'k'. opts.header adds to the header
 * ({alg, typ: "JWT"}, and kid when opts.kid); now-relative 'exp'/'nbf' can
 * be given as opts.expIn / opts.nbfIn seconds.
 */
export function mint(k, claims, opts = {}) {
    const now = Math.floor(Date.now() / 1000);
    const c = { ...claims };
    if (opts.expIn !== undefined) c.exp = now + opts.expIn;
    if (opts.nbfIn !== undefined) c.nbf = now + opts.nbfIn;
    const header = { alg: k.alg, typ: 'JWT', ...(opts.kid ? { kid: opts.kid } : {}), ...(opts.header || {}) };
    const input = `${enc(header)}.${enc(c)}`;
    return `${input}.${b64url(sign(k, input))}`;
}

export const sha256hex = (s) => crypto.createHash('sha256').update(s).digest('hex');
