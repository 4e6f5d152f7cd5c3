#!/usr/bin/env bash
# Set up the official Python client, pypegasus3 (the Python 3 port of Apache Pegasus's client,
# on Twisted), in a virtual environment of its own, for `pegbench bench cpu`:
#     bash scripts/official_client_venv.sh [DIR]      (DIR default: .venv-official)
# pypegasus3 0.0.1.1 pins Twisted 21.2.0, thrift 0.13.0, aenum 3.0.0, pyOpenSSL 20.0.1 and
# cryptography 3.2; on Python 3.11 they all install (wheels, nothing to build) and import as
# they are, so nothing is patched or overridden. Its own venv keeps thrift 0.13 apart from
# pegbench's thrift 0.25.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.venv-official}
PY=${PYTHON:-python3}

if [ ! -x "$DIR/bin/python" ]; then
    "$PY" -m venv "$DIR" || {
        echo "'$PY -m venv' failed: on Debian or Ubuntu, install python3-venv first" >&2; exit 1; }
fi
DIR=$(cd "$DIR" && pwd)
"$DIR/bin/python" -m pip install -q --disable-pip-version-check 'pypegasus3==0.0.1.1'
# The writer's imports, in a scratch directory: importing pypegasus opens a log file,
# pegasus.log, in the working directory.
(cd "$(mktemp -d)" && "$DIR/bin/python" -W ignore -c 'import pypegasus.pgclient, twisted.internet.reactor')
echo "official client ready: $DIR/bin/python"
echo "run: pegbench bench cpu --official-python $DIR/bin/python"
