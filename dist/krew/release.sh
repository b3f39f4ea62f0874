#!/usr/bin/env bash
# The krew part of a release: builds kubectl-asynctask for every platform of dist/krew/asynctask.yaml into
# tar.gz archives (the binary and LICENSE at their root) and writes the release's version, the archives' URLs and their
# SHA-256 sums into the manifest. Then upload the archives to the GitHub release VERSION and submit the
# manifest to kubernetes-sigs/krew-index.
#
#   dist/krew/release.sh VERSION        run from the repository's root, at the release's tag (vX.Y.Z)
#
# ARCHIVES=dir takes the archives already in dir instead of building them; MANIFEST=file rewrites another
# copy of the manifest (the test does both).
set -euo pipefail

version=${1:?usage: dist/krew/release.sh vX.Y.Z}
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || { echo "not a version: $version (vX.Y.Z)" >&2; exit 1; }
manifest=${MANIFEST:-dist/krew/asynctask.yaml}
archives=${ARCHIVES:-bin/krew}
platforms=$(awk '$1 == "os:" { os = $2 } $1 == "arch:" { print os "_" $2 }' "$manifest")

if [[ -z ${ARCHIVES:-} ]]; then
  mkdir -p "$archives"
  for platform in $platforms; do
    os=${platform%_*} arch=${platform#*_} exe=kubectl-asynctask
    [[ $os == windows ]] && exe+=.exe
    build=$(mktemp -d)
    CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -buildvcs=auto -trimpath -ldflags='-s -w' -o "$build/$exe" ./cmd/kubectl-asynctask
    cp LICENSE "$build/" # krew-index asks for the licence inside each archive
    tar -czf "$archives/kubectl-asynctask_${version}_${platform}.tar.gz" -C "$build" "$exe" LICENSE
    rm -rf "$build"
  done
fi

declare -A sums
for platform in $platforms; do
  archive=$archives/kubectl-asynctask_${version}_${platform}.tar.gz
  [[ -f $archive ]] || { echo "missing $archive" >&2; exit 1; }
  sums[$platform]=$(sha256sum "$archive" | cut -d' ' -f1)
done

# Each platform's selector (os, arch) comes before its uri and sha256 in the manifest.
sumlist=$(for p in "${!sums[@]}"; do echo "$p=${sums[$p]}"; done)
awk -v version="$version" -v sumlist="$sumlist" '
  BEGIN { n = split(sumlist, pairs, "\n"); for (i = 1; i <= n; i++) { split(pairs[i], kv, "="); sum[kv[1]] = kv[2] } }
  $1 == "os:" { os = $2 }
  $1 == "arch:" { arch = $2 }
  /^  version: / { print "  version: " version; next }
  $1 == "uri:" { sub(/download\/[^\/]+\/kubectl-asynctask_[^_]+_/, "download/" version "/kubectl-asynctask_" version "_") }
  $1 == "sha256:" { sub(/"[0-9a-f]*"/, "\"" sum[os "_" arch] "\"") }
  { print }
' "$manifest" > "$manifest.new"
mv "$manifest.new" "$manifest"
echo "$manifest: $version, $(echo "$platforms" | wc -w) platforms"
