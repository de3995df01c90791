#!/usr/bin/env bash
# Fills the krew plugin manifest template (plugins/imagedrift.yaml) for one
# release and prints it:
#   scripts/krew-manifest.sh TAG BASE_URL SHA256SUMS [TEMPLATE] > imagedrift.yaml
# TAG is the release tag (v0.1.0), BASE_URL where the release's assets are
# downloaded from, SHA256SUMS a `sha256sum` listing of the archives. Each
# {{SHA256}} becomes the checksum of the archive named by the `uri:` line
# above it. Fails, naming what, on a missing checksum or a placeholder left.
set -euo pipefail
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: $0 TAG BASE_URL SHA256SUMS [TEMPLATE]" >&2
    exit 2
fi
tag=$1 base_url=${2%/} sums=$3
template=${4:-"$(dirname "${BASH_SOURCE[0]}")/../plugins/imagedrift.yaml"}
[[ $tag =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]] || { echo "$0: tag $tag is not vX.Y.Z" >&2; exit 2; }
[ -r "$sums" ] || { echo "$0: cannot read $sums" >&2; exit 2; }
[ -r "$template" ] || { echo "$0: cannot read $template" >&2; exit 2; }

awk -v tag="$tag" -v base="$base_url" -v sums="$sums" -v template="$template" '
BEGIN {
    while ((getline line < sums) > 0) {
        n = split(line, f, /[ \t]+/)
        if (n < 2) continue
        file = f[2]; sub(/^\*/, "", file)
        if (length(f[1]) != 64 || f[1] ~ /[^0-9a-f]/) { printf "%s: not a SHA-256: %s\n", sums, line > "/dev/stderr"; failed = 1; exit 1 }
        sha[file] = f[1]
    }
    close(sums)
}
# The comments explain the template, not the filled manifest.
/^#/ { next }
{
    gsub(/\{\{TAG\}\}/, tag)
    gsub(/\{\{BASE_URL\}\}/, base)
    if ($1 == "uri:") {
        uri = $2; gsub(/"/, "", uri)
        n = split(uri, p, "/"); archive = p[n]
    }
    if ($0 ~ /\{\{SHA256\}\}/) {
        if (archive == "" || !(archive in sha)) {
            printf "%s line %d: no checksum for \"%s\" in %s\n", template, NR, archive, sums > "/dev/stderr"
            failed = 1; exit 1
        }
        sub(/\{\{SHA256\}\}/, sha[archive]); archive = ""
    }
    if ($0 ~ /\{\{/) {
        printf "%s line %d: unknown placeholder: %s\n", template, NR, $0 > "/dev/stderr"
        failed = 1; exit 1
    }
    print
}
END { exit failed }' "$template"
