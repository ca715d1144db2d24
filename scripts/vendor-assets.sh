#!/usr/bin/env bash
# Refresh the browser assets vendored in src/vmscale/api/static/vendor/ from the npm registry:
#   uPlot            the dashboard's charts (~50 KB, MIT)
#   swagger-ui-dist  the /docs page, served locally instead of from a CDN (Apache-2.0)
# The files are committed, so neither setup nor CI runs this (nor needs npm); run it to upgrade
# (change a version below), check the dashboard and /docs, and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."

UPLOT_VERSION=1.6.32
SWAGGER_UI_VERSION=5.35.0
VENDOR=src/vmscale/api/static/vendor

command -v npm >/dev/null || { echo "npm is needed to refresh vendored assets (apt-get install npm)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# npm pack checks each tarball against the registry's integrity hash.
(cd "$work" && npm pack --silent "uplot@$UPLOT_VERSION" "swagger-ui-dist@$SWAGGER_UI_VERSION" >/dev/null)
mkdir -p "$work/uplot" "$work/swagger"
tar -xzf "$work/uplot-$UPLOT_VERSION.tgz" -C "$work/uplot"
tar -xzf "$work/swagger-ui-dist-$SWAGGER_UI_VERSION.tgz" -C "$work/swagger"

rm -rf "$VENDOR"
mkdir -p "$VENDOR/uplot" "$VENDOR/swagger-ui"
cp "$work/uplot/package/dist/uPlot.iife.min.js" "$work/uplot/package/dist/uPlot.min.css" \
   "$work/uplot/package/LICENSE" "$VENDOR/uplot/"
cp "$work/swagger/package/swagger-ui-bundle.js" "$work/swagger/package/swagger-ui-bundle.js.LICENSE.txt" \
   "$work/swagger/package/swagger-ui.css" "$work/swagger/package/LICENSE" "$work/swagger/package/NOTICE" \
   "$VENDOR/swagger-ui/"
# The bundle ends with a sourceMappingURL to a 1.9 MB map we do not ship: drop that comment so a
# browser's developer tools do not ask the API for it.
sed -i '/^\/\/# sourceMappingURL=/d' "$VENDOR/swagger-ui/swagger-ui-bundle.js"
printf 'uplot %s\nswagger-ui-dist %s\n' "$UPLOT_VERSION" "$SWAGGER_UI_VERSION" > "$VENDOR/VERSIONS"
(cd "$VENDOR" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)
echo "vendored uPlot $UPLOT_VERSION and swagger-ui-dist $SWAGGER_UI_VERSION into $VENDOR"
