"""Unit tests for settings.py: no services needed."""

import base64
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import settings  # noqa: E402


def relationships(obj):
    return base64.b64encode(json.dumps(obj).encode()).decode()


class DatabaseSettings(unittest.TestCase):
    def test_url(self):
        p = settings.database_params(
            {"DATABASE_URL": "postgresql://todo:s%40cret@db.internal:5433/main"})
        self.assertEqual(p, {"host": "db.internal", "port": 5433, "user": "todo",
                             "password": "s@cret", "dbname": "main"})

    def test_url_unix_socket(self):
        p = settings.parse_database_url("postgresql://main@/main?host=/run/PG&port=5432")
        self.assertEqual(p, {"host": "/run/PG", "port": 5432, "user": "main", "dbname": "main"})
        p = settings.parse_database_url("postgres://u@%2Frun%2FPG/db")
        self.assertEqual(p["host"], "/run/PG")

    def test_url_bad(self):
        with self.assertRaisesRegex(settings.SettingsError, "scheme"):
            settings.parse_database_url("mysql://x@y/z")
        with self.assertRaisesRegex(settings.SettingsError, "DATABASE_URL"):
            settings.parse_database_url("postgresql://x@y:99999/z")

    def test_relationship_variables(self):
        env = {"DATABASE_HOST": "database.internal", "DATABASE_PORT": "5432",
               "DATABASE_USER": "main", "DATABASE_PASSWORD": "pw", "DATABASE_NAME": "main"}
        self.assertEqual(settings.database_params(env),
                         {"host": "database.internal", "port": 5432, "user": "main",
                          "password": "pw", "dbname": "main"})
        # Upsun spells them USERNAME and PATH.
        env = {"DATABASE_HOST": "h", "DATABASE_USERNAME": "u", "DATABASE_PATH": "d"}
        self.assertEqual(settings.database_params(env), {"host": "h", "user": "u", "dbname": "d"})

    def test_url_wins_over_variables(self):
        env = {"DATABASE_URL": "postgresql://a@b/c", "DATABASE_HOST": "ignored"}
        self.assertEqual(settings.database_params(env)["host"], "b")

    def test_platform_relationships(self):
        env = {"PLATFORM_RELATIONSHIPS": relationships({
            "database": [{"scheme": "pgsql", "host": "database.internal", "port": 5432,
                          "username": "main", "password": "x", "path": "main"}]})}
        self.assertEqual(settings.database_params(env),
                         {"host": "database.internal", "port": 5432, "user": "main",
                          "password": "x", "dbname": "main"})

    def test_missing(self):
        with self.assertRaisesRegex(settings.SettingsError, "database"):
            settings.database_params({})
        with self.assertRaisesRegex(settings.SettingsError, "base64"):
            settings.database_params({"PLATFORM_RELATIONSHIPS": "not base64!"})


class RedisSettings(unittest.TestCase):
    def test_url(self):
        self.assertEqual(settings.redis_params({"REDIS_URL": "redis://:pw@cache.internal:6380/2"}),
                         {"host": "cache.internal", "port": 6380, "db": 2, "password": "pw"})
        self.assertEqual(settings.redis_params({"CACHE_URL": "redis://c"}),
                         {"host": "c", "port": 6379})

    def test_unix(self):
        self.assertEqual(settings.parse_redis_url("unix:///run/redis.sock?db=1"),
                         {"unix_socket_path": "/run/redis.sock", "db": 1})

    def test_variables_and_relationships(self):
        self.assertEqual(settings.redis_params({"CACHE_HOST": "cache.internal", "CACHE_PORT": "6379"}),
                         {"host": "cache.internal", "port": 6379})
        env = {"PLATFORM_RELATIONSHIPS": relationships({
            "cache": [{"scheme": "redis", "host": "cache.internal", "port": 6379}]})}
        self.assertEqual(settings.redis_params(env), {"host": "cache.internal", "port": 6379})

    def test_bad(self):
        with self.assertRaises(settings.SettingsError):
            settings.parse_redis_url("http://x")
        with self.assertRaises(settings.SettingsError):
            settings.parse_redis_url("redis://x/notanumber")
        with self.assertRaisesRegex(settings.SettingsError, "cache"):
            settings.redis_params({})


class Misc(unittest.TestCase):
    def test_port(self):
        self.assertEqual(settings.http_port({}), 8000)
        self.assertEqual(settings.http_port({"PORT": "8080"}), 8080)
        with self.assertRaises(settings.SettingsError):
            settings.http_port({"PORT": "http"})
        with self.assertRaises(settings.SettingsError):
            settings.http_port({"PORT": "0"})

    def test_title(self):
        self.assertEqual(settings.validate_title("  buy   milk "), "buy milk")
        for bad in ("", "   ", None, 3, "x" * 201):
            with self.assertRaises(ValueError):
                settings.validate_title(bad)


if __name__ == "__main__":
    unittest.main()
