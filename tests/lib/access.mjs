// access.mjs - access-control set-ups several tests share: a broker's "auth"
// config with its HS256 key, the credentials that go with it, and the checks
// of a route that only 'manage' may use.
import { checkError } from './broker.mjs';
import { hsKey, mint } from './jwt.mjs';

/**
 * For the routes behind 'manage' (/dashboard, /traces, /sessions): a role
 * 'admin' allowed everything on every channel, manage included, and a role
 * 'user' with 'userRules'; one HS256 key. Returns
 *   {auth: the config's "auth",
 *    token(sub, role): a JWT valid 10 minutes,
 *    bearer(sub, role): {Authorization: "Bearer <token>"}}
 */
export function manageAuth(userRules) {
    const key = hsKey();
    const token = (sub, role) => mint(key, { sub, role }, { expIn: 600 });
    return {
        auth: {
            jwt: { keys: [{ alg: 'HS256', secret: key.secret }] },
            roles: {
                admin: [{ match: '*', allow: ['subscribe', 'publish', 'history', 'manage'] }],
                user: userRules,
            },
        },
        token,
        bearer: (sub, role) => ({ Authorization: `Bearer ${token(sub, role)}` }),
    };
}

/**
 * Each request ([method, path, body]) on broker 'b' is refused: 401
 * unauthorized without credentials, 403 forbidden with 'headers' (the
 * credentials of a role without manage on the broker).
 */
export async function checkManageOnly(assert, b, requests, headers) {
    for (const [m, p, body] of requests) {
        checkError(assert, await b.req(m, p, { body }), 401, 'unauthorized', `${m} ${p} anonymous`);
        checkError(assert, await b.req(m, p, { body, headers }), 403, 'forbidden', `${m} ${p} without manage`);
    }
}

/**
 * Readers and a writer (history queries, pattern streams): an anonymous
 * client is a 'reader', who may subscribe to and read the history of
 * open.*, and only subscribe to live.*; a 'writer' may publish anywhere.
 * Returns {auth: the config's "auth", W: the writer's Authorization header
 * (valid an hour)}.
 */
export function readerWriterAuth() {
    const key = hsKey();
    return {
        auth: {
            anonymous_role: 'reader',
            roles: {
                reader: [{ match: 'open.*', allow: ['subscribe', 'history'] }, { match: 'live.*', allow: ['subscribe'] }],
                writer: [{ match: '*', allow: ['publish'] }],
            },
            jwt: { keys: [{ alg: 'HS256', secret: key.secret }] },
        },
        W: { Authorization: `Bearer ${mint(key, { sub: 'w', role: 'writer' }, { expIn: 3600 })}` },
    };
}
