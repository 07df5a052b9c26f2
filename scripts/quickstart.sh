#!/usr/bin/env bash
# Set up a virtualenv, install novastress-locust, and run the create_destroy sample
# against the embedded cloud (no OpenStack needed). Extra arguments go to locust.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/locust -f locustfiles/create_destroy.py --headless -t 30s "$@"
