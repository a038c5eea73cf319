#!/usr/bin/env bash
# Run the SDK and end-to-end tests against the oldest supported release of each instrumented
# library (requirements-oldest.txt), in a separate virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-oldest
STAMP=$VENV/.installed
if [ ! -f "$STAMP" ] || [ requirements-oldest.txt -nt "$STAMP" ] || [ requirements-dev.txt -nt "$STAMP" ] || [ "$0" -nt "$STAMP" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    # The oldest pins go in first, as constraints, so the test tools cannot pull newer releases.
    "$VENV/bin/pip" install --quiet -c requirements-oldest.txt -r requirements-oldest.txt \
        -e sdk -e 'server[postgres]' pytest pytest-asyncio pytest-timeout jinja2 hypothesis
    touch "$STAMP"
fi

export LITELLM_LOCAL_MODEL_COST_MAP=True
"$VENV/bin/pytest" -p no:cacheprovider sdk/tests tests/e2e -m "not browser"
