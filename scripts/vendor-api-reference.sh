#!/usr/bin/env bash
# Re-vendors the API reference pages hookd serves from its binary, from the
# npm registry, with their licenses: /docs (@scalar/api-reference, MIT) and
# /swagger (swagger-ui-dist, Apache-2.0). Nothing is fetched when a page loads.
# Usage: scripts/vendor-api-reference.sh [scalar version] [swagger-ui-dist version]
set -euo pipefail
cd "$(dirname "$0")/.."
scalar="${1:-1.46.4}"; swagger="${2:-5.35.0}"
assets=crates/admin/assets
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fetch() { mkdir -p "$work/$1" && (cd "$work/$1" && npm pack -q "$2" >/dev/null && tar xzf ./*.tgz); }

fetch scalar "@scalar/api-reference@$scalar"
gzip -9 -n -c "$work/scalar/package/dist/browser/standalone.js" > $assets/scalar/standalone.js.gz
echo "$scalar" > $assets/scalar/VERSION

fetch swagger "swagger-ui-dist@$swagger"
mkdir -p $assets/swagger
gzip -9 -n -c "$work/swagger/package/swagger-ui-bundle.js" > $assets/swagger/swagger-ui-bundle.js.gz
gzip -9 -n -c "$work/swagger/package/swagger-ui.css" > $assets/swagger/swagger-ui.css.gz
cp "$work/swagger/package/LICENSE" "$work/swagger/package/NOTICE" $assets/swagger/
cp "$work/swagger/package/swagger-ui-bundle.js.LICENSE.txt" $assets/swagger/
echo "$swagger" > $assets/swagger/VERSION
echo "vendored @scalar/api-reference $scalar and swagger-ui-dist $swagger" >&2
