# Herald's entry points. `make demo` and `make test` work on a fresh machine with Rust,
# Go, openssl and curl: the local control plane is built from Go modules on first use.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

CLUSTER := e2e/cluster/cluster.sh
# `helm template` assumes Kubernetes 1.20 unless told, which the chart's kubeVersion
# refuses: render for the local control plane's version.
HELM_KUBE := --kube-version=$(shell sed -n 's/^K8S_VERSION=//p' e2e/cluster/versions.env)
# Puts the cluster's kubeconfig and binaries (kubectl, helm) in the environment.
WITH_CLUSTER = eval "$$($(CLUSTER) env)" &&
DEMO_DIR := $(HOME)/.cache/herald/demo
DEMO_ADDR := 127.0.0.1:28080
# The fake provider credential API `make demo` starts (loopback only).
DEMO_PROVIDER_ADDR := 127.0.0.1:28081
# e2e tests run in parallel; each uses its own uniquely named objects.
E2E_THREADS ?= 4

.PHONY: build test fmt-check clippy unit dataplane-test dataplane-bench crds crds-check chart-sync chart-check rules-check image e2e cluster-up \
	cluster-down cluster-status demo demo-stop bench bench-cluster-down

build:
	cargo build

## test: everything CI checks.
test: fmt-check clippy unit dataplane-test crds-check chart-check rules-check e2e chaos-short
	@echo "make test: all checks passed"

fmt-check:
	cargo fmt --all -- --check

## clippy: both crates of the workspace, one at a time: built together, cargo would
## unify their dependencies' features (the data plane's tokio and reqwest features into
## the operator's build) and compile every shared dependency a second time.
clippy:
	cargo clippy --all-targets --all-features -- -D warnings
	cargo clippy -p herald-dataplane --all-targets --all-features -- -D warnings

unit:
	cargo test --lib --bins

## dataplane-test: the reference data plane (dataplane/, docs/data-plane.md) against a
## PostgreSQL from Debian's packages that the test starts on 127.0.0.1 in a temporary
## directory (never a system service), exports to an HTTP server on 127.0.0.1.
dataplane-test:
	cargo test -p herald-dataplane

## dataplane-bench: export and erasure of one tenant with ROWS rows (default 100,000)
## against such a PostgreSQL (durable settings): seconds, rows per second, peak memory.
ROWS ?= 100000
dataplane-bench:
	cargo build -q -p herald-dataplane --bins --examples
	target/debug/examples/erase-bench $(ROWS)

## crds: regenerate crds/ (and the chart's copy) and docs/api.md from the Rust types.
crds:
	rm -rf crds && cargo run -q -- crds --out crds --reference docs/api.md >/dev/null
	$(MAKE) --no-print-directory chart-sync

## crds-check: fail when crds/ or docs/api.md is not what the types generate.
crds-check:
	tmp=$$(mktemp -d) && cargo run -q -- crds --out "$$tmp/crds" --reference "$$tmp/api.md" >/dev/null && \
	  if ! diff -r "$$tmp/crds" crds; then echo "crds/ is stale: run 'make crds' and commit" >&2; rm -rf "$$tmp"; exit 1; fi; \
	  if ! diff "$$tmp/api.md" docs/api.md; then echo "docs/api.md is stale: run 'make crds' and commit" >&2; rm -rf "$$tmp"; exit 1; fi; \
	  rm -rf "$$tmp"; echo "crds/ and docs/api.md match the types"

