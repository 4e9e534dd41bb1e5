# The two commands of the README. Both set up what they need first (scripts/setup.sh is idempotent).
PY := .venv/bin/python
OUT ?= out

.PHONY: setup demo test lint format

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m mcutrain demo depth --out $(OUT)/demo-depth --json $(OUT)/demo-depth/results.json

test: setup
	$(PY) -m pytest -q

lint:
	.venv/bin/ruff check mcutrain tests tools benchmarks scripts
	clang-format --dry-run --Werror firmware/runtime/src/*.c firmware/runtime/include/*.h firmware/link/*.[ch] tests/link/*.[ch]

format:
	.venv/bin/ruff format mcutrain tests tools benchmarks scripts
	clang-format -i firmware/runtime/src/*.c firmware/runtime/include/*.h firmware/link/*.[ch] tests/link/*.[ch]
