"""The preview proxy forwards nothing that could split the upstream request, and decides
authentication from the headers before it reads a byte of the body.

The upstream is a real application in production's sandbox (echo_project) that logs every line
it receives; each refusal is checked against that log, and each marker that must never arrive
is sent once in a harmless form afterwards to show the log would have shown it.
"""
import json
import secrets
import socket
import time

import pytest

from echo_project import (body_of, raw_request, start_echo_daemon, status_of, stop_echo_daemon,
                          upstream_lines, upstream_requests)

CONTROL_MESSAGE = b"control characters (0x00-0x1f, 0x7f) are not allowed"


@pytest.fixture(scope="module")
def echo():
    d = start_echo_daemon(extra_args=["--preview-domain", "preview.test"])
    yield d
    stop_echo_daemon(d)


def get(target, headers=b"", host=b"x"):
    return (b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + headers +
            b"Connection: close\r\n\r\n")


def settle(d, marker):
    """Send a harmless request carrying marker and wait until the application logged it: the
    log is written in order, so whatever an earlier request delivered is in the log by then.
    Returns the log lines; this is also the positive control that the log shows markers."""
    r = raw_request(d, get(b"/preview/main/control-" + marker.encode()))
    assert status_of(r) == 200, r
    deadline = time.monotonic() + 60
    while True:
        lines = upstream_lines(d)
        if any("control-" + marker in l for l in lines):
            return lines
        assert time.monotonic() < deadline, f"the application never logged control-{marker}"
        time.sleep(0.1)


def leaked(lines, marker):
    return [l for l in lines if marker in l and "control-" + marker not in l]


def test_normal_request_and_headers_reach_the_application(echo):
    """Positive control: the same channel carries an ordinary request and its headers."""
    marker = "ok-" + secrets.token_hex(4)
    r = raw_request(echo, get(b"/preview/main/p/" + marker.encode() + b"?q=1",
                              b"User-Agent: ua-" + marker.encode() + b"\r\n"
                              b"Accept: text/plain\r\n"))
    assert status_of(r) == 200, r
    assert b"GET /p/" + marker.encode() + b"?q=1 HTTP/1.0\r\n" in body_of(r)
    lines = settle(echo, marker)
    assert f"b'GET /p/{marker}?q=1 HTTP/1.0'" in lines
    assert f"b'User-Agent: ua-{marker}'" in lines
    assert "b'Accept: text/plain'" in lines


INJECTIONS = [
    b"/preview/main/a%0d%0aX-Injected:%20{m}",
    b"/preview/main/a%0D%0AX-Injected:%20{m}",
    b"/preview/main/a%0aX-Injected:%20{m}",
    b"/preview/main/a%0dX-Injected:%20{m}",
    b"/preview/main/a%00X-Injected:%20{m}",
    b"/preview/main/a%09X-Injected:%20{m}",
    b"/preview/main/a%1bX-Injected:%20{m}",
    b"/preview/main/a%7fX-Injected:%20{m}",
    b"/preview/main/a\x01X-Injected:{m}",
    b"/preview/main/a?q=%0d%0aX-Injected:%20{m}",
    b"/preview/main/a?%0d%0aX-Injected:%20{m}=1",
    b"/preview/main/a?q=1&r=%00{m}",
    b"/preview/main/a%20HTTP/1.0%0d%0a%0d%0aGET%20/{m}",
]


@pytest.mark.parametrize("target", INJECTIONS, ids=lambda t: t.decode("latin-1")[14:40])
def test_control_characters_in_path_or_query_are_refused(echo, target):
    marker = "inj-" + secrets.token_hex(4)
    target = target.replace(b"{m}", marker.encode())
    before = upstream_requests(echo)
    r = raw_request(echo, get(target))
    assert status_of(r) == 400, r
    err = json.loads(body_of(r))["error"]
    assert err["code"] == "invalid" and CONTROL_MESSAGE.decode() in err["message"]
    # Nothing was forwarded: not the injected line, not even the request before it (the one
    # request more is settle's own).
    lines = settle(echo, marker)
    assert upstream_requests(echo) == before + 1
    assert leaked(lines, marker) == []
    # The record names the request without its control characters.
    recs = json.loads(echo.cli("audit", "log", "--limit", "20", "--json").stdout)["records"]
    mine = [x for x in recs if marker in (x["resource"] or "")]
    assert mine and mine[-1]["decision"] == "deny" and mine[-1]["outcome"] == "400"
    assert not any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in mine[-1]["resource"])


