#!/usr/bin/env bash
# Builds the local control plane from Go modules, once per version, into a cache
# outside the repository: kube-apiserver, kube-controller-manager, kube-scheduler and
# kubectl from k8s.io/kubernetes; etcd from go.etcd.io/etcd/server/v3; kwok; helm.
#
# Usage: build.sh            build whatever is missing, print the bin directory
# Env:   HERALD_CACHE        cache root (default ~/.cache/herald)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${HERALD_CACHE:-$HOME/.cache/herald}

log() { echo "[build] $*" >&2; }

# wrapper_module DIR MODULE VERSION PATTERN REPL_VERSION
# Creates a throw-away module in DIR that requires MODULE@VERSION and turns each local
# path replace in MODULE's own go.mod (lines matching PATTERN) into a replace by the
# published version REPL_VERSION. The list is read from the downloaded go.mod, never
# hard-coded, because it changes between releases.
wrapper_module() {
  local dir=$1 module=$2 version=$3 repl_version=$4
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init herald.dev/build/"$(basename "$dir")" >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$gomod" ] || { log "could not download $module@$version"; exit 1; }
  local replaced=0
  # Lines look like "	k8s.io/api => ./staging/src/k8s.io/api" inside a replace block
  # or "replace k8s.io/api => ./staging/src/k8s.io/api" on their own.
  while read -r path; do
    go mod edit -replace="$path=$path@$repl_version"
    replaced=$((replaced + 1))
  # etcd "replaces" forbidden imports with ./FORBIDDEN_DEPENDENCY: nothing to map there.
  done < <(grep -v FORBIDDEN_DEPENDENCY "$gomod" |
    sed -n 's/^\(replace\)\{0,1\}[[:space:]]*\([^[:space:]]*\)[[:space:]]*=>[[:space:]]*\.\{1,2\}\/.*$/\2/p')
  log "$module@$version: $replaced local replaces mapped to published versions"
  go mod edit -require="$module@$version"
}

