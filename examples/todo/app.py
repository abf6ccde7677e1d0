#!/usr/bin/env python3
"""A small todo web application on PostgreSQL and Redis, the branchbox example project.

  GET  /            HTML list of todos (counts a page view in Redis)
  GET  /healthz     200 "ok" only when both PostgreSQL and Redis answer, else 503
  GET  /api/todos   JSON list; ?q=TEXT keeps the todos whose title contains TEXT
  POST /api/todos   JSON {"title": "..."} -> 201 with the new todo
  GET  /api/stats   JSON counts, including the Redis page-view counter

Binds 127.0.0.1:$PORT. Settings come from the environment (see settings.py).
"""

import html
import json
import os
import sys
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import psycopg2.pool
import redis

import settings

MAX_BODY = 64 * 1024
PAGE_VIEWS_KEY = "todo:page_views"


class Backends:
    """Connections to the services, shared by the request threads."""

    def __init__(self, env):
        self.db_params = settings.database_params(env)
        self.pool = None
        self.pool_lock = threading.Lock()
        self.cache = redis.Redis(socket_timeout=2, socket_connect_timeout=2,
                                 **settings.redis_params(env))

    def _pool(self):
        with self.pool_lock:
            if self.pool is None:
                self.pool = psycopg2.pool.ThreadedConnectionPool(
                    1, 8, connect_timeout=3, **self.db_params)
            return self.pool

    def query(self, sql, args=(), fetch=True):
        pool = self._pool()
        conn = pool.getconn()
        broken = False
        try:
            with conn:
                with conn.cursor() as cur:
                    cur.execute(sql, args)
                    return cur.fetchall() if fetch else None
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        finally:
            pool.putconn(conn, close=broken or conn.closed != 0)


class Handler(BaseHTTPRequestHandler):
    server_version = "todo/1.0"
    backends = None  # set by main()

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def _send(self, status, body, content_type="application/json"):
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type + "; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status, obj):
        self._send(status, json.dumps(obj) + "\n")

    def _todos(self, search=None):
        sql = ("SELECT t.id, t.title, t.done, u.name FROM todos t "
               "LEFT JOIN users u ON u.id = t.user_id")
        if search is None:
            rows = self.backends.query(sql + " ORDER BY t.id")
        else:
            pattern = "%" + search + "%"
            rows = self.backends.query(sql + " WHERE t.title ILIKE %s ORDER BY t.id", (pattern))
        return [{"id": r[0], "title": r[1], "done": r[2], "owner": r[3]} for r in rows]

    def do_GET(self):
        path, _, query = self.path.partition("?")
        try:
            if path == "/":
                return self._index()
            if path == "/healthz":
                return self._healthz()
            if path == "/api/todos":
                search = urllib.parse.parse_qs(query).get("q", [None])[0]
                return self._json(HTTPStatus.OK, {"todos": self._todos(search)})
            if path == "/api/stats":
                return self._stats()
            return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        except (psycopg2.Error, redis.RedisError) as e:
            return self._json(HTTPStatus.SERVICE_UNAVAILABLE,
                              {"error": f"backend unavailable: {type(e).__name__}"})
        except Exception as e:  # a bug: answer 500 rather than drop the connection
            return self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                              {"error": f"internal error: {type(e).__name__}: {e}"})

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if path != "/api/todos":
            return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "bad Content-Length"})
        try:
            body = json.loads(self.rfile.read(length) or b"null")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            title = settings.validate_title(body.get("title"))
        except (ValueError, UnicodeDecodeError) as e:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
        try:
            row = self.backends.query(
                "INSERT INTO todos (title) VALUES (%s) RETURNING id, title, done", (title,))[0]
        except psycopg2.Error as e:
            return self._json(HTTPStatus.SERVICE_UNAVAILABLE,
                              {"error": f"backend unavailable: {type(e).__name__}"})
        return self._json(HTTPStatus.CREATED, {"id": row[0], "title": row[1], "done": row[2]})

    def _index(self):
        todos = self._todos()
        views = self.backends.cache.incr(PAGE_VIEWS_KEY)
        items = "\n".join(
            '<li class="%s">%s <small>%s</small></li>' % (
                "done" if t["done"] else "open", html.escape(t["title"]),
                html.escape(t["owner"] or ""))
            for t in todos)
        mode = html.escape(os.environ.get("APP_MODE", "development"))
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Todos</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}.done{{color:#888;text-decoration:line-through}}</style>
</head><body>
<h1>Todos</h1>
<ul id="todos">
{items}
</ul>
<footer>{len(todos)} todos, {views} page views, mode {mode}</footer>
</body></html>
"""
        self._send(HTTPStatus.OK, page, "text/html")

    def _healthz(self):
        problems = []
        try:
            self.backends.query("SELECT 1")
        except psycopg2.Error as e:
            problems.append(f"postgresql: {type(e).__name__}")
        try:
            self.backends.cache.ping()
        except redis.RedisError as e:
            problems.append(f"redis: {type(e).__name__}")
        if problems:
            return self._send(HTTPStatus.SERVICE_UNAVAILABLE, "; ".join(problems) + "\n",
                              "text/plain")
        return self._send(HTTPStatus.OK, "ok", "text/plain")

    def _stats(self):
        todos, done = self.backends.query(
            "SELECT count(*), count(*) FILTER (WHERE done) FROM todos")[0]
        users = self.backends.query("SELECT count(*) FROM users")[0][0]
        views = int(self.backends.cache.get(PAGE_VIEWS_KEY) or 0)
        return self._json(HTTPStatus.OK, {"todos": todos, "done": done, "open": todos - done,
                                          "users": users, "page_views": views})


def main():
    try:
        port = settings.http_port(os.environ)
        Handler.backends = Backends(os.environ)
    except settings.SettingsError as e:
        print(f"todo: {e}", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"todo: listening on http://127.0.0.1:{port}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
