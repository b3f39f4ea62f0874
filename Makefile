# asynctask-operator. `make help` lists the targets.

# The release's version is the chart's appVersion; the image defaults to that tag.
APP_VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' charts/asynctask-operator/Chart.yaml)
IMG ?= ghcr.io/asynctask-operator/asynctask-operator:$(APP_VERSION)
RELEASE_IMG := ghcr.io/asynctask-operator/asynctask-operator:$(APP_VERSION)
BIN := $(abspath bin)
KUBE_VERSION := v1.37.2
KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37

CONTROLLER_GEN := $(BIN)/controller-gen
# The Go modules vet, lint and test cover: the operator, its importable API and the example consumer. Each is
# its own module, which `./...` from the root does not enter.
MODULES := . api examples/waiter
# The packages controller-gen reads markers from: the API types (CRDs) and the reconcilers (RBAC), not the
# example's, whose permissions are its own.
GEN_PATHS := ./api/...;./cmd/...;./internal/...
GOLANGCI_LINT := $(BIN)/golangci-lint-kube-api-linter
HELM := $(BIN)/helm
KUBECONFORM := $(BIN)/kubeconform
KUBE_SCORE := $(BIN)/kube-score
HELM_VERSION := v4.3.2
# The JSON schemas kubeconform checks manifests against: Kubernetes $(KUBE_VERSION) and the project's CRDs.
SCHEMAS := $(BIN)/schemas
CONTROL_PLANE := $(BIN)/kube-apiserver $(BIN)/etcd $(BIN)/kubectl
export KUBEBUILDER_ASSETS := $(BIN)

