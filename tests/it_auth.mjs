// it_auth.mjs - access control through the real binary: identities from JWTs
// (HS256, RS256, ES256, EdDSA) and API keys, by header, cookie and query
// parameter; roles x channel patterns x actions, {sub}, a token's own grants;
// history needing subscribe and history; connections that belong to their
// creator; streams that end with their token; a catalogue of bad tokens that
// are refused and change nothing; protected mode; CORS origin lists.
// Runs on both stores (SSEB_STORE).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { startBroker, runBroker, tempFile, uniq, checkError, chPath, evPath } from './lib/broker.mjs';
import { makeKeys, mint, enc, b64url, sign, sha256hex } from './lib/jwt.mjs';

const K = makeKeys();
const ISS = 'https://issuer.test';
const AUD = 'ssebroker-test';
const APIKEY = `sk_${crypto.randomBytes(24).toString('hex')}`;

const ROLES = {
    backend: [{ match: '*', allow: ['publish', 'subscribe', 'history', 'manage'] }],
    user: [
        { match: 'user.{sub}.*', allow: ['subscribe', 'history', 'publish'] },
        { match: 'news.*', allow: ['subscribe'] },
        { match: 'chat.?', allow: ['publish', 'subscribe'] },
    ],
    reader: [{ match: 'news.*', allow: ['subscribe', 'history'] }],
    guest: [{ match: 'public.*', allow: ['subscribe'] }],
};

function authConfig(extra = {}) {
    return {
        roles: ROLES,
        anonymous_role: 'guest',
        jwt: {
            keys: [
                { kid: 'hs1', alg: 'HS256', secret: K.hs.secret },
                { kid: 'rs1', alg: 'RS256', public_key_file: tempFile('rs.pem', K.rs.pem) },
                { alg: 'ES256', public_key_file: tempFile('es.pem', K.es.pem) },
                { kid: 'ed1', alg: 'EdDSA', public_key_file: tempFile('ed.pem', K.ed.pem) },
            ],
            issuer: ISS,
            audience: AUD,
            leeway_s: 0,
        },
        api_keys: [{ name: 'backend-svc', role: 'backend', sha256: sha256hex(APIKEY) }],
        ...extra,
    };
}

/** A token for 'sub' with 'role' (HS256, kid hs1 unless told), valid for an hour. */
function tok(sub, role, { key = K.hs, kid = 'hs1', claims = {}, expIn = 3600, ...opts } = {}) {
    const c = { sub, iss: ISS, aud: AUD, ...(role ? { role } : {}), ...claims };
    return mint(key, c, { kid, expIn, ...opts });
}

const bearer = (t) => ({ Authorization: `Bearer ${t}` });
const KEYH = bearer(APIKEY);

