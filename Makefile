# make test: set up .venv if missing, install the package with its test, serving, deployment
# (onnx, litert, openvino) and batch prediction (beam) extras, run the test suite (so none of
# them skips). make demo: the same set-up, then the demo. Both work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: test test-reference demo lint format bench install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,serve,onnx,litert,openvino,beam]'
	touch $(STAMP)

# two workers, whole files each (module fixtures built once): much of a test's time is
# single-threaded (tracing, process start-up, servers waiting on clients)
PYTEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# parity against timm's own PyTorch models; installs the reference extra (torch, timm) first
test-reference: $(STAMP)
	$(PY) -m pip install -q -e '.[reference]'
	$(PY) -m pytest tests/reference -o addopts="-ra"

# the demo is inception/demo/ (its steps: train.py, evaluate.py, serve.py); level 3: TensorFlow's
# ERROR lines too (cuInit on a machine without a GPU driver)
demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(PY) -m inception.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# each benchmark prints a markdown table; see README.md and docs/ for the recorded numbers
bench: $(STAMP)
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/input_pipeline.py
	$(PY) benchmarks/evaluation.py --model inception_resnet_v1 --size 75 --classes 5 --repeats 1
	$(PY) benchmarks/serving.py