def test_control_characters_are_refused_on_the_preview_host_too(echo):
    marker = "host-" + secrets.token_hex(4)
    before = upstream_requests(echo)
    r = raw_request(echo, get(b"/a%0d%0aX-Injected:%20" + marker.encode(), host=b"main.preview.test"))
    assert status_of(r) == 400, r
    lines = settle(echo, marker)
    assert upstream_requests(echo) == before + 1 and leaked(lines, marker) == []
    r = raw_request(echo, get(b"/by-host-" + marker.encode(), host=b"main.preview.test"))
    assert status_of(r) == 200 and b"GET /by-host-" + marker.encode() in body_of(r)


def test_a_preview_host_is_rewritten_or_refused_never_the_api(echo):
    """A Host under the preview domain never reaches the API's own routes: one that names no
    valid environment, or whose rewritten path would not fit, is refused; host names are
    case-insensitive. Positive control: the same request with another Host is the API's."""
    assert status_of(raw_request(echo, get(b"/v1/version"))) == 200
    for host in (b"-x.preview.test", b"_x.preview.test", b"a..b.preview.test"):
        r = raw_request(echo, get(b"/v1/version", host=host))
        assert status_of(r) == 404 and b"no preview here" in body_of(r), (host, r)
    marker = "case-" + secrets.token_hex(4)
    r = raw_request(echo, get(b"/" + marker.encode(), host=b"MAIN.Preview.Test."))
    assert status_of(r) == 200 and b"GET /" + marker.encode() in body_of(r), r
    # 2,040 bytes fit the API's limit of 2,048, "/preview/main" in front of them does not.
    r = raw_request(echo, get(b"/v1/version/" + b"a" * 2028, host=b"main.preview.test"))
    assert status_of(r) == 414, r


def test_a_decoded_question_mark_is_part_of_the_name(echo):
    """The daemon routes the %-decoded path: "main%3Fx" names the environment "main?x", not
    "main" (a DELETE of it destroyed main). Positive control: "main" itself is found."""
    assert status_of(raw_request(echo, get(b"/v1/environments/main"))) == 200
    r = raw_request(echo, get(b"/v1/environments/main%3Fx"))
    assert status_of(r) == 404 and b"main?x" in body_of(r), r


@pytest.mark.parametrize("header", [b"User-Agent", b"Accept", b"Accept-Language", b"Content-Type"])
@pytest.mark.parametrize("bad", [b"\x01", b"\x1b", b"\t", b"\x7f", b"\x0b"],
                         ids=["soh", "esc", "tab", "del", "vt"])
def test_control_characters_in_forwarded_headers_are_refused(echo, header, bad):
    marker = "hdr-" + secrets.token_hex(4)
    before = upstream_requests(echo)
    r = raw_request(echo, get(b"/preview/main/h", header + b": a" + bad + marker.encode() + b"\r\n"))
    assert status_of(r) == 400, r
    msg = json.loads(body_of(r))["error"]["message"]
    assert header.decode() in msg and "control characters" in msg
    lines = settle(echo, marker)
    assert upstream_requests(echo) == before + 1 and leaked(lines, marker) == []
    # The same header without the control character is forwarded.
    r = raw_request(echo, get(b"/preview/main/h", header + b": a-" + marker.encode() + b"\r\n"))
    assert status_of(r) == 200
    assert header + b": a-" + marker.encode() + b"\r\n" in body_of(r)


