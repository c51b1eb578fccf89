# dlmpaper: the two commands of the README.
#   make figures   set up .venv if missing, regenerate every figure (embedded profile, CPU)
#   make test      set up .venv if missing, run unit tests + nbval over the notebooks, offline
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_VERBOSITY ?= error
export TOKENIZERS_PARALLELISM ?= false
export PYTHONHASHSEED ?= 0

.PHONY: figures test unit notebooks benchmarks clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

figures: $(STAMP)
	$(PY) -m dlmpaper.reproduce --profile embedded --device cpu --seed 0

test: $(STAMP)
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider -q

unit: $(STAMP)
	$(PY) -m pytest tests -q -p no:cacheprovider

benchmarks: $(STAMP)
	$(PY) benchmarks/bench_probe.py
	$(PY) benchmarks/bench_sampler.py

clean-venv:
	rm -rf $(VENV)
