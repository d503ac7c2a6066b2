// it_badinput.mjs - one table of bad requests. Each row: the request, the
// expected status and error code; after each row the observable state (channel
// list, the seeded channel's history and connection) must be unchanged and the
// broker still alive and serving.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, checkError } from './lib/broker.mjs';

const MAX_BODY = 16384; // small, but big enough for a 1001-element batch to be parsed
let b;

before(async () => {
    b = await startBroker({ config: { limits: { max_body: MAX_BODY } } });
});

after(async () => {
    if (b) assert.equal(await b.stop(), 0, 'broker exit code after SIGTERM');
});

const JSON_CT = { 'Content-Type': 'application/json' };
const TEXT_CT = { 'Content-Type': 'text/plain' };
const SEED = 'seed';
const EV = `/channels/${SEED}/events`;
const long = (n, ch = 'a') => ch.repeat(n);

// status: number or array of acceptable numbers; code: string, array, or null
// (null: the status is checked only, e.g. 413 that libevent may answer itself).
function rows(connId) {
    const conn = `/channels/${SEED}/connections/${connId}`;
    const r = [
        // --- publish bodies
        { name: 'malformed JSON', method: 'POST', path: EV, headers: JSON_CT, body: '{"data": "x"', status: 400, code: 'invalid_json' },
        { name: 'trailing garbage after JSON', method: 'POST', path: EV, headers: JSON_CT, body: '{"data": "x"} x', status: 400, code: 'invalid_json' },
        { name: 'empty JSON body', method: 'POST', path: EV, headers: JSON_CT, body: '', status: 400, code: ['invalid_json', 'invalid_data'] },
        { name: 'JSON string instead of object', method: 'POST', path: EV, headers: JSON_CT, body: '"hello"', status: 400, code: ['invalid_json', 'invalid_data'] },
        { name: 'JSON number instead of object', method: 'POST', path: EV, headers: JSON_CT, body: '42', status: 400, code: ['invalid_json', 'invalid_data'] },
        { name: 'JSON null', method: 'POST', path: EV, headers: JSON_CT, body: 'null', status: 400, code: ['invalid_json', 'invalid_data'] },
        { name: 'empty array', method: 'POST', path: EV, headers: JSON_CT, body: '[]', status: 400, code: 'empty_batch' },
        { name: 'unknown field in publish', method: 'POST', path: EV, headers: JSON_CT, body: '{"data":"x","colour":"red"}', status: 400, code: 'unknown_field' },
        { name: 'missing data', method: 'POST', path: EV, headers: JSON_CT, body: '{"event":"t"}', status: 400, code: 'invalid_data' },
        { name: 'NUL in data', method: 'POST', path: EV, headers: JSON_CT, body: '{"data":"a\\u0000b"}', status: 400, code: 'invalid_data' },
        { name: 'NUL in raw body', method: 'POST', path: EV, headers: TEXT_CT, body: Buffer.from('a\0b'), status: 400, code: 'invalid_data' },
        // Not UTF-8: the broker refuses it (an event stream cannot carry it intact).
        { name: 'raw body not UTF-8', method: 'POST', path: EV, headers: TEXT_CT, body: Buffer.from([0x61, 0xff, 0xfe, 0x62]), status: 400, code: 'invalid_data' },
        { name: 'raw ?event= not UTF-8', method: 'POST', path: `${EV}?event=%FF`, headers: TEXT_CT, body: 'x', status: 400, code: 'invalid_event' },
        { name: 'event with CR LF', method: 'POST', path: EV, headers: JSON_CT, body: '{"event":"a\\r\\nb","data":"x"}', status: 400, code: 'invalid_event' },
        { name: 'event with LF', method: 'POST', path: EV, headers: JSON_CT, body: '{"event":"a\\nb","data":"x"}', status: 400, code: 'invalid_event' },
        { name: 'event with CR', method: 'POST', path: EV, headers: JSON_CT, body: '{"event":"a\\rb","data":"x"}', status: 400, code: 'invalid_event' },
        { name: 'event with NUL', method: 'POST', path: EV, headers: JSON_CT, body: '{"event":"a\\u0000b","data":"x"}', status: 400, code: 'invalid_event' },
        { name: 'empty event', method: 'POST', path: EV, headers: JSON_CT, body: '{"event":"","data":"x"}', status: 400, code: 'invalid_event' },
        { name: 'event too long (201)', method: 'POST', path: EV, headers: JSON_CT, body: JSON.stringify({ event: long(201), data: 'x' }), status: 400, code: 'invalid_event' },
        { name: 'event not a string', method: 'POST', path: EV, headers: JSON_CT, body: '{"event":5,"data":"x"}', status: 400, code: 'invalid_event' },
        { name: 'raw ?event= with CR LF', method: 'POST', path: `${EV}?event=a%0D%0Ab`, headers: TEXT_CT, body: 'x', status: 400, code: 'invalid_event' },
        { name: 'raw ?event= too long', method: 'POST', path: `${EV}?event=${long(201)}`, headers: TEXT_CT, body: 'x', status: 400, code: 'invalid_event' },
        { name: 'negative retry', method: 'POST', path: EV, headers: JSON_CT, body: '{"data":"x","retry":-1}', status: 400, code: 'invalid_retry' },
        { name: 'string retry', method: 'POST', path: EV, headers: JSON_CT, body: '{"data":"x","retry":"5"}', status: 400, code: 'invalid_retry' },
        { name: 'fractional retry', method: 'POST', path: EV, headers: JSON_CT, body: '{"data":"x","retry":1.5}', status: 400, code: 'invalid_retry' },
        { name: 'retry above 86400000', method: 'POST', path: EV, headers: JSON_CT, body: '{"data":"x","retry":86400001}', status: 400, code: 'invalid_retry' },
        { name: 'retry a day long (over max_retry_ms)', method: 'POST', path: EV, headers: JSON_CT, body: '{"data":"x","retry":86400000}', status: 400, code: 'invalid_retry' },
        { name: 'retry one over the default max_retry_ms', method: 'POST', path: EV, headers: JSON_CT, body: '{"data":"x","retry":60001}', status: 400, code: 'invalid_retry' },
        { name: 'batch with one retry over max_retry_ms', method: 'POST', path: EV, headers: JSON_CT, body: '[{"data":"ok1","retry":60000},{"data":"ok2","retry":600000}]', status: 400, code: 'invalid_retry' },
        { name: 'batch with one bad event', method: 'POST', path: EV, headers: JSON_CT, body: '[{"data":"ok1"},{"data":"ok2","event":"a\\nb"},{"data":"ok3"}]', status: 400, code: 'invalid_event' },
        { name: 'batch with one element missing data', method: 'POST', path: EV, headers: JSON_CT, body: '[{"data":"ok1"},{"event":"t"}]', status: 400, code: 'invalid_data' },
        { name: 'batch with an unknown field last', method: 'POST', path: EV, headers: JSON_CT, body: '[{"data":"ok1"},{"data":"ok2","x":1}]', status: 400, code: 'unknown_field' },
        { name: 'batch with a non-object element', method: 'POST', path: EV, headers: JSON_CT, body: '[{"data":"ok1"},7]', status: 400, code: ['invalid_json', 'invalid_data'] },
        { name: 'batch of 1001', method: 'POST', path: EV, headers: JSON_CT, body: JSON.stringify(Array.from({ length: 1001 }, () => ({ data: '' }))), status: 400, code: 'batch_too_large' },
        { name: 'body over max_body (publish)', method: 'POST', path: EV, headers: TEXT_CT, body: long(MAX_BODY + 1, 'x'), status: 413, code: null },
        { name: 'body far over max_body (JSON)', method: 'POST', path: EV, headers: JSON_CT, body: JSON.stringify({ data: long(4 * MAX_BODY, 'y') }), status: 413, code: null },
        { name: 'body over max_body (PUT)', method: 'PUT', path: `/channels/${SEED}`, headers: JSON_CT, body: `{"history":5${' '.repeat(MAX_BODY)}}`, status: 413, code: null },
        // --- channel names
        { name: 'channel name too long (201)', method: 'PUT', path: `/channels/${long(201)}`, status: 400, code: 'invalid_channel_name' },
        { name: 'publish to a too-long name', method: 'POST', path: `/channels/${long(201)}/events`, headers: JSON_CT, body: '{"data":"x"}', status: 400, code: 'invalid_channel_name' },
        { name: 'subscribe to a too-long name', method: 'GET', path: `/channels/${long(201)}/events`, headers: { Accept: 'text/event-stream' }, status: 400, code: 'invalid_channel_name' },
        { name: 'encoded slash a%2Fb', method: 'PUT', path: '/channels/a%2Fb', status: 400, code: 'invalid_channel_name' },
        { name: 'publish to a%2Fb', method: 'POST', path: '/channels/a%2Fb/events', headers: JSON_CT, body: '{"data":"x"}', status: 400, code: 'invalid_channel_name' },
        { name: 'encoded NUL %00', method: 'PUT', path: '/channels/%00', status: 400, code: 'invalid_channel_name' },
        { name: 'NUL after a valid prefix', method: 'PUT', path: '/channels/ok%00bad', status: 400, code: 'invalid_channel_name' },
        { name: 'unicode caf%C3%A9', method: 'PUT', path: '/channels/caf%C3%A9', status: 400, code: 'invalid_channel_name' },
        { name: 'space a%20b', method: 'PUT', path: '/channels/a%20b', status: 400, code: 'invalid_channel_name' },
        { name: 'encoded CRLF', method: 'PUT', path: '/channels/a%0D%0Ab', status: 400, code: 'invalid_channel_name' },
        { name: 'broken escape %zz', method: 'PUT', path: '/channels/a%zz', status: [400, 404], code: ['invalid_channel_name', 'not_found'] },
        { name: 'empty name /channels/', method: 'PUT', path: '/channels/', status: [400, 404], code: ['invalid_channel_name', 'not_found'] },
        { name: 'empty name GET /channels/', method: 'GET', path: '/channels/', status: [400, 404], code: ['invalid_channel_name', 'not_found'] },
        // The dot-segments "." and ".." (however encoded) are not channel names:
        // a URL normaliser would turn /channels/../events into /events.
        { name: '".." is not a channel name', method: 'GET', path: '/channels/..', status: 400, code: 'invalid_channel_name' },
        { name: '"." is not a channel name', method: 'DELETE', path: '/channels/.', status: 400, code: 'invalid_channel_name' },
        { name: 'PUT ".."', method: 'PUT', path: '/channels/..', status: 400, code: 'invalid_channel_name' },
        { name: 'PUT "%2e%2e"', method: 'PUT', path: '/channels/%2e%2e', status: 400, code: 'invalid_channel_name' },
        { name: 'PUT "%2E"', method: 'PUT', path: '/channels/%2E', status: 400, code: 'invalid_channel_name' },
        { name: 'publish to ".%2e"', method: 'POST', path: '/channels/.%2e/events', headers: JSON_CT, body: '{"data":"x"}', status: 400, code: 'invalid_channel_name' },
        { name: 'subscribe to "%2e%2e"', method: 'GET', path: '/channels/%2e%2e/events', headers: { Accept: 'text/event-stream' }, status: 400, code: 'invalid_channel_name' },
        { name: 'connection on ".."', method: 'POST', path: '/channels/../connections', status: 400, code: 'invalid_channel_name' },
        // --- channel options
        { name: 'unknown option key', method: 'PUT', path: `/channels/${SEED}`, headers: JSON_CT, body: '{"histori":5}', status: 400, code: 'invalid_options' },
        { name: 'history out of range', method: 'PUT', path: `/channels/${SEED}`, headers: JSON_CT, body: '{"history":100001}', status: 400, code: 'invalid_options' },
        { name: 'history negative', method: 'PUT', path: `/channels/${SEED}`, headers: JSON_CT, body: '{"history":-1}', status: 400, code: 'invalid_options' },
        { name: 'queue_limit 0', method: 'PUT', path: `/channels/${SEED}`, headers: JSON_CT, body: '{"queue_limit":0}', status: 400, code: 'invalid_options' },
        { name: 'retry_ms too big', method: 'PUT', path: `/channels/${SEED}`, headers: JSON_CT, body: '{"retry_ms":86400001}', status: 400, code: 'invalid_options' },
        { name: 'history wrong type', method: 'PUT', path: `/channels/${SEED}`, headers: JSON_CT, body: '{"history":"5"}', status: 400, code: 'invalid_options' },
        { name: 'history fractional', method: 'PUT', path: `/channels/${SEED}`, headers: JSON_CT, body: '{"history":2.5}', status: 400, code: 'invalid_options' },
        { name: 'valid option + bad option (atomic)', method: 'PUT', path: `/channels/${SEED}`, headers: JSON_CT, body: '{"history":7,"queue_limit":-5}', status: 400, code: 'invalid_options' },
        { name: 'options not an object', method: 'PUT', path: `/channels/${SEED}`, headers: JSON_CT, body: '[1]', status: 400, code: ['invalid_options', 'invalid_json'] },
        { name: 'options malformed JSON', method: 'PUT', path: `/channels/${SEED}`, headers: JSON_CT, body: '{"history":', status: 400, code: 'invalid_json' },
        { name: 'bad options do not create a channel', method: 'PUT', path: '/channels/not-created', headers: JSON_CT, body: '{"history":-1}', status: 400, code: 'invalid_options' },
        // --- bad input to a missing channel creates nothing (the channel list is in the snapshot)
        { name: 'malformed JSON to a missing channel', method: 'POST', path: '/channels/new-a/events', headers: JSON_CT, body: '{"data": ', status: 400, code: 'invalid_json' },
        { name: 'a bad batch to a missing channel', method: 'POST', path: '/channels/new-b/events', headers: JSON_CT, body: '[{"data":"ok"},{"event":"a\\nb","data":"x"}]', status: 400, code: 'invalid_event' },
        { name: 'an empty batch to a missing channel', method: 'POST', path: '/channels/new-c/events', headers: JSON_CT, body: '[]', status: 400, code: 'empty_batch' },
        { name: 'NUL in raw data to a missing channel', method: 'POST', path: '/channels/new-d/events', headers: TEXT_CT, body: Buffer.from('a\0b'), status: 400, code: 'invalid_data' },
        { name: 'body over max_body to a missing channel', method: 'POST', path: '/channels/new-e/events', headers: TEXT_CT, body: long(MAX_BODY + 1, 'x'), status: 413, code: null },
        { name: 'publish to a connection of a missing channel', method: 'POST', path: '/channels/new-f/connections/0123456789abcdef/events', headers: JSON_CT, body: '{"data":"x"}', status: 404, code: 'channel_not_found' },
        { name: 'attach to a connection of a missing channel', method: 'GET', path: '/channels/new-g/connections/0123456789abcdef/events', headers: { Accept: 'text/event-stream' }, status: 404, code: 'channel_not_found' },
        { name: 'a connection of a missing channel', method: 'GET', path: '/channels/new-h/connections/0123456789abcdef', status: 404, code: 'channel_not_found' },
        { name: 'create a connection on a bad channel name', method: 'POST', path: '/channels/bad%20name/connections', status: 400, code: 'invalid_channel_name' },
        // --- history queries
        { name: 'history limit=0', method: 'GET', path: `${EV}?limit=0`, status: 400, code: 'invalid_id' },
        { name: 'history limit=abc', method: 'GET', path: `${EV}?limit=abc`, status: 400, code: 'invalid_id' },
        { name: 'history limit too big', method: 'GET', path: `${EV}?limit=100001`, status: 400, code: 'invalid_id' },
        // --- routes and methods
        { name: 'unknown route', method: 'GET', path: '/nope', status: 404, code: 'not_found' },
        { name: 'unknown sub-route', method: 'GET', path: `/channels/${SEED}/nope`, status: 404, code: 'not_found' },
        { name: 'too deep a route', method: 'GET', path: `/channels/${SEED}/connections/${connId}/events/more`, status: 404, code: 'not_found' },
        { name: 'PATCH a channel', method: 'PATCH', path: '/channels/x', status: 405, code: 'method_not_allowed', allow: ['GET', 'PUT', 'DELETE'] },
        { name: 'POST a channel', method: 'POST', path: `/channels/${SEED}`, status: 405, code: 'method_not_allowed', allow: ['GET', 'PUT', 'DELETE'] },
        { name: 'DELETE the channel list', method: 'DELETE', path: '/channels', status: 405, code: 'method_not_allowed', allow: ['GET'] },
        { name: 'POST /health', method: 'POST', path: '/health', headers: JSON_CT, body: '{}', status: 405, code: 'method_not_allowed', allow: ['GET'] },
        { name: 'PUT events', method: 'PUT', path: EV, status: 405, code: 'method_not_allowed', allow: ['GET', 'POST'] },
        { name: 'DELETE connection list', method: 'DELETE', path: `/channels/${SEED}/connections`, status: 405, code: 'method_not_allowed', allow: ['GET', 'POST'] },
        { name: 'GET stop', method: 'GET', path: `${conn}/stop`, status: 405, code: 'method_not_allowed', allow: ['POST'] },
        // --- missing things
        { name: 'GET a missing channel', method: 'GET', path: '/channels/missing', status: 404, code: 'channel_not_found' },
        { name: 'DELETE a missing channel', method: 'DELETE', path: '/channels/missing', status: 404, code: 'channel_not_found' },
        { name: 'history of a missing channel', method: 'GET', path: '/channels/missing/events', status: 404, code: 'channel_not_found' },
        { name: 'connections of a missing channel', method: 'GET', path: '/channels/missing/connections', status: 404, code: 'channel_not_found' },
        { name: 'unknown connection', method: 'GET', path: `/channels/${SEED}/connections/nope`, status: 404, code: 'connection_not_found' },
        { name: 'DELETE unknown connection', method: 'DELETE', path: `/channels/${SEED}/connections/nope`, status: 404, code: 'connection_not_found' },
        { name: 'stop unknown connection', method: 'POST', path: `/channels/${SEED}/connections/nope/stop`, status: 404, code: 'connection_not_found' },
        { name: 'start unknown connection', method: 'POST', path: `/channels/${SEED}/connections/nope/start`, status: 404, code: 'connection_not_found' },
        { name: 'publish to unknown connection', method: 'POST', path: `/channels/${SEED}/connections/nope/events`, headers: JSON_CT, body: '{"data":"x"}', status: 404, code: 'connection_not_found' },
        { name: 'attach to unknown connection', method: 'GET', path: `/channels/${SEED}/connections/nope/events`, headers: { Accept: 'text/event-stream' }, status: 404, code: 'connection_not_found' },
        // --- bad input to a valid connection
        { name: 'targeted publish with bad event', method: 'POST', path: `${conn}/events`, headers: JSON_CT, body: '{"event":"a\\nb","data":"x"}', status: 400, code: 'invalid_event' },
        { name: 'targeted publish malformed JSON', method: 'POST', path: `${conn}/events`, headers: JSON_CT, body: '{', status: 400, code: 'invalid_json' },
    ];
    return r;
}

