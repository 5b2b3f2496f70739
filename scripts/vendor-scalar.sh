#!/usr/bin/env bash
# Re-vendors the Scalar API reference (npm package @scalar/api-reference, MIT)
# that /docs serves from the binary: nothing is fetched when the page loads.
# Usage: scripts/vendor-scalar.sh [version]
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-1.46.4}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack -q "@scalar/api-reference@$version" >/dev/null && tar xzf ./*.tgz)
gzip -9 -n -c "$work/package/dist/browser/standalone.js" > crates/admin/assets/scalar/standalone.js.gz
echo "$version" > crates/admin/assets/scalar/VERSION
echo "vendored @scalar/api-reference $version" >&2
