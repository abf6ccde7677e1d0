"""Settings for the todo app, read from the environment the platform provides.

Pure functions only (no network, no imports beyond the standard library), so the unit tests
can run anywhere. Order of precedence for each service:

  PostgreSQL (relationship "database"):
    DATABASE_URL  >  DATABASE_HOST/PORT/USER(NAME)/PASSWORD/NAME(PATH)  >  PLATFORM_RELATIONSHIPS
  Redis (relationship "cache"):
    REDIS_URL  >  CACHE_URL  >  CACHE_HOST/PORT/PASSWORD  >  PLATFORM_RELATIONSHIPS

PLATFORM_RELATIONSHIPS is base64-encoded JSON mapping a relationship name to a list of
endpoints ({"host", "port", "username", "password", "path", "scheme"}), as Upsun provides it.
"""

import base64
import binascii
import json
import urllib.parse

DATABASE_RELATIONSHIP = "database"
CACHE_RELATIONSHIP = "cache"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _port(value, what):
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{what}: port {value!r} is not a number") from None
    if not 0 < port < 65536:
        raise SettingsError(f"{what}: port {port} is out of range")
    return port


def http_port(env):
    """The port to serve HTTP on (PORT, default 8000)."""
    return _port(env.get("PORT", "8000"), "PORT")


def parse_relationships(value):
    """Decode PLATFORM_RELATIONSHIPS into {name: [endpoint dict, ...]}."""
    if not value:
        return {}
    try:
        data = json.loads(base64.b64decode(value, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SettingsError(f"PLATFORM_RELATIONSHIPS is not base64 JSON: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise SettingsError("PLATFORM_RELATIONSHIPS must map names to lists of endpoints")
    return data


def _raw_host(u):
    """The host part of a URL, unquoted but not lowercased (socket paths are case-sensitive)."""
    hostport = u.netloc.rpartition("@")[2]
    if hostport.startswith("["):
        host = hostport[1:hostport.find("]")]
    else:
        host = hostport.split(":", 1)[0]
    return urllib.parse.unquote(host)


def parse_database_url(url):
    """Turn a postgresql:// URL into psycopg2.connect() keyword arguments.

    A unix socket directory may be given as ?host=/path (libpq style) or URL-encoded in the
    host part (postgresql://user@%2Frun%2Fpg/db).
    """
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("postgres", "postgresql", "pgsql"):
        raise SettingsError(f"DATABASE_URL: unsupported scheme {u.scheme!r}")
    query = dict(urllib.parse.parse_qsl(u.query))
    params = {}
    host = _raw_host(u)
    if "host" in query:
        host = query.pop("host")
    if host:
        params["host"] = host
    try:
        port = u.port
    except ValueError:
        raise SettingsError("DATABASE_URL: invalid port") from None
    if "port" in query:
        port = query.pop("port")
    if port is not None:
        params["port"] = _port(port, "DATABASE_URL")
    if u.username:
        params["user"] = urllib.parse.unquote(u.username)
    if u.password is not None:
        params["password"] = urllib.parse.unquote(u.password)
    dbname = urllib.parse.unquote(u.path.lstrip("/"))
    if dbname:
        params["dbname"] = dbname
    params.update(query)
    return params


def _first_endpoint(relationships, name, var):
    endpoints = relationships.get(name) or []
    if not endpoints or not isinstance(endpoints[0], dict):
        raise SettingsError(f"{var}: relationship {name!r} not set (PLATFORM_RELATIONSHIPS)")
    return endpoints[0]


def database_params(env):
    """psycopg2.connect() keyword arguments for the "database" relationship."""
    if env.get("DATABASE_URL"):
        return parse_database_url(env["DATABASE_URL"])
    if env.get("DATABASE_HOST"):
        params = {"host": env["DATABASE_HOST"]}
        if env.get("DATABASE_PORT"):
            params["port"] = _port(env["DATABASE_PORT"], "DATABASE_PORT")
        user = env.get("DATABASE_USER") or env.get("DATABASE_USERNAME")
        if user:
            params["user"] = user
        if env.get("DATABASE_PASSWORD") is not None:
            params["password"] = env["DATABASE_PASSWORD"]
        name = env.get("DATABASE_NAME") or env.get("DATABASE_PATH")
        if name:
            params["dbname"] = name
        return params
    rel = _first_endpoint(parse_relationships(env.get("PLATFORM_RELATIONSHIPS")),
                          DATABASE_RELATIONSHIP, "DATABASE_URL")
    params = {"host": rel.get("host", "127.0.0.1")}
    if rel.get("port"):
        params["port"] = _port(rel["port"], "PLATFORM_RELATIONSHIPS.database")
    for src, dst in (("username", "user"), ("password", "password"), ("path", "dbname")):
        if rel.get(src) is not None:
            params[dst] = rel[src]
    return params


def parse_redis_url(url, var="REDIS_URL"):
    """Turn a redis:// (or unix://) URL into redis.Redis() keyword arguments."""
    u = urllib.parse.urlsplit(url)
    params = {}
    if u.scheme == "unix":
        if not u.path:
            raise SettingsError(f"{var}: unix URL without a socket path")
        params["unix_socket_path"] = u.path
        query = dict(urllib.parse.parse_qsl(u.query))
        if "db" in query:
            params["db"] = int(query["db"])
    elif u.scheme in ("redis", "rediss"):
        params["host"] = u.hostname or "127.0.0.1"
        try:
            params["port"] = u.port or 6379
        except ValueError:
            raise SettingsError(f"{var}: invalid port") from None
        db = u.path.lstrip("/")
        if db:
            if not db.isdigit():
                raise SettingsError(f"{var}: database {db!r} is not a number")
            params["db"] = int(db)
    else:
        raise SettingsError(f"{var}: unsupported scheme {u.scheme!r}")
    if u.password is not None:
        params["password"] = urllib.parse.unquote(u.password)
    if u.username:
        params["username"] = urllib.parse.unquote(u.username)
    return params


def redis_params(env):
    """redis.Redis() keyword arguments for the "cache" relationship."""
    for var in ("REDIS_URL", "CACHE_URL"):
        if env.get(var):
            return parse_redis_url(env[var], var)
    if env.get("CACHE_HOST"):
        params = {"host": env["CACHE_HOST"],
                  "port": _port(env.get("CACHE_PORT", "6379"), "CACHE_PORT")}
        if env.get("CACHE_PASSWORD"):
            params["password"] = env["CACHE_PASSWORD"]
        return params
    rel = _first_endpoint(parse_relationships(env.get("PLATFORM_RELATIONSHIPS")),
                          CACHE_RELATIONSHIP, "REDIS_URL")
    params = {"host": rel.get("host", "127.0.0.1"),
              "port": _port(rel.get("port", 6379), "PLATFORM_RELATIONSHIPS.cache")}
    if rel.get("password"):
        params["password"] = rel["password"]
    return params


def validate_title(value):
    """Return a cleaned todo title or raise ValueError with a user-facing reason."""
    if not isinstance(value, str):
        raise ValueError("title must be a string")
    title = " ".join(value.split())
    if not title:
        raise ValueError("title must not be empty")
    if len(title) > 200:
        raise ValueError("title must be at most 200 characters")
    return title