# The image: its platforms, and the labels and timestamps stamped into it (the commit's, so that a commit
# builds the same digest again).
PLATFORMS ?= linux/amd64 linux/arm64
IMAGE_DIR := $(BIN)/image
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: all
all: build

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs and RBAC role from the API types and markers (and the chart's CRD copies).
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="$(GEN_PATHS)" output:crd:artifacts:config=config/crd/bases
	rm -f charts/asynctask-operator/files/crds/*.yaml && cp config/crd/bases/*.yaml charts/asynctask-operator/files/crds/

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify
verify: verify-manifests verify-installer verify-api-deps generate ## Fail when generated files are not what the generators produce.
	@git diff --exit-code -- api || { echo "Generated deepcopy is stale: run 'make generate' and commit."; exit 1; }

.PHONY: verify-manifests
verify-manifests: $(CONTROLLER_GEN) ## Fail when the committed CRDs or RBAC role differ from what the markers generate.
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="$(GEN_PATHS)" output:crd:artifacts:config=$$tmp/crd output:rbac:artifacts:config=$$tmp/rbac && \
	diff -r $$tmp/crd config/crd/bases && diff $$tmp/rbac/role.yaml config/rbac/role.yaml && \
	diff -r $$tmp/crd charts/asynctask-operator/files/crds || \
	{ echo "CRDs or RBAC are stale: run 'make manifests' and commit."; exit 1; }

# The API module is for other controllers to import: its module graph must hold apimachinery and what that
# needs, never controller-runtime, client-go, the API server or the operator (docs/consumers.md).
API_FORBIDDEN_MODULES := sigs.k8s.io/controller-runtime|k8s.io/client-go|k8s.io/apiserver|k8s.io/apiextensions-apiserver|github.com/asynctask-operator/.*
.PHONY: verify-api-deps
verify-api-deps: ## Fail when the API module's go list -m all holds controller-runtime, client-go or an operator module.
	@found=$$(cd api && go list -m -f '{{if not .Main}}{{.Path}}{{end}}' all | grep -E '^($(API_FORBIDDEN_MODULES))$$'); \
	if [ -n "$$found" ]; then echo "api/ must stay apimachinery-level; its module graph holds:"; echo "$$found"; exit 1; fi

.PHONY: verify-installer
verify-installer: $(BIN)/kubectl ## Fail when dist/install.yaml is not what config/default renders.
	@tmp=$$(mktemp) && trap 'rm -f $$tmp' EXIT && $(MAKE) -s --no-print-directory installer IMG=$(RELEASE_IMG) INSTALLER=$$tmp && \
	diff -u dist/install.yaml $$tmp || { echo "dist/install.yaml is stale: run 'make build-installer' and commit."; exit 1; }

.PHONY: fmt
fmt: ## Run go fmt over every module.
	@for m in $(MODULES); do (cd $$m && go fmt ./...) || exit 1; done

.PHONY: vet
vet: ## Run go vet over every module.
	@for m in $(MODULES); do echo "go vet ($$m)"; (cd $$m && go vet ./...) || exit 1; done

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint and kube-api-linter (.golangci.yml) over every module.
	@for m in $(MODULES); do echo "golangci-lint ($$m)"; (cd $$m && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...) || exit 1; done

.PHONY: test
test: $(CONTROL_PLANE) $(HELM) $(KUBECONFORM) $(KUBE_SCORE) $(SCHEMAS)/.stamp image runc tmux vet lint verify-manifests verify-installer verify-api-deps test-alerts ## Run every test on a local control plane built from source (first build of the tools: ~25 min on 2 cores).
	go test $$(go list ./... | grep -v -e /internal/controller -e /test/install) -count=1 -timeout 20m
	cd api && go test ./... -count=1
	cd examples/waiter && go test ./... -count=1 -timeout 10m
	@# The controller suite alone, then test/install: the suite kills and restarts its API server, which must
	@# get its port back and start within envtest's timeout, so no other control plane or listener runs beside it.
	go test ./internal/controller -count=1 -timeout 20m
	go test ./test/install -count=1 -timeout 10m

# The alerts are a PrometheusRule (config/monitoring/alerts.yaml); promtool and the chart read its spec as a
# plain rule file, which hack/promrules extracts. The chart carries that file and the dashboard as copies.
MONITORING := config/monitoring
CHART_MONITORING := charts/asynctask-operator/files/monitoring

.PHONY: monitoring
monitoring: ## Copy the alerts (as a rule file) and the dashboard of config/monitoring into the chart.
	go run ./hack/promrules < $(MONITORING)/alerts.yaml > $(CHART_MONITORING)/alerts.rules.yaml
	cp $(MONITORING)/dashboard.json $(CHART_MONITORING)/dashboard.json

.PHONY: test-alerts
test-alerts: promtool ## Check the alerts with promtool and run their tests (config/monitoring/alerts_test.yaml); fail when the chart's copies are stale.
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	go run ./hack/promrules < $(MONITORING)/alerts.yaml > $$tmp/alerts.rules.yaml && \
	cp $(MONITORING)/alerts_test.yaml $$tmp/ && \
	promtool check rules $$tmp/alerts.rules.yaml && promtool test rules $$tmp/alerts_test.yaml && \
	{ diff -u $(CHART_MONITORING)/alerts.rules.yaml $$tmp/alerts.rules.yaml && diff -q $(CHART_MONITORING)/dashboard.json $(MONITORING)/dashboard.json || \
	{ echo "The chart's copies of config/monitoring are stale: run 'make monitoring' and commit."; exit 1; }; }

# make bench runs test/bench once and prints one table; BENCH_TASKS running tasks, BENCH_FLAGS passes more flags
# (go run ./test/bench -h lists them). The scenarios (issues #15 and #22, 2 cores, 10 s interval):
#   make bench BENCH_TASKS=10000                  10,000 running: CPU per 1,000 polls, restart, heap per task
#   make bench BENCH_TASKS=20000                  20,000 running: polls per task per interval, detection p99
#   make bench BENCH_TASKS=10000 BENCH_FLAGS='-finished 90000 -phases warmup,steady,restart'
#                                                 100,000 held, 90,000 of them finished: peak RSS, requests and
#                                                 writes for finished tasks, cache sync + first poll
#   make bench BENCH_TASKS=10000 BENCH_FLAGS='-replicas 3 -kill'
#                                                 one replica, then a ring of 3 in the same run: polls per task per
#                                                 interval, duplicate polls, CPU and RSS per replica against the
#                                                 one; kill -9 of one and a rolling restart: how long tasks go
#                                                 unpolled (-lease-duration, -lease-renew-deadline and
#                                                 -lease-retry-period set the members' Leases)
#   make bench-compare BASE=<rev> BENCH_TASKS=... BENCH_FLAGS=...
#                                                 the operator at BASE and the working tree's, one after the other
#                                                 with the same settings, measured by the working tree's bench
# BENCH_FLAGS='-profile-dir DIR' also saves a CPU profile of the steady window and a heap profile at its end.
BENCH_TASKS ?= 1000
BENCH_FLAGS ?=
.PHONY: bench
bench: $(CONTROL_PLANE) ## Measure scale and speed (not part of test): BENCH_TASKS=10000 for 10,000 tasks; see docs/performance.md.
	go run ./test/bench -tasks $(BENCH_TASKS) $(BENCH_FLAGS)

# bench-compare needs BASE, the commit to compare with: the merge-base of your branch, say
# BASE=$(git merge-base main HEAD); HEAD~1 is rarely the operator before a change of several commits. It builds
# test/bench at BASE (a temporary git worktree under /tmp) into BENCH_BASE_BIN, the working tree's into
# BENCH_BIN, runs the working tree's bench twice with the same BENCH_TASKS and BENCH_FLAGS, first with BASE's
# manager role (-manager-bin), then with its own, and prints both tables and the ratio new / base of every
# number (-compare). The tables, JSON results and the comparison stay in BENCH_COMPARE_DIR.
BENCH_BASE_BIN ?= $(BIN)/bench-base
BENCH_BIN ?= $(BIN)/bench
BENCH_COMPARE_DIR ?= /tmp/asynctask-bench-compare
# Checked before anything is built. The control plane is an order-only prerequisite: built when missing, not
# rebuilt because a fresh checkout's hack/*/go.mod is newer than bin/.
ifneq ($(filter bench-compare,$(MAKECMDGOALS)),)
ifeq ($(BASE),)
$(error bench-compare needs BASE=<git rev>, the operator to compare with, e.g. BASE=$$(git merge-base main HEAD))
endif
endif
.PHONY: bench-compare
bench-compare: | $(CONTROL_PLANE) ## Measure the operator at BASE=<git rev> and the working tree's in one go, with the ratios (not part of test).
	@set -e; rev=$$(git rev-parse --verify --quiet "$(BASE)^{commit}") || { echo "BASE=$(BASE) is no commit"; exit 1; }; \
	tmp=$$(mktemp -d /tmp/asynctask-bench-base.XXXXXX); \
	trap 'git worktree remove --force "$$tmp/src" >/dev/null 2>&1 || true; rm -rf "$$tmp"; git worktree prune' EXIT; \
	echo "Building test/bench at $$rev into $(BENCH_BASE_BIN)"; \
	git worktree add --detach --quiet "$$tmp/src" "$$rev"; \
	(cd "$$tmp/src" && go build -buildvcs=auto -o $(BENCH_BASE_BIN) ./test/bench)
	go build -buildvcs=auto -o $(BENCH_BIN) ./test/bench
	@mkdir -p $(BENCH_COMPARE_DIR)
	$(BENCH_BIN) -tasks $(BENCH_TASKS) $(BENCH_FLAGS) -manager-bin $(BENCH_BASE_BIN) -manager-label base \
		-manager-revision $$(git rev-parse --verify "$(BASE)^{commit}") -out $(BENCH_COMPARE_DIR)/base.md -json $(BENCH_COMPARE_DIR)/base.json
	$(BENCH_BIN) -tasks $(BENCH_TASKS) $(BENCH_FLAGS) -manager-label current \
		-manager-revision $$(git rev-parse HEAD)$$(git diff --quiet HEAD || echo -dirty) -out $(BENCH_COMPARE_DIR)/current.md -json $(BENCH_COMPARE_DIR)/current.json
	$(BENCH_BIN) -compare $(BENCH_COMPARE_DIR)/base.json,$(BENCH_COMPARE_DIR)/current.json | tee $(BENCH_COMPARE_DIR)/compare.md

.PHONY: fuzz
fuzz: ## Fuzz every parser and the status computation, FUZZTIME each (default 5m; not part of test).
	./hack/fuzz.sh

.PHONY: controlplane
controlplane: $(CONTROL_PLANE) ## Build kube-apiserver, etcd and kubectl into bin/.

##@ Run

.PHONY: demo
demo: $(CONTROL_PLANE) ## Run the operator on an embedded default: local control plane, vendor simulator, sample tasks.
	go run ./hack/demo

.PHONY: run-local
run-local: demo ## Same as demo.

.PHONY: run
run: manifests generate ## Run the operator against the cluster of your current kubeconfig (loopback vendors allowed).
	go run ./cmd --taskbackend-allowed-cidrs=127.0.0.0/8,::1

.PHONY: build
build: ## Build the manager binary.
	go build -o $(BIN)/manager ./cmd

.PHONY: cli
cli: ## Build the command-line companion, bin/kubectl-asynctask (kubectl finds it on PATH as `kubectl asynctask`).
	go build -buildvcs=auto -o $(BIN)/kubectl-asynctask ./cmd/kubectl-asynctask

.PHONY: image
image: ## Build the image (IMG) for PLATFORMS without a container engine: bin/image/oci and bin/image/*.tar.
	@for p in $(PLATFORMS); do \
		echo "go build ./cmd for $$p"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build -trimpath -ldflags="-s -w" \
			-o $(IMAGE_DIR)/manager-$${p%/*}-$${p#*/} ./cmd || exit 1; \
	done
	cd hack/image && go run . -out $(IMAGE_DIR) -tag $(IMG) -version $(VERSION) -revision $(REVISION) \
		-epoch $(SOURCE_DATE_EPOCH) -zoneinfo "$$(go env GOROOT)/lib/time/zoneinfo.zip" \
		$(foreach p,$(PLATFORMS),-manager $(p)=$(IMAGE_DIR)/manager-$(subst /,-,$(p)))

.PHONY: docker-build
docker-build: ## Build the container image with a Docker engine (the same files as `make image`).
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests $(BIN)/kubectl ## Install the CRDs into the cluster of your current kubeconfig.
	$(BIN)/kubectl apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests $(BIN)/kubectl ## Remove the CRDs (and with them every AsyncTask and backend).
	$(BIN)/kubectl delete --ignore-not-found -k config/crd

# DEPLOY_CONFIG=config/ring deploys three replicas sharing the tasks (docs/deploy.md).
DEPLOY_CONFIG ?= config/default
.PHONY: deploy
deploy: manifests $(BIN)/kubectl ## Deploy the operator (image IMG) to the cluster of your current kubeconfig.
	$(BIN)/kubectl kustomize $(DEPLOY_CONFIG) | sed 's|image: ghcr.io/asynctask-operator/asynctask-operator:latest|image: $(IMG)|' \
		| $(BIN)/kubectl apply --server-side -f -

INSTALLER ?= dist/install.yaml
.PHONY: build-installer
build-installer: manifests installer ## Write dist/install.yaml (CRDs, RBAC, Deployment, Service) for image IMG.

.PHONY: installer
installer: $(BIN)/kubectl
	@mkdir -p $(dir $(INSTALLER))
	@{ echo "# asynctask-operator $(APP_VERSION): kubectl apply --server-side -f install.yaml (made by make build-installer from config/default)"; \
	$(BIN)/kubectl kustomize config/default | sed 's|image: ghcr.io/asynctask-operator/asynctask-operator:latest|image: $(IMG)|'; } > $(INSTALLER)

.PHONY: undeploy
undeploy: $(BIN)/kubectl ## Remove the operator from the cluster of your current kubeconfig.
	$(BIN)/kubectl delete --ignore-not-found -k $(DEPLOY_CONFIG)

##@ Tools, built from the Go module proxy into bin/

# The control plane: setup-envtest downloads the release binaries when it can reach their host; otherwise
# (no GitHub access, as on the development machines) they are built from the Go module proxy, ~5 min.
SETUP_ENVTEST := $(BIN)/setup-envtest
ENVTEST_K8S_VERSION := 1.37.x
envtest_download = dir=$$($(SETUP_ENVTEST) use $(ENVTEST_K8S_VERSION) --bin-dir $(BIN)/envtest -p path 2>/dev/null) && \
	install -m 0755 "$$dir/$(1)" $@ && echo "$(1) downloaded by setup-envtest"

$(SETUP_ENVTEST): hack/setup-envtest/go.mod hack/setup-envtest/go.sum
	cd hack/setup-envtest && go build -o $@ sigs.k8s.io/controller-runtime/tools/setup-envtest

$(BIN)/kube-apiserver: hack/controlplane/go.mod hack/controlplane/go.sum | $(SETUP_ENVTEST)
	@$(call envtest_download,kube-apiserver) || { echo "setup-envtest cannot download; building kube-apiserver from source"; \
	cd hack/controlplane && go build -ldflags "$(KUBE_LDFLAGS)" -o $@ ./kube-apiserver; }

$(BIN)/kubectl: hack/controlplane/go.mod hack/controlplane/go.sum | $(SETUP_ENVTEST)
	@$(call envtest_download,kubectl) || { echo "setup-envtest cannot download; building kubectl from source"; \
	cd hack/controlplane && go build -ldflags "$(KUBE_LDFLAGS)" -o $@ ./kubectl; }

$(BIN)/etcd: hack/controlplane/go.mod hack/controlplane/go.sum | $(SETUP_ENVTEST)
	@$(call envtest_download,etcd) || { echo "setup-envtest cannot download; building etcd from source"; \
	cd hack/controlplane && go build -o $@ ./etcd; }

# golangci-lint with kube-api-linter built in (its module plugin), built with the Go the project uses: a
# golangci-lint built by an older Go cannot load this module.
$(GOLANGCI_LINT): hack/lint/go.mod hack/lint/go.sum
	cd hack/lint && go build -o $@ sigs.k8s.io/kube-api-linter/cmd/golangci-lint-kube-api-linter

$(CONTROLLER_GEN): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(HELM): hack/helm/go.mod hack/helm/go.sum
	cd hack/helm && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" -o $@ helm.sh/helm/v4/cmd/helm

$(KUBECONFORM): hack/kubeconform/go.mod hack/kubeconform/go.sum
	cd hack/kubeconform && go build -o $@ github.com/yannh/kubeconform/cmd/kubeconform

$(KUBE_SCORE): hack/kube-score/go.mod hack/kube-score/go.sum
	cd hack/kube-score && go build -o $@ github.com/zegl/kube-score/cmd/kube-score

# From the OpenAPI document of the k8s.io/kubernetes module the control plane is built from; offline.
$(SCHEMAS)/.stamp: hack/kubeconform/schemas/main.go hack/controlplane/go.mod $(wildcard config/crd/bases/*.yaml)
	rm -rf $(SCHEMAS)
	cd hack/kubeconform && go run ./schemas -openapi "$$(cd ../controlplane && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/api/openapi-spec/v3" \
		-crds ../../config/crd/bases -out $(SCHEMAS)
	touch $@

# apt-install installs Debian package $(2) for command $(1) when the command is missing and we are root; when it
# cannot, it runs $(3) (exit 1 where nothing works without the command; true where the tests skip and say why).
define apt-install
@command -v $(1) >/dev/null || { \
if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	echo "Installing $(1) (apt-get install $(2))"; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2) >/dev/null 2>&1 || \
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2); }; \
else echo "$(1) is missing and cannot be installed here (not root or no apt-get)"; $(3); fi; }
endef

# promtool (test-alerts) comes with Debian's prometheus package (~45 s).
.PHONY: promtool
promtool:
	$(call apt-install,promtool,prometheus,exit 1)

# runc runs the image in test/install; without it that test skips (fails with CI=true) and says why.
.PHONY: runc
runc:
	$(call apt-install,runc,runc,true)

# tmux is the real terminal internal/cli's tests run the live views in; without it those tests skip (fail with
# CI=true) and say why.
.PHONY: tmux
tmux:
	$(call apt-install,tmux,tmux,true)

.PHONY: tools
tools: $(CONTROL_PLANE) $(CONTROLLER_GEN) $(HELM) $(KUBECONFORM) $(KUBE_SCORE) $(SCHEMAS)/.stamp ## Build every tool into bin/ (once; helm is the largest).