describe('access control', () => {
    let b;
    before(async () => {
        b = await startBroker({ config: { auth: authConfig(), limits: { max_headers: 262144 } } });
    });
    after(async () => {
        assert.equal(await b.stop(), 0);
    });

    /** Publish 'data' to 'ch' with the API key; returns the id. */
    async function seed(ch, data = 'x') {
        const r = await b.req('POST', evPath(ch), { headers: KEYH, body: data });
        assert.equal(r.status, 201, r.text);
        return r.json.id;
    }

    it('anonymous requests get the anonymous role; beyond it 401 with a challenge', async () => {
        const ch = `public.${uniq()}`;
        const s = await b.stream(evPath(ch));
        assert.equal(s.status, 200, 'guest may subscribe to public.*');
        s.close();
        const pub = await b.req('POST', evPath(ch), { body: 'x' });
        checkError(assert, pub, 401, 'unauthorized', 'anonymous publish');
        assert.equal(pub.headers['www-authenticate'], 'Bearer realm="ssebroker"');
        for (const [m, p] of [['GET', '/nodes'], ['GET', '/status'], ['GET', '/channels'],
            ['DELETE', chPath(ch)], ['GET', evPath(ch)], ['GET', evPath(`private.${uniq()}`)]])
            checkError(assert, await b.req(m, p, { headers: { Accept: p.endsWith('events') && m === 'GET' ? 'application/json' : '*/*' } }),
                401, 'unauthorized', `anonymous ${m} ${p}`);
        const st = await b.stream(evPath(`private.${uniq()}`));
        assert.equal(st.status, 401, 'anonymous stream outside public.*: 401, the browser stops');
        assert.equal((await b.req('GET', '/health')).status, 200, '/health stays open');
        assert.equal((await b.req('GET', '/')).status, 200, 'the page stays open');
    });

    it('an API key, by Authorization: Bearer or X-API-Key, acts as its role', async () => {
        const ch = `any.${uniq()}`;
        assert.equal((await b.req('POST', evPath(ch), { headers: KEYH, body: 'a' })).status, 201);
        assert.equal((await b.req('POST', evPath(ch), { headers: { 'X-API-Key': APIKEY }, body: 'b' })).status, 201);
        for (const p of ['/status', '/nodes', '/channels', chPath(ch), evPath(ch)])
            assert.equal((await b.req('GET', p, { headers: KEYH })).status, 200, `backend GET ${p}`);
        const h = await b.req('GET', evPath(ch), { headers: KEYH });
        assert.deepEqual(h.json.events.map((e) => e.data), ['a', 'b']);
        const bad = await b.req('POST', evPath(ch), { headers: { 'X-API-Key': `${APIKEY}x` }, body: 'c' });
        checkError(assert, bad, 401, 'unauthorized', 'a wrong API key');
        assert.match(bad.headers['www-authenticate'], /^Bearer realm="ssebroker", error="invalid_token", error_description="[^"]+"$/);
        assert.equal((await b.req('DELETE', chPath(ch), { headers: KEYH })).status, 204, 'manage: delete');
    });

    it('every key algorithm: HS256 (kid), RS256 (kid), ES256 (no kid), EdDSA (kid)', async () => {
        for (const [key, kid] of [[K.hs, 'hs1'], [K.rs, 'rs1'], [K.es, null], [K.ed, 'ed1']]) {
            const t = tok('alice', 'user', { key, kid });
            const ch = `user.alice.${key.alg}`;
            const s = await b.stream(evPath(ch), { headers: bearer(t) });
            assert.equal(s.status, 200, `${key.alg}: subscribe`);
            await s.waitOpen();
            const r = await b.req('POST', evPath(ch), { headers: bearer(t), body: key.alg });
            assert.equal(r.status, 201, `${key.alg}: publish ${r.text}`);
            const ev = await s.waitEvents(1);
            assert.equal(ev[0].data, key.alg);
            s.close();
        }
    });

    it('roles x patterns x actions, {sub}, and a token\'s own grants', async () => {
        const alice = bearer(tok('alice', 'user'));
        const reader = bearer(tok('rita', 'reader'));
        const news = `news.${uniq()}`, chat = `chat.${uniq()}`, mine = 'user.alice.inbox', bobs = 'user.bob.inbox';
        for (const ch of [news, chat, mine, bobs, `${chat}.deep`]) await seed(ch);
        const sub = async (h, ch) => {
            const s = await b.stream(evPath(ch), { headers: h });
            s.close();
            return s.status;
        };
        const pub = async (h, ch) => (await b.req('POST', evPath(ch), { headers: h, body: 'p' })).status;
        const hist = async (h, ch) => (await b.req('GET', evPath(ch), { headers: h })).status;
        const rows = [
            ['alice subscribes to her own channel', sub, alice, mine, 200],
            ['alice subscribes to bob\'s', sub, alice, bobs, 403],
            ['alice subscribes to news.*', sub, alice, news, 200],
            ['alice subscribes to "news" itself (* is zero or more)', sub, alice, 'news', 200],
            ['alice subscribes to chat.? (one segment)', sub, alice, chat, 200],
            ['alice subscribes to chat.x.y (two segments)', sub, alice, `${chat}.deep`, 403],
            ['alice publishes to chat.?', pub, alice, chat, 201],
            ['alice publishes to her own', pub, alice, mine, 201],
            ['alice publishes to news', pub, alice, news, 403],
            ['alice publishes to bob\'s', pub, alice, bobs, 403],
            ['alice reads her own history', hist, alice, mine, 200],
            ['alice reads news history (subscribe, no history)', hist, alice, news, 403],
            ['alice reads chat history (subscribe, no history)', hist, alice, chat, 403],
            ['the reader reads news history', hist, reader, news, 200],
            ['the reader may not publish', pub, reader, news, 403],
            ['the reader may not read user channels', hist, reader, mine, 403],
        ];
        for (const [what, fn, h, ch, want] of rows)
            assert.equal(await fn(h, ch), want, what);
        for (const [m, p] of [['GET', '/channels'], ['GET', '/nodes'], ['GET', '/status'],
            ['DELETE', chPath(news)], ['PUT', chPath(mine)], ['DELETE', chPath(mine)],
            ['GET', `${chPath(mine)}/connections`]]) {
            const r = await b.req(m, p, { headers: alice, body: m === 'PUT' ? {} : undefined });
            checkError(assert, r, 403, 'forbidden', `alice ${m} ${p} needs manage`);
        }
        assert.equal((await b.req('GET', chPath(news), { headers: alice })).status, 200,
            'a channel\'s description: subscribe is enough');
        // The token's claim "ssebroker" adds to its role.
        const extra = bearer(tok('alice', 'user', { claims: { ssebroker: { publish: [news], history: ['news.*'] } } }));
        assert.equal(await pub(extra, news), 201, 'a granted publish');
        assert.equal(await hist(extra, news), 200, 'granted history, subscribe from the role');
        assert.equal(await pub(extra, `news.${uniq()}`), 403, 'only what was granted');
        // A token without a role has its own grants only.
        const bare = bearer(tok('zed', null, { claims: { ssebroker: { subscribe: ['user.{sub}'] } } }));
        assert.equal(await sub(bare, 'user.zed'), 200, '{sub} in a token grant');
        assert.equal(await sub(bare, news), 403, 'no role: nothing else');
    });

    it('credentials by cookie and query parameter; the header wins over the cookie', async () => {
        const alice = tok('alice', 'user'), bob = tok('bob', 'user');
        const ch = 'user.alice.where';
        await seed(ch);
        let s = await b.stream(evPath(ch), { headers: { Cookie: `theme=dark; ssebroker_token=${alice}; x=1` } });
        assert.equal(s.status, 200, 'the cookie');
        s.close();
        s = await b.stream(evPath(ch, `?access_token=${alice}`));
        assert.equal(s.status, 200, 'the query parameter');
        s.close();
        s = await b.stream(evPath(ch, `?access_token=${bob}`));
        assert.equal(s.status, 403, 'the query parameter: bob');
        s.close();
        s = await b.stream(evPath(ch), { headers: { ...bearer(bob), Cookie: `ssebroker_token=${alice}` } });
        assert.equal(s.status, 403, 'header (bob) and cookie (alice) disagree: the header wins');
        s.close();
        s = await b.stream(evPath(ch), { headers: { ...bearer('not.a.token'), Cookie: `ssebroker_token=${alice}` } });
        assert.equal(s.status, 401, 'a bad header is not rescued by a good cookie');
        s.close();
        s = await b.stream(evPath(ch), { headers: { Cookie: `ssebroker_token=${bob}` }, timeout: 5000 });
        assert.equal(s.status, 403, 'the cookie: bob');
        s.close();
    });

    it('replay and history need history as well as subscribe: Last-Event-ID without it is live only', async () => {
        const ch = `news.${uniq()}`;
        const first = await seed(ch, 'old1');
        await seed(ch, 'old2');
        const alice = bearer(tok('alice', 'user'));
        const s = await b.stream(evPath(ch), { headers: { ...alice, 'Last-Event-ID': first } });
        assert.equal(s.status, 200);
        const r = await b.stream(evPath(ch), { headers: { ...bearer(tok('rita', 'reader')), 'Last-Event-ID': first } });
        await r.waitEvents(1);
        await seed(ch, 'new');
        await s.waitEvents(1);
        await r.waitEvents(2);
        assert.deepEqual(s.events.map((e) => e.data), ['new'], 'no history right: nothing replayed');
        assert.deepEqual(r.events.map((e) => e.data), ['old2', 'new'], 'the reader: replayed');
        s.close();
        r.close();
        const q = await b.stream(evPath(ch, `?lastEventId=${first}`), { headers: alice });
        await seed(ch, 'newer');
        await q.waitEvents(1);
        assert.deepEqual(q.events.map((e) => e.data), ['newer'], 'lastEventId in the query: the same');
        q.close();
    });

    it('a durable connection belongs to its creator; manage may act on any', async () => {
        const ch = `chat.${uniq()}`;
        const alice = bearer(tok('alice', 'user')), bob = bearer(tok('bob', 'user'));
        const made = await b.req('POST', `${chPath(ch)}/connections`, { headers: alice });
        assert.equal(made.status, 201, made.text);
        const id = made.json.id;
        const cp = `${chPath(ch)}/connections/${id}`;
        const got = await b.req('GET', cp, { headers: alice });
        assert.equal(got.status, 200);
        assert.equal(got.json.owner, 'alice', 'the owner is in the connection');
        assert.equal(got.json.owner_role, 'user', 'and the role it had then');
        const listed = await b.req('GET', `${chPath(ch)}/connections`, { headers: KEYH });
        assert.equal(listed.status, 200, listed.text);
        assert.deepEqual(listed.json.connections.map((x) => [x.id, x.owner, x.owner_role]),
            [[id, 'alice', 'user']], 'the list shows the same');
        for (const [m, p] of [['GET', cp], ['DELETE', cp], ['POST', `${cp}/stop`], ['POST', `${cp}/start`],
            ['POST', `${cp}/events`]])
            checkError(assert, await b.req(m, p, { headers: bob, body: m === 'POST' ? 'x' : undefined }),
                403, 'forbidden', `bob ${m} ${p}`);
        const bs = await b.stream(`${cp}/events`, { headers: bob });
        assert.equal(bs.status, 403, 'bob may not attach');
        bs.close();
        checkError(assert, await b.req('GET', cp), 401, 'unauthorized', 'anonymous');
        // Alice attaches and gets what is published, and what she dispatches to it.
        const as = await b.stream(`${cp}/events`, { headers: alice });
        assert.equal(as.status, 200);
        assert.equal((await b.req('POST', evPath(ch), { headers: alice, body: 'to all' })).status, 201);
        assert.equal((await b.req('POST', `${cp}/events`, { headers: alice, body: 'to me' })).status, 201);
        await as.waitEvents(2);
        assert.deepEqual(as.events.map((e) => e.data).sort(), ['to all', 'to me']);
        as.close();
        assert.equal((await b.req('GET', cp, { headers: KEYH })).status, 200, 'manage: read');
        assert.equal((await b.req('DELETE', cp, { headers: KEYH })).status, 204, 'manage: delete');
        // An anonymous connection: anyone who may subscribe and knows its id.
        const pch = `public.${uniq()}`;
        const anon = await b.req('POST', `${chPath(pch)}/connections`);
        assert.equal(anon.status, 201, anon.text);
        assert.equal(anon.json.owner, undefined, 'no owner');
        assert.equal(anon.json.owner_role, 'guest', 'the anonymous role');
        const ap = `${chPath(pch)}/connections/${anon.json.id}`;
        assert.equal((await b.req('GET', ap)).status, 200, 'another anonymous caller');
        const mine = await b.req('POST', `${chPath(`user.alice.${uniq()}`)}/connections`, { headers: alice });
        assert.equal(mine.status, 201);
    });

    it('a stream opened with a token ends when the token does, after a comment, with a 200', async () => {
        const ch = 'user.alice.expiring';
        const t = tok('alice', 'user', { expIn: 2 });
        const s = await b.stream(evPath(ch), { headers: bearer(t) });
        assert.equal(s.status, 200);
        await s.waitEnd(6000);
        assert.ok(s.comments.some((c) => /token expired/.test(c)), `a comment says why: ${JSON.stringify(s.comments)}`);
        assert.equal(s.endReason, 'end', 'a clean end: the browser reconnects');
        const again = await b.stream(evPath(ch), { headers: bearer(t) });
        assert.equal(again.status, 401, 'the same token is refused now');
        again.close();
        const long = await b.stream(evPath(ch), { headers: bearer(tok('alice', 'user', { expIn: 3600 })) });
        await long.waitOpen();
        assert.equal(long.ended, false, 'a fresh token: the stream goes on');
        long.close();
    });

    it('bad tokens: each refused with 401 and a challenge, nothing created', async () => {
        const ch = `user.alice.${uniq()}`;
        const ok = tok('alice', 'user');
        const [h, p] = ok.split('.');
        const claims = { sub: 'alice', role: 'user', iss: ISS, aud: AUD, exp: Math.floor(Date.now() / 1000) + 3600 };
        const raw = (header, payload, key = K.hs) => {
            const input = `${enc(header)}.${enc(payload)}`;
            return `${input}.${b64url(sign(key, input))}`;
        };
        const hsWith = (secret, header, payload = claims) => {
            const input = `${enc(header)}.${enc(payload)}`;
            return `${input}.${b64url(crypto.createHmac('sha256', secret).update(input).digest())}`;
        };
        const other = makeKeys();
        const esDer = (() => {
            const input = `${enc({ alg: 'ES256', typ: 'JWT' })}.${enc(claims)}`;
            return `${input}.${b64url(crypto.sign('sha256', Buffer.from(input), K.es.privateKey))}`;
        })();
        const rows = [
            ['alg none', `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`],
            ['alg none with a signature', `${enc({ alg: 'none' })}.${enc(claims)}.${b64url('x')}`],
            ['alg NONE', `${enc({ alg: 'NONE' })}.${enc(claims)}.${b64url('sig')}`],
            ['HS256 signed with the RSA public key (kid rs1)', hsWith(K.rs.pem, { alg: 'HS256', kid: 'rs1' })],
            ['HS256 signed with the RSA public key (no kid)', hsWith(K.rs.pem, { alg: 'HS256' })],
            ['HS256 with a wrong secret', mint(other.hs, claims, { kid: 'hs1' })],
            ['RS256 with another RSA key', mint(other.rs, claims, { kid: 'rs1' })],
            ['ES256 with another EC key', mint(other.es, claims)],
            ['EdDSA with another key', mint(other.ed, claims, { kid: 'ed1' })],
            ['an unknown kid', mint(K.hs, claims, { kid: 'nope' })],
            ['kid hs1 with alg RS256', mint(K.rs, claims, { kid: 'hs1' })],
            ['an unknown alg', raw({ alg: 'HS257' }, claims)],
            ['expired', tok('alice', 'user', { expIn: -10 })],
            ['not yet valid', tok('alice', 'user', { nbfIn: 60 })],
            ['exp as a string', raw({ alg: 'HS256', kid: 'hs1' }, { ...claims, exp: String(claims.exp) })],
            ['a wrong aud', mint(K.hs, { ...claims, aud: 'other' }, { kid: 'hs1' })],
            ['no aud', mint(K.hs, { ...claims, aud: undefined }, { kid: 'hs1' })],
            ['a wrong iss', mint(K.hs, { ...claims, iss: 'https://evil.test' }, { kid: 'hs1' })],
            ['no iss', mint(K.hs, { ...claims, iss: undefined }, { kid: 'hs1' })],
            ['truncated', ok.slice(0, -6)],
            ['the signature cut off', `${h}.${p}.`],
            ['an extra segment', `${ok}.${p}`],
            ['two segments', `${h}.${p}`],
            ['a bad base64url character', `${h}.${p.slice(0, 5)}+${p.slice(6)}.${ok.split('.')[2]}`],
            ['padding', `${ok}==`],
            ['a blank inside', `${h}.${p} .${ok.split('.')[2]}`],
            ['a header that is not JSON', `${b64url('{alg: HS256}')}.${p}.${ok.split('.')[2]}`],
            ['a header that is an array', raw(['HS256'], claims)],
            ['duplicate claims', (() => {
                const hd = enc({ alg: 'HS256', kid: 'hs1' });
                const pl = b64url(`{"sub":"bob","sub":"alice","role":"user","iss":"${ISS}","aud":"${AUD}","exp":${claims.exp}}`);
                return `${hd}.${pl}.${b64url(sign(K.hs, `${hd}.${pl}`))}`;
            })()],
            ['a duplicate header member', (() => {
                const hd = b64url('{"alg":"HS256","alg":"none","kid":"hs1"}');
                return `${hd}.${p}.${b64url(sign(K.hs, `${hd}.${p}`))}`;
            })()],
            ['a 10 KB token', tok('alice', 'user', { claims: { pad: 'x'.repeat(10 * 1024) } })],
            ['a 100 KB token', tok('alice', 'user', { claims: { pad: 'x'.repeat(100 * 1024) } })],
            ['a sub that is a number', mint(K.hs, { ...claims, sub: 42 }, { kid: 'hs1' })],
            ['no sub', mint(K.hs, { ...claims, sub: undefined }, { kid: 'hs1' })],
            ['an empty sub', mint(K.hs, { ...claims, sub: '' }, { kid: 'hs1' })],
            ['a sub of 300 bytes', mint(K.hs, { ...claims, sub: 'a'.repeat(300) }, { kid: 'hs1' })],
            ['a role that does not exist', tok('alice', 'admin')],
            ['a role that is a number', mint(K.hs, { ...claims, role: 7 }, { kid: 'hs1' })],
            ['an ssebroker claim that is a string', tok('alice', 'user', { claims: { ssebroker: '*' } })],
            ['an ssebroker claim granting manage', tok('alice', 'user', { claims: { ssebroker: { manage: ['*'] } } })],
            ['an ssebroker claim with a bad pattern', tok('alice', 'user', { claims: { ssebroker: { publish: ['a.*.b'] } } })],
            ['a crit header', raw({ alg: 'HS256', kid: 'hs1', crit: ['exp'] }, claims)],
            ['typ logout+jwt', raw({ alg: 'HS256', kid: 'hs1', typ: 'logout+jwt' }, claims)],
            ['an ES256 signature in DER form', esDer],
            ['a claims segment that is an array', raw({ alg: 'HS256', kid: 'hs1' }, [claims])],
            ['a changed payload', `${h}.${enc({ ...claims, sub: 'bob' })}.${ok.split('.')[2]}`],
        ];
        assert.ok(rows.length >= 30, `${rows.length} rows`);
        for (const [what, t] of rows) {
            const r = await b.req('POST', evPath(ch), { headers: bearer(t), body: 'nope' });
            checkError(assert, r, 401, 'unauthorized', what);
            assert.match(r.headers['www-authenticate'] || '', /error="invalid_token", error_description="[ -~]+"$/, `${what}: challenge`);
        }
        // The same tokens by cookie and by query parameter.
        for (const [what, t] of rows.slice(0, 12)) {
            const c = await b.req('POST', evPath(ch), { headers: { Cookie: `ssebroker_token=${t}` }, body: 'nope' });
            checkError(assert, c, 401, 'unauthorized', `${what} (cookie)`);
            const q = await b.req('POST', evPath(ch, `?access_token=${encodeURIComponent(t)}`), { body: 'nope' });
            checkError(assert, q, 401, 'unauthorized', `${what} (query)`);
        }
        for (const [what, hd] of [['Basic credentials', { Authorization: 'Basic YWxpY2U6cHc=' }],
            ['an empty bearer', { Authorization: 'Bearer ' }], ['a bare scheme', { Authorization: 'Bearer' }]])
            checkError(assert, await b.req('POST', evPath(ch), { headers: hd, body: 'nope' }), 401, 'unauthorized', what);
        // A good token without the right: 403, also nothing created.
        const bobs = `user.bob.${uniq()}`;
        checkError(assert, await b.req('POST', evPath(bobs), { headers: bearer(ok), body: 'nope' }),
            403, 'forbidden', 'a valid token without the right');
        checkError(assert, await b.req('GET', chPath(ch), { headers: KEYH }), 404, 'channel_not_found',
            'the channel was never created');
        const list = await b.req('GET', '/channels', { headers: KEYH });
        assert.equal(list.status, 200);
        assert.ok(!list.text.includes(bobs) && !list.text.includes(ch), 'neither channel is listed');
        assert.equal((await b.req('POST', evPath(ch), { headers: bearer(ok), body: 'yes' })).status, 201,
            'the good token still works');
        b.assertAlive();
    });

    it('CORS preflight allows the credential headers', async () => {
        const r = await b.req('OPTIONS', evPath('news.x'), { headers: { Origin: 'https://page.test', 'Access-Control-Request-Method': 'POST' } });
        assert.equal(r.status, 204);
        assert.match(r.headers['access-control-allow-headers'], /Authorization/);
        assert.match(r.headers['access-control-allow-headers'], /X-API-Key/);
    });
});

