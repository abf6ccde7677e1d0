#!/bin/sh
# MCP tools/call latency (stdio, HTTP bridge, the daemon's /mcp) next to REST of the same operation.
exec /usr/bin/python3 "$(dirname "$0")/mcp.py" "$@"
