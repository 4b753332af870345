# The two set-up commands of the README. Both create .venv when it is missing.
#   make demo   install kiln, convert and run the bundled example model
#   make test   install the test extras and run the suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# pytest workers: both cores by default
JOBS   ?= 2
# The conformance baseline (tests/frontends/onnx_conformance_failures.txt) is measured against these;
# the extras in pyproject.toml keep loose ranges for users.
PINS   := onnx==1.23.2 onnxruntime==1.32.0
# torch==2.13.0 takes the CPU wheel (an unpinned torch pulls several GB of CUDA packages);
# pocl-binary-distribution is a real OpenCL device on the CPU (the opencl target runs on it in CI);
# nvidia-cuda-nvcc-cu12 carries ptxas, which validates the cuda target's PTX (GPU tests skip without a GPU)
TEST_PINS := $(PINS) torch==2.13.0 jax==0.10.2 jaxlib==0.10.2 transformers==5.23.0 \
             pyopencl==2026.1.4 pocl-binary-distribution==3.0 cuda-python==13.4.4 nvidia-cuda-nvcc-cu12==12.9.86

.PHONY: demo test conformance clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml Makefile | $(PY)
	$(PIP) install -q -e ".[onnx,bench]" $(PINS)
	touch $@

$(VENV)/.test-installed: pyproject.toml Makefile | $(PY)
	$(PIP) install -q -e ".[test,opencl,cuda]" $(TEST_PINS)
	touch $@

demo: $(VENV)/.demo-installed
	$(PY) examples/demo.py

test: $(VENV)/.test-installed
	$(PY) -m pytest -q -n $(JOBS) -p no:cacheprovider

conformance: $(VENV)/.test-installed
	$(PY) benchmarks/onnx_conformance.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
