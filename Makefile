# The two commands of README.md: `make run` (the main job) and `make test` (the whole suite).
.PHONY: setup run test lint down

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/headwater run

test: setup
	bash scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy headwater connectors indexers streams batch api && .venv/bin/lint-imports

down:
	.venv/bin/headwater stack down
