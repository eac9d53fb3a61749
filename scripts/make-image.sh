#!/bin/sh
# Packs a root filesystem as a one-layer container image archive, offline:
#   make-image.sh ROOTFS OUT.tar [NAME [CMD]]
# NAME defaults to busybox:capsa, CMD (the image's Cmd, a JSON array) to ["sh"].
# The archive is an OCI image layout (index.json, oci-layout, blobs/sha256/...)
# that also carries a docker-save manifest.json, so the same file loads with
# `ctr images import`, `podman load -i` and docker 20.10's `docker load`.
# The layer is an uncompressed, reproducible tar (sorted, mtime 0, uid/gid 0).
set -eu
rootfs=$1
out=$2
name=${3:-busybox:capsa}
cmd=${4:-'["sh"]'}
[ -d "$rootfs/bin" ] || { echo "make-image: $rootfs is not a root filesystem (run make bundle)" >&2; exit 1; }
case $name in
  *:*) repo=${name%:*}; tag=${name##*:} ;;
  *) repo=$name; tag=latest ;;
esac
case $repo in
  */*) full=docker.io/$repo ;;
  *) full=docker.io/library/$repo ;;
esac
case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/capsa-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
blobs=$work/blobs/sha256
mkdir -p "$blobs"

# add_blob FILE: moves FILE into blobs/ under its digest; prints "digest size".
add_blob() {
  d=$(sha256sum "$1" | cut -d' ' -f1)
  s=$(stat -c %s "$1")
  mv "$1" "$blobs/$d"
  echo "$d $s"
}

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  -C "$rootfs" -cf "$work/layer" .
set -- $(add_blob "$work/layer")
layer=$1 layer_size=$2

printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"capsa scripts/make-image.sh"}]}' \
  "$arch" "$cmd" "$layer" > "$work/config"
set -- $(add_blob "$work/config")
config=$1 config_size=$2

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config" "$config_size" "$layer" "$layer_size" > "$work/manifest"
set -- $(add_blob "$work/manifest")
manifest=$1 manifest_size=$2

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s:%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest" "$manifest_size" "$full" "$tag" "$tag" > "$work/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$work/oci-layout"
printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s:%s"],"Layers":["blobs/sha256/%s"]}]' \
  "$config" "$repo" "$tag" "$layer" > "$work/manifest.json"

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  -C "$work" -cf "$out.tmp" oci-layout index.json manifest.json blobs
mv "$out.tmp" "$out"