CHART := charts/herald
## chart-sync: refresh the chart's generated copies: crds/ (from the types) and the
## admission policies (from deploy/admission/, their source of truth).
chart-sync:
	rm -rf $(CHART)/crds && cargo run -q -- crds --out $(CHART)/crds >/dev/null
	rm -rf $(CHART)/files/admission && mkdir -p $(CHART)/files/admission && \
	  cp deploy/admission/*.yaml $(CHART)/files/admission/

## chart-check: the chart's copies match their sources, its version and appVersion are
## the crate's, and `helm lint` passes (helm is built with the local cluster's tools).
chart-check:
	@tmp=$$(mktemp -d) && cargo run -q -- crds --out "$$tmp" >/dev/null && \
	  if ! diff -r "$$tmp" $(CHART)/crds; then echo "$(CHART)/crds is stale: run 'make chart-sync' and commit" >&2; rm -rf "$$tmp"; exit 1; fi; \
	  rm -rf "$$tmp"
	@diff -r deploy/admission $(CHART)/files/admission || \
	  { echo "$(CHART)/files/admission differs from deploy/admission: run 'make chart-sync'" >&2; exit 1; }
	@crate=$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1); \
	  chart=$$(sed -n 's/^version: *//p' $(CHART)/Chart.yaml); \
	  app=$$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' $(CHART)/Chart.yaml); \
	  if [ "$$crate" != "$$chart" ] || [ "$$crate" != "$$app" ]; then \
	    echo "$(CHART)/Chart.yaml version=$$chart appVersion=$$app, but Cargo.toml says $$crate: keep them equal" >&2; exit 1; fi; \
	  for f in config/herald.yaml $(CHART)/values.yaml; do \
	    grep -q "image: ghcr.io/herald-dev/herald-dataplane:$$crate$$" $$f || \
	      { echo "$$f: the default sender image must be herald-dataplane:$$crate (the crate's version)" >&2; exit 1; }; done
	@e2e/cluster/build.sh helm
	@$(WITH_CLUSTER) helm lint --strict $(CHART) && \
	  helm lint --strict $(CHART) --set serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboard.enabled=true
	@echo "$(CHART) matches its sources and lints"

## rules-check: the chart's PrometheusRule as Prometheus users test alerts: rendered with
## helm, its groups extracted, `promtool check rules`, and `promtool test rules` with
## e2e/promql/alerts.test.yaml (each alert fires on some series, stays quiet on others);
## and every query of the chart's Grafana dashboard parsed by Prometheus's PromQL parser.
## promtool and promql-check are built from Go modules on first use (cached).
rules-check:
	@e2e/cluster/build.sh helm
	@prom=$$(e2e/cluster/build.sh prometheus) && tmp=$$(mktemp -d) && \
	  trap 'rm -rf "$$tmp"' EXIT && \
	  $(WITH_CLUSTER) helm template herald $(CHART) $(HELM_KUBE) --set prometheusRule.enabled=true \
	    --show-only templates/prometheusrule.yaml | "$$prom/promql-check" rules >"$$tmp/rules.yaml" && \
	  cp e2e/promql/alerts.test.yaml "$$tmp/" && \
	  "$$prom/promtool" check rules "$$tmp/rules.yaml" && \
	  (cd "$$tmp" && "$$prom/promtool" test rules alerts.test.yaml) && \
	  if [ -f $(CHART)/templates/dashboard.yaml ]; then \
	    $(WITH_CLUSTER) helm template herald $(CHART) $(HELM_KUBE) --set dashboard.enabled=true \
	      --show-only templates/dashboard.yaml | "$$prom/promql-check" dashboard; fi

MUSL_TARGET := x86_64-unknown-linux-musl
## image: the operator's OCI image without a container runtime, into target/image/ (an
## OCI image layout): the static musl release build and the CA certificates, user
## 65532, entrypoint `herald run` (e2e/image/make-image.sh, with crane built from Go
## modules); and the reference data plane's (dataplane/, docs/data-plane.md) the same
## way into target/image-herald-dataplane/, entrypoint `herald-dataplane` (the command
## is the Job's first argument); then e2e/image/ inspects both (user, entrypoint,
## static binary, no shell, no other file). Needs the Rust target (`rustup target add
## $(MUSL_TARGET)`) and musl-gcc for ring's C parts (Debian: musl-tools).
image:
	CC_x86_64_unknown_linux_musl=$${CC_x86_64_unknown_linux_musl:-musl-gcc} cargo build --release --locked --target $(MUSL_TARGET) --bin herald
	CC_x86_64_unknown_linux_musl=$${CC_x86_64_unknown_linux_musl:-musl-gcc} cargo build --release --locked --target $(MUSL_TARGET) -p herald-dataplane
	e2e/image/make-image.sh target/$(MUSL_TARGET)/release/herald
	e2e/image/make-image.sh target/$(MUSL_TARGET)/release/herald-dataplane herald-dataplane
	@check=$$(e2e/cluster/build.sh image-check) && "$$check" target/image && \
	  "$$check" target/image-herald-dataplane herald-dataplane -

