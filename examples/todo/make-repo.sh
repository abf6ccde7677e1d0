#!/bin/sh
# Create a git repository at DEST holding this example, with one commit on branch main.
# Used by the tests and the demo to get a real repository; DEST must not exist yet.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DEST" >&2
	exit 2
fi
dest=$1
src=$(cd "$(dirname "$0")" && pwd)

if [ -e "$dest" ]; then
	echo "make-repo: $dest already exists" >&2
	exit 1
fi

mkdir -p "$dest"
# Copy the example without build leftovers (bytecode caches).
(cd "$src" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - .) | (cd "$dest" && tar -xf -)

cd "$dest"
# The host's and the user's git configuration must not change the result.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="branchbox demo" GIT_AUTHOR_EMAIL="demo@branchbox.invalid"
export GIT_COMMITTER_NAME="branchbox demo" GIT_COMMITTER_EMAIL="demo@branchbox.invalid"
git init -q -b main .
git add -A
git commit -q -m "todo: example application on PostgreSQL and Redis"
git rev-parse HEAD
