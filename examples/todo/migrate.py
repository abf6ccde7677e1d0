#!/usr/bin/env python3
"""Bring the database schema up to date; safe to run any number of times.

Run by the deploy hook. Each migration runs once, in order, recorded in schema_migrations;
an advisory lock keeps two deploys from racing. `--seed` also loads the demo data.
"""

import os
import sys

import psycopg2

import settings

# (version, description, SQL). Append only: never edit a migration that has shipped.
MIGRATIONS = [
    (1, "users", """
        CREATE TABLE users (
            id         serial PRIMARY KEY,
            name       text NOT NULL,
            email      text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now()
        )"""),
    (2, "todos", """
        CREATE TABLE todos (
            id         serial PRIMARY KEY,
            title      text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
            done       boolean NOT NULL DEFAULT false,
            user_id    integer REFERENCES users(id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )"""),
    (3, "todos index", "CREATE INDEX todos_created_at ON todos (created_at)"),
]

LOCK_KEY = 0x70d0  # advisory lock id shared by every migrate.py run


def migrate(conn, out=sys.stdout):
    """Apply the missing migrations in one transaction; return how many ran."""
    applied = 0
    with conn:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            cur.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                               version     integer PRIMARY KEY,
                               description text NOT NULL,
                               applied_at  timestamptz NOT NULL DEFAULT now())""")
            cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in cur.fetchall()}
            for version, description, sql in MIGRATIONS:
                if version in done:
                    continue
                cur.execute(sql)
                cur.execute("INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                            (version, description))
                print(f"migrate: applied {version} ({description})", file=out)
                applied += 1
    if not applied:
        print("migrate: schema is up to date", file=out)
    return applied


def main(argv):
    env = os.environ
    try:
        params = settings.database_params(env)
    except settings.SettingsError as e:
        print(f"migrate: {e}", file=sys.stderr)
        return 2
    conn = psycopg2.connect(connect_timeout=10, **params)
    try:
        migrate(conn)
        if "--seed" in argv[1:]:
            import seed
            seed.seed(conn)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