## e2e: the end-to-end tests, on the local cluster (brought up if needed) or KUBECONFIG
## when HERALD_USE_KUBECONFIG=1; the NetworkPolicy evaluator they use is built first.
## On the local cluster, the outage tests (tests/outage/: API server and etcd restarted
## under the operator) run after the suite, alone; they need cluster.sh to restart.
e2e:
	@e2e/cluster/build.sh netpol >/dev/null
	@if [ "$${HERALD_USE_KUBECONFIG:-0}" = 1 ]; then \
	  cargo test --features e2e --test e2e -- --test-threads=$(E2E_THREADS); \
	else \
	  $(MAKE) --no-print-directory cluster-up && \
	  $(WITH_CLUSTER) cargo test --features e2e --test e2e -- --test-threads=$(E2E_THREADS) && \
	  $(WITH_CLUSTER) cargo test --features e2e --test outage -- --test-threads=1; \
	fi

cluster-up:
	$(CLUSTER) up

cluster-down:
	$(CLUSTER) down

cluster-status:
	$(CLUSTER) status

## demo: the main job: local cluster, CRDs, the examples, a fake provider credential API
## on loopback (e2e/fake-provider/, a cargo example) named in the operator configuration,
## the operator, and, once every example is Ready (the terminated one Erased, with its
## receipt), their status and the guided tour of docs/tour.sh.
demo: cluster-up build
	@cargo build -q --example fake-provider
	@$(WITH_CLUSTER) mkdir -p $(DEMO_DIR) && \
	  kubectl apply --server-side --force-conflicts --field-manager=herald-demo -f $(CHART)/crds/ && \
	  kubectl wait --for=condition=Established -f $(CHART)/crds/ --timeout=60s && \
	  kubectl apply --server-side --field-manager=herald-demo -f examples/00-namespace.yaml
	@# The chart's ServiceAccount, roles and admission policies, as `helm install` would
	@# create them; the operator runs locally as that ServiceAccount (a token), so the demo
	@# shows what the chart's RBAC allows, not what the admin may do.
	@$(WITH_CLUSTER) helm template herald $(CHART) $(HELM_KUBE) --namespace herald-system \
	    --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml \
	    --show-only templates/rbac-erasure.yaml \
	    --show-only templates/admission.yaml | \
	  kubectl apply --server-side --force-conflicts --field-manager=herald-demo -f - >/dev/null && \
	  server=$$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}') && \
	  kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' \
	    | base64 -d >$(DEMO_DIR)/ca.crt && \
	  token=$$(kubectl create token herald --namespace herald-system --duration=24h) && \
	  rm -f $(DEMO_DIR)/herald.kubeconfig && export KUBECONFIG=$(DEMO_DIR)/herald.kubeconfig && \
	  kubectl config set-cluster local --server="$$server" --certificate-authority=$(DEMO_DIR)/ca.crt \
	    --embed-certs=true >/dev/null && \
	  kubectl config set-credentials herald --token="$$token" >/dev/null && \
	  kubectl config set-context herald --cluster=local --user=herald >/dev/null && \
	  kubectl config use-context herald >/dev/null && \
	  echo "operator identity: system:serviceaccount:herald-system:herald ($(DEMO_DIR)/herald.kubeconfig)"
	@$(MAKE) --no-print-directory demo-stop DEMO_DIR=$(DEMO_DIR)
	@# Server-side, like everything above: a client-side apply of the namespace that was
	@# just applied server-side warns about its missing last-applied annotation.
	@# The fake provider's ledger belongs to this cluster: a fresh one (no example tenant
	@# yet) starts with an empty one.
	@$(WITH_CLUSTER) kubectl get tenants.herald.dev acme-retail >/dev/null 2>&1 || rm -f $(DEMO_DIR)/provider-state.json
	@$(WITH_CLUSTER) kubectl apply --server-side --field-manager=herald-demo -f examples/
	@# The fake provider answers to the platform token the examples' Secret holds (the
	@# one the configuration below names), on loopback only.
	@$(WITH_CLUSTER) kubectl -n herald-system get secret nordsignal-api-token -o jsonpath='{.data.token}' \
	    | base64 -d >$(DEMO_DIR)/provider.token; \
	  nohup target/debug/examples/fake-provider --addr $(DEMO_PROVIDER_ADDR) --token-file $(DEMO_DIR)/provider.token \
	    --state $(DEMO_DIR)/provider-state.json \
	    >$(DEMO_DIR)/provider.log 2>&1 </dev/null & echo $$! >$(DEMO_DIR)/provider.pid; \
	  for i in $$(seq 1 60); do curl -fsS http://$(DEMO_PROVIDER_ADDR)/credentials >/dev/null 2>&1 && break; \
	    if ! kill -0 $$(cat $(DEMO_DIR)/provider.pid) 2>/dev/null; then cat $(DEMO_DIR)/provider.log; exit 1; fi; sleep 0.5; done; \
	  echo "fake provider API on http://$(DEMO_PROVIDER_ADDR) (log $(DEMO_DIR)/provider.log)"; \
	  { cat config/herald.yaml; printf '%s\n' '' 'providers:' '  nordsignal:' \
	      '    baseUrl: http://$(DEMO_PROVIDER_ADDR)' '    authSecretRef: {name: nordsignal-api-token, key: token}'; \
	  } >$(DEMO_DIR)/herald.yaml
	@# --allow-loopback-egress: the fake provider listens on 127.0.0.1, which the egress
	@# guard refuses otherwise (local development only, never in a cluster).
	@KUBECONFIG=$(DEMO_DIR)/herald.kubeconfig nohup target/debug/herald run --http-addr $(DEMO_ADDR) \
	    --config $(DEMO_DIR)/herald.yaml --allow-loopback-egress \
	    --log-format text >$(DEMO_DIR)/herald.log 2>&1 </dev/null & echo $$! >$(DEMO_DIR)/herald.pid; \
	  for i in $$(seq 1 60); do curl -fsS http://$(DEMO_ADDR)/readyz >/dev/null 2>&1 && break; \
	    if ! kill -0 $$(cat $(DEMO_DIR)/herald.pid) 2>/dev/null; then cat $(DEMO_DIR)/herald.log; exit 1; fi; sleep 0.5; done; \
	  echo "herald running (pid $$(cat $(DEMO_DIR)/herald.pid), log $(DEMO_DIR)/herald.log, metrics http://$(DEMO_ADDR)/metrics)"
	@$(WITH_CLUSTER) files=$$(grep -lE '^kind: (Tenant|ChannelBinding|Subprocessor)$$' examples/*.yaml | sed 's/^/-f /'); \
	  if ! kubectl wait --for=condition=Ready $$files --timeout=180s >/dev/null || \
	     ! kubectl wait tenants.herald.dev/nordlicht-travel --for=jsonpath='{.status.phase}'=Erased --timeout=60s >/dev/null; then \
	    kubectl get herald -A; echo "make demo: some examples are not Ready (see their conditions)" >&2; exit 1; fi; \
	  echo; echo "\$$ kubectl get herald -A"; kubectl get herald -A; \
	  echo; echo "\$$ kubectl -n herald-system get cm -l herald.dev/receipt-for   # nordlicht-travel's deletion receipt"; \
	  kubectl -n herald-system get cm -l herald.dev/receipt-for; \
	  echo; echo "Every example is Ready; nordlicht-travel is Erased. A guided tour (docs/tour.sh):"; echo; \
	  sed -e '1,/^set -euo pipefail$$/d' docs/tour.sh; echo; \
	  echo "make demo-stop stops the operator and the fake provider; make cluster-down removes the cluster."; \
	  echo "A terminated contract is final: after the tour, 'make cluster-down demo' starts over."

demo-stop:
	@# Waits until each has exited, so that a demo started next can take its port.
	@for p in herald provider; do [ -f $(DEMO_DIR)/$$p.pid ] || continue; pid=$$(cat $(DEMO_DIR)/$$p.pid); \
	  kill $$pid 2>/dev/null || true; \
	  for i in $$(seq 1 20); do kill -0 $$pid 2>/dev/null || break; sleep 0.5; done; rm -f $(DEMO_DIR)/$$p.pid; done

## bench: the fleet benchmark (issue 8): N tenants, Herald against the floor, a table and
## target/bench/*.json. It runs on a local cluster of its own (state in BENCH_CLUSTER_DIR,
## ports from BENCH_PORT_BASE), so that it neither slows nor is confused by e2e runs on
## the shared one; HERALD_USE_KUBECONFIG=1 uses KUBECONFIG and HERALD_AUDIT_LOG instead.
BENCH_CLUSTER_DIR ?= $(HOME)/.cache/herald/bench-cluster
BENCH_PORT_BASE ?= 26410
BENCH_CLUSTER = HERALD_CLUSTER_DIR=$(BENCH_CLUSTER_DIR) HERALD_PORT_BASE=$(BENCH_PORT_BASE) $(CLUSTER)
N ?= 1000
IDLE ?= 600
ERASE ?= 100
CONCURRENCY ?= 16
bench:
	cargo build --release --features bench --bin herald
	@if [ "$${HERALD_USE_KUBECONFIG:-0}" = 1 ]; then \
	  N=$(N) IDLE=$(IDLE) ERASE=$(ERASE) CONCURRENCY=$(CONCURRENCY) cargo bench --features bench --bench fleet; \
	else \
	  $(BENCH_CLUSTER) up && eval "$$($(BENCH_CLUSTER) env)" && \
	  N=$(N) IDLE=$(IDLE) ERASE=$(ERASE) CONCURRENCY=$(CONCURRENCY) cargo bench --features bench --bench fleet; \
	fi

## chaos: tests/chaos/, on a local cluster of its own (state in CHAOS_CLUSTER_DIR, ports
## from CHAOS_PORT_BASE; a fresh one each run, so nothing of an earlier run is reconciled).
## One run, four scenarios on one fleet of CHAOS_TENANTS tenants: the operator SIGKILLed
## CHAOS_KILLS times while the fleet converges; CHAOS_ERASURES tenants erased while it is
## SIGKILLed again; kube-apiserver, then etcd restarted (10 spec changes after each, picked
## up within 30 s); two replicas with leader election, the leader SIGKILLed
## CHAOS_LEADER_KILLS times (audit log: no overlapping writers). Prints a table (scenario,
## figure, result); fails on any failed row. chaos-short is the small variant `make test`
## runs (about 3 minutes).
CHAOS_CLUSTER_DIR ?= $(HOME)/.cache/herald/chaos-cluster
CHAOS_PORT_BASE ?= 26430
CHAOS_TENANTS ?= 150
CHAOS_KILLS ?= 40
CHAOS_ERASURES ?= 40
CHAOS_LEADER_KILLS ?= 5
CHAOS_CLUSTER_VARS = HERALD_CLUSTER_DIR=$(CHAOS_CLUSTER_DIR) HERALD_PORT_BASE=$(CHAOS_PORT_BASE)
CHAOS_CLUSTER = $(CHAOS_CLUSTER_VARS) $(CLUSTER)
chaos:
	@$(CHAOS_CLUSTER) down >/dev/null 2>&1; rm -rf $(CHAOS_CLUSTER_DIR)
	$(CHAOS_CLUSTER) up
	@eval "$$($(CHAOS_CLUSTER) env)" && $(CHAOS_CLUSTER_VARS) \
	  CHAOS_TENANTS=$(CHAOS_TENANTS) CHAOS_KILLS=$(CHAOS_KILLS) \
	  CHAOS_ERASURES=$(CHAOS_ERASURES) CHAOS_LEADER_KILLS=$(CHAOS_LEADER_KILLS) \
	  cargo test --features e2e --test chaos -- --nocapture && rc=0 || rc=$$?; \
	  $(CHAOS_CLUSTER) down; exit $$rc

chaos-short:
	@$(MAKE) --no-print-directory chaos CHAOS_TENANTS=20 CHAOS_KILLS=8 CHAOS_ERASURES=5 \
	  CHAOS_LEADER_KILLS=2

bench-cluster-down:
	$(BENCH_CLUSTER) down