async function snapshot(connId) {
    const list = await b.req('GET', '/channels');
    const hist = await b.req('GET', EV);
    const conn = await b.req('GET', `/channels/${SEED}/connections/${connId}`);
    assert.equal(list.status, 200);
    assert.equal(hist.status, 200);
    assert.equal(conn.status, 200);
    return { channels: list.json, history: hist.json, connection: conn.json };
}

const asList = (x) => (Array.isArray(x) ? x : [x]);

test('bad input is rejected with the right error and changes nothing', async (t) => {
    // Seed: a channel with options, three messages and a connection with one queued.
    assert.equal((await b.req('PUT', `/channels/${SEED}`, { body: { history: 10, queue_limit: 5, retry_ms: 1000 } })).status, 201);
    const c = await b.req('POST', `/channels/${SEED}/connections`);
    assert.equal(c.status, 201);
    const connId = c.json.id;
    assert.equal((await b.req('POST', EV, { body: [{ data: 'one' }, { event: 'e', data: 'two' }, { data: 'three' }] })).status, 201);
    const base = await snapshot(connId);
    assert.equal(base.history.events.length, 3);
    assert.equal(base.connection.queue_length, 3);

    const table = rows(connId);
    let checked = 0;
    const failures = [];
    for (const row of table) {
        const what = `${row.name}: ${row.method} ${row.path.length > 80 ? row.path.slice(0, 80) + '…' : row.path}`;
        try {
            const r = await b.req(row.method, row.path, { headers: row.headers, body: row.body });
            const statuses = asList(row.status);
            assert.ok(statuses.includes(r.status), `status ${r.status}, expected ${statuses.join(' or ')}; body ${r.text.slice(0, 200)}`);
            if (row.code !== null) {
                checkError(assert, r, r.status, undefined, what);
                const codes = asList(row.code);
                assert.ok(codes.includes(r.json.error.code), `code ${r.json.error.code}, expected ${codes.join(' or ')}`);
                assert.equal(r.headers['access-control-allow-origin'], '*', 'CORS header on errors');
            }
            if (row.allow) {
                const allow = String(r.headers.allow || '');
                for (const m of row.allow) assert.match(allow, new RegExp(`\\b${m}\\b`), `Allow: ${allow} lists ${m}`);
            }
            b.assertAlive();
            assert.deepEqual(await snapshot(connId), base, 'state unchanged');
            checked++;
        } catch (e) {
            b.assertAlive(); // a dead broker fails everything: stop here
            failures.push(`${what}\n    ${e.message.split('\n').join('\n    ')}`);
            // Make later rows comparable again if this row changed state.
            Object.assign(base, await snapshot(connId));
        }
    }
    t.diagnostic(`${checked} of ${table.length} bad-input rows checked OK`);
    assert.equal(failures.length, 0, `${failures.length} row(s) failed:\n${failures.join('\n')}`);

    // Still serving normally afterwards.
    const ok = await b.req('POST', EV, { body: { data: 'after' } });
    assert.equal(ok.status, 201);
    const h = await b.req('GET', EV);
    assert.deepEqual(h.json.events.map((e) => e.data), ['one', 'two', 'three', 'after']);
});

test('an oversized header block is refused and the broker keeps serving', async () => {
    let status;
    try {
        const r = await b.req('GET', '/health', { headers: { 'X-Big': 'h'.repeat(20000) } });
        status = r.status;
    } catch (e) {
        status = `connection error (${e.message.split('\n')[0]})`; // libevent may just close
    }
    assert.ok(typeof status !== 'number' || status >= 400, `oversized headers answered ${status}`);
    b.assertAlive();
    assert.equal((await b.req('GET', '/health')).status, 200);
});
