# The two commands of the README. Both set up what they need first (scripts/setup.sh is idempotent).
PY := .venv/bin/python
OUT ?= out

.PHONY: setup demo test lint format

# Hand-written C (the generated C is formatted by its templates); style in .clang-format.
C_SOURCES = $(wildcard firmware/runtime/src/*.c firmware/runtime/include/*.h firmware/runtime/host/*.[ch] \
	firmware/runtime/cortexm/*.[ch] firmware/runtime/helium/*.[ch] tests/emulator/programs/kernel_check.c \
	firmware/link/*.[ch] firmware/pulp/*.[ch] firmware/pulp/*/*.[ch] firmware/include/*.h \
	firmware/boards/common/*.h firmware/boards/common/*/*.c firmware/boards/*/*.c tests/link/*.[ch])

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m mcutrain demo depth --out $(OUT)/demo-depth --json $(OUT)/demo-depth/results.json

test: setup
	$(PY) -m pytest -q

lint:
	.venv/bin/ruff check mcutrain tests tools benchmarks scripts
	clang-format --dry-run --Werror $(C_SOURCES)

format:
	.venv/bin/ruff format mcutrain tests tools benchmarks scripts
	clang-format -i $(C_SOURCES)
