#!/bin/sh
# Clone/teardown benchmark of copy-on-write volumes; see bench/storage.py.
# Usage: bench/storage.sh BUILD_DIR
exec /usr/bin/python3 "$(dirname "$0")/storage.py" "$@"
