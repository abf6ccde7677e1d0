#!/bin/sh
# Proposals: submit-to-validated at two data sizes, by step, next to the same steps by hand.
exec /usr/bin/python3 "$(dirname "$0")/proposal.py" "$@"
