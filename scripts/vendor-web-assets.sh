#!/bin/bash
# Vendors the web plugin's JavaScript from npm, pinned, so that nothing is fetched at run time
# (no CDN) and nothing is built at install time. For each package below: `npm pack` of the
# pinned version, its tarball checked against the pinned sha512 integrity (the registry's
# dist.integrity), then the named files and the package's licence copied into
# DEST/<name>-<version>/, the package's older versions there removed, and DEST/MANIFEST.json
# written (name, version, licence, integrity, and the sha256 of every file), which
# tests/plugins/web/test_vendored_assets.py checks the tree against.
#
# Usage: bash scripts/vendor-web-assets.sh   (needs npm and the npm registry; not run by CI)
# To bump a package: change its line, run this, commit the new directory and MANIFEST.json,
# and fix the paths in plugins/web/ds01_web/templates/base.html (a test finds stale ones).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHIPPED="$ROOT/plugins/web/ds01_web/static/vendor"  # in the ds01-web distribution
TESTS="$ROOT/tests/vendor"                           # only the tests use these

# DEST NAME VERSION INTEGRITY FILE... (paths inside the tarball's package/ directory)
PACKAGES=(
  # polling and partial page updates from HTML attributes (hx-get, hx-trigger="every 10s");
  # 2.0 is the long-supported line (4.0 is two months old); 0BSD, ~50 kB, no dependencies
  "$SHIPPED htmx.org 2.0.11 sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA== dist/htmx.min.js LICENSE"
  # usage and carbon charts on <canvas>; the UMD build needs no bundler; MIT
  "$SHIPPED chart.js 4.6.1 sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g== dist/chart.umd.min.js LICENSE.md"
  # the accessibility checks of the browser tests (tests/helpers/browser.py); MPL-2.0
  "$TESTS axe-core 4.14.1 sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ== axe.min.js LICENSE LICENSE-3RD-PARTY.txt"
)

command -v npm >/dev/null || { echo "vendor-web-assets: npm is missing (apt-get install npm)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for line in "${PACKAGES[@]}"; do
  read -r dest name version integrity files <<<"$line"
  mkdir -p "$work/$name" "$dest"
  (cd "$work/$name" && npm pack --silent --pack-destination . "$name@$version" >/dev/null)
  tarball="$(ls "$work/$name"/*.tgz)"
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    echo "vendor-web-assets: $name@$version's tarball has $got, not the pinned $integrity;" \
      "check the version on npm before changing the pin" >&2
    exit 1
  fi
  tar xzf "$tarball" -C "$work/$name"
  rm -rf "$dest/$name"-[0-9]*
  mkdir -p "$dest/$name-$version"
  for f in $files; do
    cp "$work/$name/package/$f" "$dest/$name-$version/$(basename "$f")"
  done
  license="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("license","?"))' "$work/$name/package/package.json")"
  printf '%s\n' "$dest" "$name" "$version" "$license" "$integrity" >>"$work/packages.txt"
  echo "vendored $name@$version ($license) into ${dest#"$ROOT"/}/$name-$version"
done

python3 - "$work/packages.txt" <<'PY'
"""Write MANIFEST.json in each destination from what was just vendored."""
import hashlib, json, sys
from pathlib import Path

lines = Path(sys.argv[1]).read_text().splitlines()
manifests: dict[str, list[dict]] = {}
for i in range(0, len(lines), 5):
    dest, name, version, license, integrity = lines[i : i + 5]
    folder = Path(dest, f"{name}-{version}")
    files = {
        f"{folder.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
    }
    manifests.setdefault(dest, []).append(
        {"name": name, "version": version, "license": license, "integrity": integrity, "files": files}
    )
for dest, packages in manifests.items():
    doc = {"written_by": "scripts/vendor-web-assets.sh (do not edit by hand)", "packages": packages}
    Path(dest, "MANIFEST.json").write_text(json.dumps(doc, indent=2) + "\n")
PY
