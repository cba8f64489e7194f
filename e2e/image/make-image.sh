#!/usr/bin/env bash
# Assembles Herald's OCI images without a container runtime (`make image`): a static
# musl binary and the CA certificates as one layer on an empty base, user 65532:65532.
# NAME herald (the default): entrypoint /usr/local/bin/herald run — the Dockerfile's
# image, minus distroless's other files — written as an OCI image layout to
# target/image/. NAME herald-dataplane: the reference data plane (docs/data-plane.md),
# entrypoint /usr/local/bin/herald-dataplane and no cmd (Herald's Jobs pass the command
# as arguments), to target/image-herald-dataplane/. crane (built from Go modules,
# cached) does the OCI work through a registry it serves on 127.0.0.1 for the length of
# this script, since `crane mutate` edits images in a registry.
#
# Usage: make-image.sh BINARY [NAME]    Env: IMAGE_REGISTRY_PORT (default 28090), CA_BUNDLE.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
binary=${1:?usage: make-image.sh BINARY [NAME]}
name=${2:-herald}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
port=${IMAGE_REGISTRY_PORT:-28090}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
case $name in
  herald) out=$root/target/image cmd=(--cmd run) ;;
  herald-dataplane) out=$root/target/image-herald-dataplane cmd=() ;;
  *) echo "make-image: unknown image $name (herald or herald-dataplane)" >&2; exit 2 ;;
esac

[ -x "$binary" ] || { echo "make-image: $binary is not an executable" >&2; exit 1; }
[ -f "$ca" ] || { echo "make-image: no CA bundle at $ca (set CA_BUNDLE)" >&2; exit 1; }
crane=$("$root/e2e/cluster/build.sh" crane)

work=$(mktemp -d)
registry_pid=
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The layer: root-owned, fixed times, sorted: the same inputs give the same digest.
mkdir -p "$work/rootfs/usr/local/bin" "$work/rootfs/etc/ssl/certs"
install -m 0755 "$binary" "$work/rootfs/usr/local/bin/$name"
install -m 0644 "$ca" "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
tar --create --file "$work/layer.tar" --directory "$work/rootfs" --sort=name \
  --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  usr etc

"$crane" registry serve --address "127.0.0.1:$port" >"$work/registry.log" 2>&1 &
registry_pid=$!
ref=127.0.0.1:$port/$name:$version
for _ in $(seq 1 50); do
  "$crane" catalog "127.0.0.1:$port" >/dev/null 2>&1 && break
  kill -0 "$registry_pid" 2>/dev/null || { cat "$work/registry.log" >&2; exit 1; }
  sleep 0.1
done

# crane logs every blob; keep that for a failure.
run() { "$@" >>"$work/crane.log" 2>&1 || { cat "$work/crane.log" >&2; exit 1; }; }
run "$crane" append --oci-empty-base -f "$work/layer.tar" -t "$ref"
run "$crane" mutate "$ref" -t "$ref" --set-platform linux/amd64 \
  --user 65532:65532 --entrypoint "/usr/local/bin/$name" ${cmd[@]+"${cmd[@]}"} --exposed-ports 8080/tcp \
  -l org.opencontainers.image.source=https://github.com/herald-dev/herald \
  -l org.opencontainers.image.version="$version" \
  -l org.opencontainers.image.licenses=Apache-2.0
rm -rf "$out"
run "$crane" pull --format oci "$ref" "$out"
echo "image $name:$version ($("$crane" digest "$ref")) in ${out#"$root"/}"
