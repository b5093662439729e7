# One idempotent install step, then the two quick-start targets (demo, test).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# MONAI Label 0.8.5 serves bundles only with monai 1.5.2: the suite runs on it too.
COMPAT_VENV ?= .venv-monai152
COMPAT_BIN := $(COMPAT_VENV)/bin
COMPAT_STAMP := $(COMPAT_VENV)/.installed

.PHONY: install demo test test-monailabel bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU torch first: any other torch request can pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

$(COMPAT_STAMP): setup.cfg pyproject.toml
	test -x $(COMPAT_BIN)/python || $(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_BIN)/python -m pip install -q --upgrade pip
	$(COMPAT_BIN)/python -m pip install -q torch==2.13.0
	$(COMPAT_BIN)/python -m pip install -q -e ".[test]" "monai==1.5.2"
	touch $(COMPAT_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/genesis demo

test: $(STAMP) $(COMPAT_STAMP)
	@echo "=== test suite on monai 1.5.2 (MONAI Label 0.8.5) ==="
	$(COMPAT_BIN)/python -m pytest -n 2 -p no:cacheprovider tests
	@echo "=== test suite on the newest supported monai ==="
	$(BIN)/python -m pytest -n 2 tests

# The segmentation bundles in a real MONAI Label 0.8.5 server, in its own environment (built once, cached).
MONAILABEL_VENV ?= .venv-monailabel
test-monailabel: $(STAMP)
	PYTHON=$(PYTHON) bash tests/integration/monailabel_env.sh $(MONAILABEL_VENV)
	MONAILABEL_VENV=$(MONAILABEL_VENV) $(BIN)/python -m pytest -p no:cacheprovider -s -n 3 tests/integration

# Benchmarks print ratios against peers measured in the same run (minutes, not seconds).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_transforms.py
	$(BIN)/python benchmarks/bench_cube_extraction.py
	$(BIN)/python benchmarks/bench_phantoms.py --demo-scale
	$(BIN)/python benchmarks/bench_networks.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_inference.py --quick
	$(BIN)/python benchmarks/bench_candidates.py

clean:
	rm -rf $(VENV) $(COMPAT_VENV) $(MONAILABEL_VENV) build *.egg-info demo_output
