// it_badproto.mjs - bad input at the HTTP protocol level, sent as raw bytes:
// each row is what a client writes, the status expected, and (where the
// broker's own code answers) the JSON error code. After every row the state
// (channel list and the seeded channel's history) must be unchanged and the
// broker must still publish and stream. Every error, from the HTTP parser
// (httpd.c) or the API, carries the JSON body {"error": {"code", "message"}}
// and one Access-Control-Allow-Origin, so that a page can read it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startBroker, uniq, evPath, HOST } from './lib/broker.mjs';

let b;
after(async () => { if (b && b.alive()) assert.equal(await b.stop(), 0); });

/** Write 'bytes', half-close, and read the whole answer (bounded). */
function raw(port, bytes, timeout = 5000) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        const sock = net.connect({ host: HOST, port }, () => sock.end(bytes));
        const timer = setTimeout(() => { sock.destroy(); resolve({ text: Buffer.concat(chunks).toString('latin1'), timedOut: true }); }, timeout);
        sock.on('data', (d) => chunks.push(d));
        sock.on('close', () => { clearTimeout(timer); resolve({ text: Buffer.concat(chunks).toString('latin1'), timedOut: false }); });
        sock.on('error', (e) => { if (e.code !== 'ECONNRESET') reject(e); });
    });
}

function parse(text) {
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    let json = null;
    try { json = JSON.parse(body); } catch { /* not JSON: the row fails if it wanted some */ }
    return { status: m ? Number(m[1]) : 0, json };
}

const SEED = uniq('seed');
const ORIGIN = 'https://page.example';
const req = (head, body = '') => Buffer.concat([Buffer.from(head.replace(/\n/g, '\r\n')),
    Buffer.isBuffer(body) ? body : Buffer.from(body)]);
const publishHead = `POST ${evPath(SEED)} HTTP/1.1\nHost: x\n`;