@pytest.mark.parametrize("head", [
    b"User-Agent: a\r\n X-Injected: {m}\r\n",       # obsolete line folding
    b"User-Agent: a\rX-Injected: {m}\r\n",          # a bare CR
    b"User-Agent: a\x00\r\nX-Injected: {m}\r\n",    # NUL then a header of its own
    b"User-Agent: a\x00X-Injected: {m}\r\n",        # NUL inside the value
], ids=["fold", "bare-cr", "nul-line", "nul-value"])
def test_no_header_line_can_be_smuggled_upstream(echo, head):
    """Whatever the HTTP layer makes of these (a refusal, a cut or a joined value), no line of
    the client's making starts a header upstream and nothing after a NUL gets there."""
    marker = "smug-" + secrets.token_hex(4)
    r = raw_request(echo, get(b"/preview/main/s", head.replace(b"{m}", marker.encode())))
    assert status_of(r) in (200, 400), r
    lines = settle(echo, marker)
    assert not any(l.startswith("b'X-Injected") and marker in l for l in lines)
    if b"\x00" in head:
        assert leaked(lines, marker) == []


def test_unauthenticated_body_is_never_read(echo):
    """A request without a valid token is answered from its headers: the daemon neither waits
    for nor reads the gigabyte it announced, and closes the connection."""
    before = upstream_requests(echo)
    for auth in (b"", b"Authorization: Bearer bbx_nonsense\r\n"):
        with socket.create_connection(("127.0.0.1", echo.port), timeout=30) as s:
            s.sendall(b"POST /preview/main/upload HTTP/1.1\r\nHost: x\r\n" + auth +
                      b"Content-Type: application/octet-stream\r\n"
                      b"Content-Length: 1000000000\r\n\r\n" + b"x" * 1000)
            out = b""
            while True:  # the whole answer, then the daemon's close
                k = s.recv(65536)
                if not k:
                    break
                out += k
            assert status_of(out) == 401, out
            assert json.loads(body_of(out))["error"]["code"] == "unauthorized"
            # The rest of the announced body has nowhere to go.
            with pytest.raises(OSError):
                for _ in range(1024):
                    s.sendall(b"x" * 65536)
    settle(echo, "unauth-" + secrets.token_hex(4))
    assert upstream_requests(echo) == before + 1


def test_out_of_scope_body_is_never_read(echo):
    """A token that cannot see the environment gets the not-found answer from the headers."""
    tok = json.loads(echo.cli("token", "create", "--agent", "bot", "--env", "pr-*", "--verbs",
                              "env:read", "--ttl", "1h", "--json").stdout)["token"]
    with socket.create_connection(("127.0.0.1", echo.port), timeout=30) as s:
        s.sendall(b"POST /preview/main/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                  tok.encode() + b"\r\nContent-Length: 1000000000\r\n\r\n")
        out = b""
        while True:
            k = s.recv(65536)
            if not k:
                break
            out += k
    assert status_of(out) == 404 and b"environment 'main' not found" in body_of(out)


def test_authenticated_body_is_read_and_forwarded(echo):
    """Positive control for the two above: an admitted request is answered only once its whole
    body is in, and the body reaches the application."""
    marker = "body-" + secrets.token_hex(4)
    body = marker.encode() + b"-" + b"y" * 20
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(echo.socket)
        s.sendall(b"POST /preview/main/upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        s.settimeout(2)
        with pytest.raises(socket.timeout):
            s.recv(1)  # nothing yet: the daemon waits for the rest of the body
        s.settimeout(30)
        s.sendall(body[10:])
        out = b""
        while True:
            k = s.recv(65536)
            if not k:
                break
            out += k
    assert status_of(out) == 200, out
    upstream = body_of(out)  # what the application received, head and body
    assert upstream.startswith(b"POST /upload HTTP/1.0\r\n")
    assert upstream.endswith(b"\r\n\r\n" + body)
    assert b"Content-Length: %d\r\n" % len(body) in upstream
