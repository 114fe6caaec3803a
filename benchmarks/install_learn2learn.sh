#!/usr/bin/env bash
# Build learn2learn 0.2.0 (the benchmark's optional comparison) for this venv's Python, into a
# separate folder (never the venv): its sdist ships Cython-generated C that does not compile on
# Python 3.11 (longintrepr.h), so the C is regenerated with Cython < 3.1 first. gym (imported by
# learn2learn at import time) is installed beside it without dependencies; torch is untouched.
#
#   bash benchmarks/install_learn2learn.sh [TARGET]          # default TARGET: .bench-site
#   PYTHONPATH=.bench-site python -m trlearner bench ...    # then the bench measures it
set -euo pipefail
PY=${PYTHON:-.venv/bin/python}
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # absolute, venv kept (no symlink resolution)
TARGET=$(realpath -m "${1:-.bench-site}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip download -q --no-deps learn2learn==0.2.0 -d "$WORK/sdist"
"$PY" -m pip install -q --target "$WORK/cython" "cython<3.1"
tar xzf "$WORK"/sdist/learn2learn-0.2.0.tar.gz -C "$WORK"
( cd "$WORK/learn2learn-0.2.0"
  find learn2learn -name "*.pyx" | while read -r f; do PYTHONPATH="$WORK/cython" "$PY" -m cython -3 "$f"; done
  PYTHONPATH="$WORK/cython" "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/wheels" . )
"$PY" -m pip install -q --no-deps --target "$TARGET" "$WORK"/wheels/learn2learn-*.whl
"$PY" -m pip install -q --no-deps --target "$TARGET" gym==0.26.2 gym_notices cloudpickle
PYTHONPATH="$TARGET" "$PY" -W ignore -c "import learn2learn; print('learn2learn', learn2learn.__version__, 'in $TARGET')"
