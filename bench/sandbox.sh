#!/bin/sh
# Sandbox start-to-exit next to bwrap, the per-stage breakdown and the in-process spawn path;
# see bench/sandbox.py. Usage: bench/sandbox.sh BUILD_DIR
exec /usr/bin/python3 "$(dirname "$0")/sandbox.py" "$@"