const rows = [
    { name: 'malformed request line', bytes: req('GARBAGE\n\n'), status: 400, code: 'invalid_request' },
    { name: 'request line with an extra token', bytes: req('GET /health HTTP/1.1 extra\nHost: x\n\n'), status: 400, code: 'invalid_request' },
    { name: 'unsupported HTTP version 2.0', bytes: req('GET /health HTTP/2.0\nHost: x\n\n'), status: 505, code: 'http_version_not_supported' },
    { name: 'unsupported HTTP version 0.9 form', bytes: req('GET /health\n\n'), status: 400, code: 'invalid_request' },
    { name: 'request target not a path', bytes: req('GET health HTTP/1.1\nHost: x\n\n'), status: 400, code: 'invalid_request' },
    { name: 'method that is not a token', bytes: req('G(T /health HTTP/1.1\nHost: x\n\n'), status: 400, code: 'invalid_request' },
    { name: 'header line without a colon', bytes: req('GET /health HTTP/1.1\nHost: x\nBad Header Line\n\n'), status: 400, code: 'invalid_request' },
    { name: 'header name with a space before the colon', bytes: req('GET /health HTTP/1.1\nHost : x\n\n'), status: 400, code: 'invalid_request' },
    { name: 'folded header line', bytes: req('GET /health HTTP/1.1\nHost: x\nX-A: 1\n  continued\n\n'), status: 400, code: 'invalid_request' },
    { name: 'control character in a header value', bytes: req('GET /health HTTP/1.1\nHost: x\nX-A: a\u0001b\n\n'), status: 400, code: 'invalid_request' },
    { name: 'oversize headers (64 KiB)', bytes: req(`GET /health HTTP/1.1\nHost: x\nX-Big: ${'a'.repeat(65536)}\n\n`), status: 431, code: 'headers_too_large' },
    { name: 'too many header lines (101)', bytes: req(`GET /health HTTP/1.1\n${Array.from({ length: 101 }, (_, i) => `X-H${i}: 1\n`).join('')}\n`), status: 431, code: 'headers_too_large' },
    { name: 'oversize body (Content-Length over max_body)', bytes: req(`${publishHead}Content-Length: 5000\n\n`, 'x'.repeat(5000)), status: 413, code: 'body_too_large' },
    { name: 'Content-Length not a number', bytes: req(`${publishHead}Content-Length: abc\n\n`, 'hello'), status: 400, code: 'invalid_request' },
    { name: 'negative Content-Length', bytes: req(`${publishHead}Content-Length: -5\n\n`, 'hello'), status: 400, code: 'invalid_request' },
    { name: 'Content-Length of 30 digits', bytes: req(`${publishHead}Content-Length: ${'9'.repeat(30)}\n\n`, 'hello'), status: 400, code: 'invalid_request' },
    { name: 'two different Content-Lengths', bytes: req(`${publishHead}Content-Length: 5\nContent-Length: 6\n\n`, 'hello!'), status: 400, code: 'invalid_request' },
    { name: 'Content-Length with Transfer-Encoding', bytes: req(`${publishHead}Content-Length: 5\nTransfer-Encoding: chunked\n\n`, '5\r\nhello\r\n0\r\n\r\n'), status: 400, code: 'invalid_request' },
    { name: 'unknown Transfer-Encoding', bytes: req(`${publishHead}Transfer-Encoding: gzip\n\n`, 'hello'), status: 501, code: 'not_implemented' },
    { name: 'chunked body with a garbage size', bytes: req(`${publishHead}Transfer-Encoding: chunked\n\n`, 'zz\r\nhello\r\n0\r\n\r\n'), status: 400, code: 'invalid_request' },
    { name: 'chunked body with a chunk longer than its size', bytes: req(`${publishHead}Transfer-Encoding: chunked\n\n`, '3\r\nhello\r\n0\r\n\r\n'), status: 400, code: 'invalid_request' },
    { name: 'chunked body larger than max_body', bytes: req(`${publishHead}Transfer-Encoding: chunked\n\n`, `1400\r\n${'y'.repeat(5120)}\r\n0\r\n\r\n`), status: 413, code: 'body_too_large' },
    { name: 'chunk size of 20 hex digits', bytes: req(`${publishHead}Transfer-Encoding: chunked\n\n`, `${'f'.repeat(20)}\r\nhello\r\n0\r\n\r\n`), status: 400, code: 'invalid_request' },
    { name: 'Expect other than 100-continue', bytes: req(`${publishHead}Expect: something\nContent-Length: 5\n\n`, 'hello'), status: 417, code: 'expectation_failed' },
    { name: '10,000 query parameters', bytes: req(`GET ${evPath(SEED)}?${Array.from({ length: 10000 }, (_, i) => `p${i}=1`).join('&')} HTTP/1.1\nHost: x\n\n`), status: 414, code: 'uri_too_long' },
    { name: 'NUL in the request line', bytes: req('GET /hea\u0000lth HTTP/1.1\nHost: x\n\n'), status: 400, code: 'invalid_request' },
    { name: 'CR LF injected through an encoded event type', bytes: req(`POST ${evPath(SEED)}?event=a%0D%0Aid:%207 HTTP/1.1\nHost: x\nContent-Length: 1\n\n`, 'x'), status: 400, code: 'invalid_event' },
    { name: 'non-UTF-8 raw data', bytes: req(`${publishHead}Content-Type: text/plain\nContent-Length: 3\n\n`, Buffer.from([0xc3, 0x28, 0xff])), status: 400, code: 'invalid_data' },
    // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing, refused and closed.
    { name: 'Transfer-Encoding: chunked in HTTP/1.0', bytes: req(`POST ${evPath(SEED)} HTTP/1.0\nContent-Type: text/plain\nTransfer-Encoding: chunked\n\n`, '5\r\nhello\r\n0\r\n\r\n'), status: 400, code: 'invalid_request' },
    { name: 'Transfer-Encoding with Content-Length in HTTP/1.0', bytes: req(`POST ${evPath(SEED)} HTTP/1.0\nContent-Length: 5\nTransfer-Encoding: chunked\n\n`, 'hello'), status: 400, code: 'invalid_request' },
    // Lines end in CRLF only: a bare LF anywhere in the head or the chunk framing is refused.
    { name: 'bare LF line ends in the head', bytes: Buffer.from('GET /health HTTP/1.1\nHost: x\n\n'), status: 400, code: 'invalid_request' },
    { name: 'one bare LF among CRLFs in the head', bytes: Buffer.from(`POST ${evPath(SEED)} HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\nhello`), status: 400, code: 'invalid_request' },
    { name: 'a head ending in LF CRLF', bytes: Buffer.from('GET /health HTTP/1.1\r\nHost: x\n\r\n'), status: 400, code: 'invalid_request' },
    { name: 'chunk-size line ending in a bare LF', bytes: req(`${publishHead}Content-Type: text/plain\nTransfer-Encoding: chunked\n\n`, '5\nhello\r\n0\r\n\r\n'), status: 400, code: 'invalid_request' },
    { name: 'chunk data ending in a bare LF', bytes: req(`${publishHead}Content-Type: text/plain\nTransfer-Encoding: chunked\n\n`, '5\r\nhello\n0\r\n\r\n'), status: 400, code: 'invalid_request' },
    { name: 'last chunk ending in a bare LF', bytes: req(`${publishHead}Content-Type: text/plain\nTransfer-Encoding: chunked\n\n`, '5\r\nhello\r\n0\n\r\n'), status: 400, code: 'invalid_request' },
    { name: 'trailer line ending in a bare LF', bytes: req(`${publishHead}Content-Type: text/plain\nTransfer-Encoding: chunked\n\n`, '5\r\nhello\r\n0\r\nX-T: 1\n\r\n'), status: 400, code: 'invalid_request' },
    { name: 'a 10 KB Last-Event-ID replays history instead of failing', bytes: req(`GET ${evPath(SEED)} HTTP/1.0\nAccept: text/event-stream\nLast-Event-ID: ${'9'.repeat(10240)}\n\n`), status: 200, sse: true },
];

