#!/bin/sh
# Environments: create-to-healthy preview time at two data sizes, teardown, idle preview density.
exec /usr/bin/python3 "$(dirname "$0")/env.py" "$@"