build_kubernetes() {
  local out=$cache/k8s-$K8S_VERSION
  if [ -x "$out/bin/kube-apiserver" ] && [ -x "$out/bin/kube-controller-manager" ] \
    && [ -x "$out/bin/kube-scheduler" ] && [ -x "$out/bin/kubectl" ]; then
    return
  fi
  log "building Kubernetes v$K8S_VERSION (first time only; takes a while on 2 cores)"
  local minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  local patch=${K8S_VERSION##*.}
  local work=$cache/work/k8s-$K8S_VERSION
  wrapper_module "$work" k8s.io/kubernetes "v$K8S_VERSION" "v0.$minor.$patch"
  local cmds=(cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubectl)
  for c in "${cmds[@]}"; do go get -tool "k8s.io/kubernetes/$c@v$K8S_VERSION"; done
  # Stamp the version like upstream's hack/lib/version.sh, so /version is truthful.
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$out/bin.tmp"
  for c in "${cmds[@]}"; do
    log "go build $c"
    CGO_ENABLED=0 go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldflags" \
      -o "$out/bin.tmp/$(basename "$c")" "k8s.io/kubernetes/$c"
  done
  rm -rf "$out/bin" && mv "$out/bin.tmp" "$out/bin"
}

build_etcd() {
  local out=$cache/etcd-$ETCD_VERSION
  [ -x "$out/bin/etcd" ] && return
  log "building etcd v$ETCD_VERSION"
  local work=$cache/work/etcd-$ETCD_VERSION
  wrapper_module "$work" go.etcd.io/etcd/server/v3 "v$ETCD_VERSION" "v$ETCD_VERSION"
  go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  mkdir -p "$out/bin"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/bin/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$out/bin/etcd.tmp" "$out/bin/etcd"
}

# kwok and helm have no local replaces: go install works. kwok's stage configs ship
# in its module; copy them next to the binary.
build_kwok() {
  local out=$cache/kwok-$KWOK_VERSION
  [ -x "$out/bin/kwok" ] && [ -d "$out/stage" ] && return
  log "building kwok v$KWOK_VERSION"
  mkdir -p "$out/bin"
  CGO_ENABLED=0 GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  local dir
  dir=$(go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  rm -rf "$out/stage" && cp -r "$dir/kustomize/stage" "$out/stage" && chmod -R u+w "$out/stage"
}

build_helm() {
  local out=$cache/helm-$HELM_VERSION
  [ -x "$out/bin/helm" ] && return
  log "building helm v$HELM_VERSION"
  mkdir -p "$out/bin"
  CGO_ENABLED=0 GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
}

# The e2e tests' NetworkPolicy evaluator: e2e/netpol/main.go on cyclonus's matcher,
# rebuilt when the source or the cyclonus version changes.
build_netpol() {
  local src=$here/../netpol/main.go
  local sum
  sum=$(cat "$src" "$here/versions.env" | sha256sum | cut -c1-12)
  local out=$cache/netpol-$sum
  [ -x "$out/bin/netpol-check" ] && return
  log "building netpol-check (cyclonus v$CYCLONUS_VERSION)"
  local work=$cache/work/netpol-$sum
  rm -rf "$work" && mkdir -p "$work" && cp "$src" "$work/main.go"
  (cd "$work" && go mod init herald.dev/build/netpol >/dev/null 2>&1 &&
    go get "github.com/mattfenwick/cyclonus@v$CYCLONUS_VERSION" >&2 &&
    go mod tidy >&2 &&
    mkdir -p "$out/bin" &&
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/bin/netpol-check.tmp" . &&
    mv "$out/bin/netpol-check.tmp" "$out/bin/netpol-check")
}

netpol_bin() {
  local sum
  sum=$(cat "$here/../netpol/main.go" "$here/versions.env" | sha256sum | cut -c1-12)
  echo "$cache/netpol-$sum/bin/netpol-check"
}

# go_tool NAME SRC_DIR REQUIREMENTS...: builds SRC_DIR/main.go against the listed module
# versions into $cache/NAME-<hash>/bin/NAME, rebuilt when the source or versions.env
# change. Prints nothing; tool_bin prints the path. Extra go build flags: $TOOL_TAGS.
go_tool() {
  local name=$1 src=$2; shift 2
  local sum
  sum=$(cat "$src"/*.go "$here/versions.env" | sha256sum | cut -c1-12)
  local out=$cache/$name-$sum
  [ -x "$out/bin/$name" ] && return
  log "building $name ($*)"
  local work=$cache/work/$name-$sum
  rm -rf "$work" && mkdir -p "$work" && cp "$src"/*.go "$work/"
  (cd "$work" && go mod init "herald.dev/build/$name" >/dev/null 2>&1 &&
    for req in "$@"; do go get "$req" >&2; done &&
    go mod tidy >&2 &&
    mkdir -p "$out/bin" &&
    CGO_ENABLED=0 go build -trimpath -tags "${TOOL_TAGS:-}" -ldflags "-s -w" -o "$out/bin/$name.tmp" . &&
    mv "$out/bin/$name.tmp" "$out/bin/$name")
}

tool_bin() {
  local sum
  sum=$(cat "$2"/*.go "$here/versions.env" | sha256sum | cut -c1-12)
  echo "$cache/$1-$sum/bin/$1"
}

# The e2e tests' Argo CD / kstatus health checker (e2e/health/main.go).
build_health() {
  go_tool health-check "$here/../health" "github.com/yuin/gopher-lua@v$GOPHER_LUA_VERSION" \
    "sigs.k8s.io/cli-utils@v$CLI_UTILS_VERSION"
}

# promtool and e2e/promql/main.go (the rule extraction and dashboard query parser) from
# one module of github.com/prometheus/prometheus, without the service-discovery
# plugins (build tag remove_all_sd: promtool's rule checks need none of the cloud SDKs).
build_prometheus() {
  local src=$here/../promql
  local sum
  sum=$(cat "$src"/*.go "$here/versions.env" | sha256sum | cut -c1-12)
  local out=$cache/prometheus-$sum
  [ -x "$out/bin/promtool" ] && [ -x "$out/bin/promql-check" ] && return
  log "building promtool and promql-check (prometheus v$PROMETHEUS_VERSION)"
  local work=$cache/work/prometheus-$sum
  rm -rf "$work" && mkdir -p "$work" && cp "$src"/*.go "$work/"
  (cd "$work" && go mod init herald.dev/build/promql >/dev/null 2>&1 &&
    go get "github.com/prometheus/prometheus@v$PROMETHEUS_VERSION" >&2 &&
    go get "github.com/prometheus/prometheus/cmd/promtool@v$PROMETHEUS_VERSION" >&2 &&
    go mod tidy >&2 &&
    mkdir -p "$out/bin.tmp" &&
    CGO_ENABLED=0 go build -trimpath -tags remove_all_sd -ldflags "-s -w" -o "$out/bin.tmp/promql-check" . &&
    CGO_ENABLED=0 go build -trimpath -tags remove_all_sd -ldflags "-s -w" -o "$out/bin.tmp/promtool" \
      github.com/prometheus/prometheus/cmd/promtool &&
    rm -rf "$out/bin" && mv "$out/bin.tmp" "$out/bin")
}

# crane assembles and inspects OCI images without a container runtime (`make image`).
build_crane() {
  local out=$cache/crane-$CRANE_VERSION
  [ -x "$out/bin/crane" ] && return
  log "building crane v$CRANE_VERSION"
  mkdir -p "$out/bin"
  CGO_ENABLED=0 GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" \
    "github.com/google/go-containerregistry/cmd/crane@v$CRANE_VERSION"
}

# Print the directories holding the binaries, one per line (callers add them to PATH).
bin_dirs() {
  echo "$cache/k8s-$K8S_VERSION/bin"
  echo "$cache/etcd-$ETCD_VERSION/bin"
  echo "$cache/kwok-$KWOK_VERSION/bin"
  echo "$cache/helm-$HELM_VERSION/bin"
}

main() {
  export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
  case "${1:-all}" in
    all) (build_etcd); (build_kwok); (build_helm); (build_kubernetes) ;;
    kubernetes|etcd|kwok|helm) ("build_$1") ;;
    # Builds if needed and prints the binary's path (the e2e tests call this).
    netpol) (build_netpol) && netpol_bin ;;
    health) (build_health) && tool_bin health-check "$here/../health" ;;
    # Builds if needed and prints the directory holding promtool and promql-check.
    prometheus) (build_prometheus) &&
      echo "$cache/prometheus-$(cat "$here/../promql"/*.go "$here/versions.env" | sha256sum | cut -c1-12)/bin" ;;
    crane) (build_crane) && echo "$cache/crane-$CRANE_VERSION/bin/crane" ;;
    image-check) (go_tool image-check "$here/../image" \
      "github.com/google/go-containerregistry@v$CRANE_VERSION") && tool_bin image-check "$here/../image" ;;
    bin-dirs) bin_dirs; return ;;
    *) echo "usage: $0 [all|kubernetes|etcd|kwok|helm|netpol|health|prometheus|crane|image-check|bin-dirs]" >&2; exit 2 ;;
  esac
}
main "$@"