test('protocol-level bad input: clear 4xx, nothing changes, the broker serves on', async (t) => {
    b = await startBroker({ config: { limits: { max_body: 4096, max_headers: 16384 }, cors_origin: ORIGIN } });
    assert.equal((await b.req('PUT', `/channels/${SEED}`, { body: { history: 10 } })).status, 201);
    const seeded = await b.req('POST', evPath(SEED), { body: 'seed message', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(seeded.status, 201);
    const snapshot = async () => JSON.stringify([
        (await b.req('GET', '/channels')).json.channels.map(({ subscribers, ...c }) => c),
        (await b.req('GET', evPath(SEED))).json,
    ]);
    const before = await snapshot();

    let checked = 0;
    for (const row of rows) {
        const res = await raw(b.port, row.bytes);
        const got = parse(res.text);
        const want = [].concat(row.status);
        assert.ok(want.includes(got.status), `${row.name}: status ${got.status}, want ${want}: ${res.text.slice(0, 200)}`);
        if (got.status >= 400) {
            assert.equal(got.json && got.json.error && got.json.error.code, row.code, `${row.name}: JSON error code: ${res.text.slice(0, 300)}`);
            assert.equal(typeof got.json.error.message, 'string', `${row.name}: a message`);
        }
        // Every answer, the HTTP parser's own errors included, lets a page read it: once.
        const head = res.text.slice(0, res.text.indexOf('\r\n\r\n'));
        const acao = head.split('\r\n').filter((l) => /^access-control-allow-origin:/i.test(l));
        assert.deepEqual(acao, [`Access-Control-Allow-Origin: ${ORIGIN}`], `${row.name}: one CORS header: ${head}`);
        if (row.sse) {
            assert.match(res.text, /Content-Type: text\/event-stream/i, row.name);
            assert.match(res.text, /data: seed message/, `${row.name}: replays what is retained`);
        }
        assert.ok(b.alive(), `${row.name}: the broker is alive`);
        assert.equal(await snapshot(), before, `${row.name}: nothing changed`);
        // Normal service right after: a subscriber sees a publish.
        const name = uniq('after');
        const s = await b.stream(evPath(name));
        await s.waitOpen();
        const p = await b.req('POST', evPath(name), { body: 'ok', headers: { 'Content-Type': 'text/plain' } });
        assert.equal(p.status, 201, `${row.name}: publish afterwards`);
        await s.waitEvents(1);
        s.close();
        assert.equal((await b.req('DELETE', `/channels/${name}`)).status, 204);
        checked++;
    }
    t.diagnostic(`${checked} of ${rows.length} protocol-level bad-input rows checked OK`);
    assert.equal(checked, rows.length);
});
