# dlmpaper: the two commands of the README.
#   make figures   set up .venv if missing, regenerate every figure (embedded profile, CPU)
#   make test      set up .venv if missing, run ruff, the tests and nbval over the notebooks, offline
#   make lock      re-resolve requirements.lock after a pin in pyproject.toml changed (needs PyPI)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
PIP_VERSION := 26.3
UV_VERSION  := 0.13.9
UV_VENV     := .cache/uv
# Left out of the lock: torch, whose right wheel depends on the machine (the CPU build from local
# disk or the PyTorch CPU index, PyPI's CUDA build on Linux; different files, different hashes),
# and the CUDA libraries only PyPI's Linux torch wheel pulls in. pip installs torch==<pin> from
# pyproject.toml after the lock, with whatever of those the chosen wheel needs.
LOCK_NO_EMIT := torch triton cuda-bindings cuda-pathfinder cuda-toolkit \
	nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 \
	nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 \
	nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_VERBOSITY ?= error
export TOKENIZERS_PARALLELISM ?= false
export PYTHONHASHSEED ?= 0

LINTED := dlmpaper tests benchmarks conftest.py

.PHONY: figures test lint unit notebooks benchmarks clean-venv lock

# Every package but torch from the lock, each file checked against its sha256; then torch and
# dlmpaper itself (editable, built with the locked setuptools); then pip check.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==$(PIP_VERSION)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-build-isolation -e '.[dev]'
	$(PY) -m pip check
	touch $(STAMP)

lock:
	test -x $(UV_VENV)/bin/uv || ($(PYTHON) -m venv $(UV_VENV) && $(UV_VENV)/bin/pip install --quiet uv==$(UV_VERSION))
	$(UV_VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --generate-hashes --quiet \
		$(foreach p,$(LOCK_NO_EMIT),--no-emit-package $(p)) --custom-compile-command "make lock" -o $(LOCK)

figures: $(STAMP)
	$(PY) -m dlmpaper.reproduce --profile embedded --device cpu --seed 0

# Strict nbval on every notebook: each printed output must match the committed one (after the
# sanitizers in tests/nbval_sanitize.cfg); images are not compared (nbval skips image/png).
test: $(STAMP) lint
	$(PY) -m pytest tests notebooks --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider -q

# ruff: pyflakes, pycodestyle and import order ([tool.ruff] in pyproject.toml), and the formatter's check.
lint: $(STAMP)
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)

unit: $(STAMP)
	$(PY) -m pytest tests -q -p no:cacheprovider

benchmarks: $(STAMP)
	$(PY) benchmarks/bench_probe.py
	$(PY) benchmarks/bench_sampler.py

clean-venv:
	rm -rf $(VENV)
