// A minimal hookd receiver (Node's http module): verifies, dedupes by event id, answers 204.
//   HOOKD_SECRET=hks_... node receiver.js 9000
// With --check, verifies one captured request instead: node receiver.js --check SECRET HEADERS_JSON < body
'use strict';
const http = require('node:http');
const { verify, VerificationError } = require('./hookd-verify');

if (process.argv[2] === '--check') {
  const chunks = [];
  process.stdin.on('data', (c) => chunks.push(c));
  process.stdin.on('end', () => {
    try {
      verify([process.argv[3]], JSON.parse(process.argv[4]), Buffer.concat(chunks));
      console.log('valid');
    } catch (e) {
      if (!(e instanceof VerificationError)) throw e;
      console.log(e.message);
      process.exit(1);
    }
  });
} else {
  const seen = new Set(); // use a store with expiry in production
  http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks); // the raw bytes
      try {
        verify([process.env.HOOKD_SECRET], req.headers, body);
      } catch (e) {
        res.writeHead(401).end(e.message);
        return;
      }
      const eventId = req.headers['x-hookd-event-id'];
      if (!seen.has(eventId)) {
        seen.add(eventId); // at-least-once delivery: handle each event once
        console.log('event', eventId, JSON.parse(body).type);
      }
      res.writeHead(204).end();
    });
  }).listen(Number(process.argv[2]), '127.0.0.1');
}