describe('access control: configuration', () => {
    it('no anonymous_role: anonymous requests are refused everywhere but /health', async () => {
        const { anonymous_role: _, ...cfg } = authConfig();
        const b = await startBroker({ config: { auth: cfg } });
        try {
            const s = await b.stream(evPath('public.x'));
            assert.equal(s.status, 401);
            s.close();
            assert.equal((await b.req('GET', '/health')).status, 200);
            assert.equal((await b.req('POST', evPath('user.alice.x'), { headers: bearer(tok('alice', 'user')), body: 'x' })).status, 201);
        } finally {
            assert.equal(await b.stop(), 0);
        }
    });

    it('keys from a JWK Set file and an HMAC secret_file', async () => {
        const jwk = { ...K.es.publicKey.export({ format: 'jwk' }), kid: 'es-jwks', use: 'sig' };
        const okp = { ...K.ed.publicKey.export({ format: 'jwk' }), kid: 'ed-jwks' };
        const enc1 = { kty: 'RSA', use: 'enc', kid: 'skipped', n: 'AQAB', e: 'AQAB' }; // not for signatures: skipped
        const secret = crypto.randomBytes(48).toString('base64url');
        const b = await startBroker({
            config: {
                auth: {
                    roles: ROLES,
                    jwt: {
                        jwks_file: tempFile('keys.jwks', { keys: [jwk, okp, enc1] }),
                        keys: [{ kid: 'file1', alg: 'HS384', secret_file: tempFile('hs.key', secret) }],
                    },
                },
            },
        });
        try {
            const ch = 'user.alice.jwks';
            const hs384 = (() => {
                const input = `${enc({ alg: 'HS384', kid: 'file1' })}.${enc({ sub: 'alice', role: 'user', exp: Math.floor(Date.now() / 1000) + 600 })}`;
                return `${input}.${b64url(crypto.createHmac('sha384', secret).update(input).digest())}`;
            })();
            for (const [what, t] of [['ES256 from the JWKS', mint(K.es, { sub: 'alice', role: 'user' }, { kid: 'es-jwks', expIn: 600 })],
                ['EdDSA from the JWKS', mint(K.ed, { sub: 'alice', role: 'user' }, { kid: 'ed-jwks', expIn: 600 })],
                ['HS384 from a secret_file', hs384]]) {
                const r = await b.req('POST', evPath(ch), { headers: bearer(t), body: what });
                assert.equal(r.status, 201, `${what}: ${r.text}`);
            }
            const wrong = mint(K.es, { sub: 'alice', role: 'user' }, { kid: 'ed-jwks', expIn: 600 });
            checkError(assert, await b.req('POST', evPath(ch), { headers: bearer(wrong), body: 'x' }), 401, 'unauthorized',
                'an ES256 token naming the EdDSA key');
        } finally {
            assert.equal(await b.stop(), 0);
        }
    });

    it('protected mode: no auth section, a non-loopback listen refuses to start and names the field', async () => {
        for (const listen of ['0.0.0.0:0', ':0', '[::]:0']) {
            const r = await runBroker(['--listen', listen]);
            assert.notEqual(r.code, 0, `${listen}: refused`);
            assert.match(r.stderr, /auth/, `${listen}: the message names auth: ${r.stderr}`);
        }
        const f = tempFile('public.json', { listen: '0.0.0.0:0' });
        const r = await runBroker(['--config', f]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /public\.json:\d+: field 'auth'/, r.stderr);
    });

    it('bad auth sections name the file, line and field', async () => {
        const cases = [
            [{ roles: { r: [{ match: 'a.*.b', allow: ['publish'] }] } }, /field 'auth.roles'/],
            [{ roles: ROLES, anonymous_role: 'nobody' }, /field 'auth.anonymous_role'/],
            [{ roles: ROLES, jwt: { keys: [{ alg: 'HS256', secret: 'short' }] } }, /field 'auth.jwt.keys\[0\]\.secret'/],
            [{ roles: ROLES, jwt: { keys: [{ alg: 'none', secret: 'x'.repeat(40) }] } }, /field 'auth.jwt.keys\[0\]\.alg'/],
            [{ roles: ROLES, jwt: { keys: [{ alg: 'RS256', public_key_file: '/nonexistent/k.pem' }] } }, /k\.pem|public_key_file/],
            [{ roles: ROLES, api_keys: [{ name: 'x', role: 'nope', sha256: sha256hex('k') }] }, /field 'auth.api_keys\[0\]\.role'/],
            [{ roles: ROLES, api_keys: [{ name: 'x', role: 'backend', sha256: 'zz' }] }, /field 'auth.api_keys\[0\]'/],
            [{ roles: ROLES, cookie: 'a b' }, /field 'auth.cookie'/],
            [{ roles: ROLES, surprise: 1 }, /field 'auth.surprise': unknown key/],
        ];
        for (const [auth, re] of cases) {
            const f = tempFile('bad.json', { auth });
            const r = await runBroker(['--listen', '127.0.0.1:0', '--config', f]);
            assert.notEqual(r.code, 0, JSON.stringify(auth));
            assert.match(r.stderr, re, `${JSON.stringify(auth)}: ${r.stderr}`);
            assert.match(r.stderr, /bad\.json/, 'names the file');
        }
    });

    it('CORS: a list of origins echoes a listed Origin with credentials, never *', async () => {
        const b = await startBroker({ config: { auth: authConfig(), cors_origin: ['https://a.test', 'https://b.test'] } });
        try {
            const r = await b.req('GET', '/health', { headers: { Origin: 'https://b.test' } });
            assert.equal(r.headers['access-control-allow-origin'], 'https://b.test');
            assert.equal(r.headers['access-control-allow-credentials'], 'true');
            assert.match(r.headers.vary || '', /Origin/);
            const e = await b.req('GET', '/health', { headers: { Origin: 'https://evil.test' } });
            assert.equal(e.headers['access-control-allow-origin'], undefined, 'an origin not listed');
            assert.match(e.headers.vary || '', /Origin/);
            const s = await b.stream(evPath('user.alice.cors'), { headers: { Origin: 'https://a.test', Cookie: `ssebroker_token=${tok('alice', 'user')}` } });
            assert.equal(s.status, 200);
            assert.equal(s.headers['access-control-allow-origin'], 'https://a.test', 'on a stream too');
            assert.equal(s.headers['access-control-allow-credentials'], 'true');
            s.close();
            const err = await b.req('POST', evPath('user.alice.cors'), { headers: { Origin: 'https://a.test' }, body: 'x' });
            assert.equal(err.status, 401);
            assert.equal(err.headers['access-control-allow-origin'], 'https://a.test', 'on a refusal too');
        } finally {
            assert.equal(await b.stop(), 0);
        }
    });
});
