#!/bin/sh
# Idle previews running at once on one machine; see bench/density.py.
exec /usr/bin/python3 "$(dirname "$0")/density.py" "$@"
