#!/usr/bin/env python3
"""Load demo data (users with real-looking emails, a few todos); idempotent.

The emails are what a preview's sanitize step masks before an agent can see the data.
"""

import os
import sys

import psycopg2

import settings

USERS = [
    ("Alice Martin", "alice.martin@example.com"),
    ("Bob Chen", "bob.chen@example.com"),
    ("Carol Diaz", "carol.diaz@example.com"),
]

TODOS = [
    ("Write the quarterly report", False, "alice.martin@example.com"),
    ("Renew the TLS certificate", True, "bob.chen@example.com"),
    ("Plan the team offsite", False, "carol.diaz@example.com"),
]


def seed(conn, out=sys.stdout):
    with conn:
        with conn.cursor() as cur:
            for name, email in USERS:
                cur.execute("INSERT INTO users (name, email) VALUES (%s, %s) "
                            "ON CONFLICT (email) DO NOTHING", (name, email))
            cur.execute("SELECT count(*) FROM todos")
            if cur.fetchone()[0] == 0:
                for title, done, email in TODOS:
                    cur.execute("INSERT INTO todos (title, done, user_id) "
                                "SELECT %s, %s, id FROM users WHERE email = %s",
                                (title, done, email))
    print("seed: demo data present", file=out)


def main():
    conn = psycopg2.connect(connect_timeout=10, **settings.database_params(os.environ))
    try:
        seed(conn)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
