#!/usr/bin/env bash
# Run every test: SDK unit tests, server tests (SQLite and PostgreSQL), end-to-end tests, all
# against the newest releases of openai, litellm and langchain in .venv; then the SDK and
# end-to-end tests again against the oldest supported releases in .venv-oldest.
# Extra arguments go to the first pytest run (e.g. `bash scripts/test.sh -k openai`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-services.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True

echo "== newest releases (.venv)"
.venv/bin/pytest -p no:cacheprovider "$@"

if [ "$#" -eq 0 ] && [ -f requirements-oldest.txt ]; then
    echo "== oldest supported releases (.venv-oldest)"
    bash scripts/test-oldest.sh
fi
