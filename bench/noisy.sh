#!/bin/sh
# Noisy neighbour: production's p99 through the preview proxy, neighbour idle and burning.
exec /usr/bin/python3 "$(dirname "$0")/noisy.py" "$@"
