// The partition of a workspace, as hookd computes it (docs/producers/README.md).
//   node partition.js ws_acme 6          -> prints 4 (and the stream, hookd:events:p4)
//   node partition.js --check VECTORS    -> checks the shared vectors
"use strict";
const fs = require("node:fs");

// FNV-1a (32-bit) of the workspace id's UTF-8 bytes, modulo the count.
function partition(workspace, partitions) {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(workspace, "utf8")) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}

// The stream to XADD to: the base name itself with one partition.
function stream(base, workspace, partitions) {
  return partitions === 1 ? base : `${base}:p${partition(workspace, partitions)}`;
}

module.exports = { partition, stream };

if (require.main === module) {
  if (process.argv[2] === "--check") {
    const { vectors } = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
    const bad = vectors.filter((v) => partition(v.workspace, v.partitions) !== v.partition);
    console.log(`${vectors.length - bad.length} passed, ${bad.length} failed`);
    process.exit(bad.length ? 1 : 0);
  }
  const [ws, n] = [process.argv[2], Number(process.argv[3])];
  console.log(partition(ws, n), stream("hookd:events", ws, n));
}
