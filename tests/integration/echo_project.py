"""A tiny project whose production is one web application that writes every request line and
header it receives to its log and answers with them, so tests can see exactly what reached the
upstream side of the preview proxy. No services: it deploys in about a second."""
import os
import shutil
import socket
import subprocess
import tempfile

from conftest import Daemon

CONFIG = """\
applications:
  web:
    source:
      root: "."
    type: "python:3.11"
    web:
      commands:
        start: "python3 echo.py"
      port: 8000
"""

# Reads the request head raw (no HTTP library to normalise it) and logs each line as a Python
# bytes literal, so a control character shows up as an escape, never as a line break.
ECHO = r'''
import os, socket

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(os.environ.get("PORT", "8000"))))
srv.listen(64)
while True:
    c, _ = srv.accept()
    c.settimeout(10)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            k = c.recv(65536)
            if not k:
                break
            data += k
        head, _, body = data.partition(b"\r\n\r\n")
        want = 0
        for line in head.split(b"\r\n"):
            print("UPSTREAM " + repr(line), flush=True)
            if line.lower().startswith(b"content-length:"):
                want = int(line.split(b":", 1)[1])
        while len(body) < want:
            k = c.recv(65536)
            if not k:
                break
            body += k
        print("UPSTREAM-BODY " + repr(body), flush=True)
        out = head + b"\r\n\r\n" + body
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                  % len(out) + out)
    except OSError:
        pass
    c.close()
'''

GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")


def make_echo_repo(path):
    os.makedirs(os.path.join(path, ".branchbox"))
    with open(os.path.join(path, ".branchbox", "config.yaml"), "w") as f:
        f.write(CONFIG)
    with open(os.path.join(path, "echo.py"), "w") as f:
        f.write(ECHO)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "echo"]):
        subprocess.run(["git", "-C", path, *args], check=True, env=GIT_ENV, capture_output=True)
    return path


def git_branch(repo, name):
    subprocess.run(["git", "-C", repo, "branch", "-f", name, "main"], check=True, env=GIT_ENV,
                   capture_output=True)


def start_echo_daemon(extra_args=()):
    """A daemon for a fresh echo project with production deployed; stop with stop_echo_daemon."""
    tmp = tempfile.mkdtemp(prefix="bbx-echo-")
    repo = make_echo_repo(os.path.join(tmp, "repo"))
    d = Daemon(tmp, repo, extra_args=list(extra_args)).start()
    try:
        d.cli("deploy", timeout=300)
    except BaseException:
        stop_echo_daemon(d)
        raise
    return d


def stop_echo_daemon(d):
    d.stop()
    try:
        d.down()
    finally:
        shutil.rmtree(d.tmp, ignore_errors=True)


def upstream_lines(d, name="main"):
    """Every request line and header the application received, as logged by it."""
    out = d.cli("env", "logs", name, "web").stdout
    return [l.split("UPSTREAM ", 1)[1] for l in out.splitlines() if "UPSTREAM " in l]


def upstream_requests(d, name="main"):
    """How many requests reached the application (their request lines)."""
    return sum(1 for l in upstream_lines(d, name) if l.startswith(("b'GET ", "b'POST ")))


def raw_request(d, data, unix=True, timeout=30):
    """Send raw bytes, return everything the daemon answered until it closed."""
    if unix:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.socket)
    else:
        s = socket.create_connection(("127.0.0.1", d.port))
    with s:
        s.settimeout(timeout)
        s.sendall(data)
        out = b""
        while True:
            k = s.recv(65536)
            if not k:
                return out
            out += k


def status_of(response):
    return int(response.split(b" ", 2)[1])


def body_of(response):
    return response.partition(b"\r\n\r\n")[2]
