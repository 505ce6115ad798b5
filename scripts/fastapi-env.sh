#!/usr/bin/env bash
# Creates the Python environment of the FastAPI recipes (examples/fastapi/) under
# target/fastapi-venv, with the exact pins of examples/fastapi/requirements.txt,
# from the Python package registry. Does nothing when the environment already
# holds exactly those pins. Needs python3 (3.10 or newer) with venv and pip.
#
#   scripts/fastapi-env.sh && cargo run -p loadgen -- run --servers examples/fastapi/servers.toml
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=examples/fastapi/requirements.txt
venv=target/fastapi-venv
stamp=$venv/installed-requirements.txt

if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; then
  echo "$venv is up to date"
  exit 0
fi
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "error: $python not found; install Python 3.10 or newer (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "error: $("$python" --version) is too old; the recipes need Python 3.10 or newer" >&2
  exit 1
fi
echo "creating $venv with $("$python" --version)"
rm -rf "$venv"
mkdir -p target
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  --no-deps --requirement "$requirements"
"$venv/bin/python" -m pip check
# Written last: an interrupted run leaves no stamp, and the next one starts over.
cp "$requirements" "$stamp"
"$venv/bin/python" -c 'import fastapi, uvicorn, rq; print("fastapi", fastapi.__version__, "uvicorn", uvicorn.__version__, "rq", rq.__version__)'
