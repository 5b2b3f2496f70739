// Run every case of hookd's vectors.json through hookd-verify.js; exit 1 on any mismatch.
// usage: node check-vectors.js path/to/vectors.json
'use strict';
const fs = require('node:fs');
const { verify, verifyStandard } = require('./hookd-verify');

const doc = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
let passed = 0;
let failed = 0;
for (const c of doc.cases) {
  const check = c.scheme === 'sha256' ? verify : verifyStandard;
  let got = null;
  try {
    check(c.secrets, c.headers, Buffer.from(c.body, 'utf8'), { now: c.now, tolerance: doc.tolerance_seconds });
  } catch (e) {
    if (!e.code) throw e;
    got = e.code;
  }
  if (got === c.error) passed += 1;
  else {
    failed += 1;
    console.log(`FAIL ${c.name}: got ${got}, expected ${c.error}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
