"""`branchbox config check|show`: the real binary on real project directories (no daemon)."""
import json
import os
import subprocess

import pytest

BIN = os.environ.get("BRANCHBOX_BIN", "build/src/cli/branchbox")

VALID = """\
applications:
  web:
    type: python:3.11
    web:
      commands:
        start: python3 -m http.server $PORT
    relationships:
      database: "db:postgresql"
services:
  db:
    type: postgresql:15
validate:
  - http: {path: /}
"""


def run(*args, cwd=None):
    return subprocess.run([BIN, "config", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def project(tmp_path, text, where=".branchbox"):
    d = tmp_path / where
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.yaml").write_text(text)
    return tmp_path


@pytest.fixture
def runtime_root(tmp_path_factory):
    """A fake host with python3.11 only, so the runtime check does not depend on this one."""
    root = tmp_path_factory.mktemp("root")
    (root / "usr/bin").mkdir(parents=True)
    for name in ("python3.11", "python3"):
        p = root / "usr/bin" / name
        p.write_text("")
        p.chmod(0o755)
    return root


def test_check_ok(tmp_path, runtime_root):
    project(tmp_path, VALID)
    p = run("check", str(tmp_path), f"--runtime-root={runtime_root}")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == f"{tmp_path}/.branchbox/config.yaml: ok\n"


def test_check_defaults_to_current_directory(tmp_path, runtime_root):
    project(tmp_path, VALID)
    p = run("check", f"--runtime-root={runtime_root}", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == "./.branchbox/config.yaml: ok\n"


def test_check_reports_every_error_with_position(tmp_path, runtime_root):
    project(tmp_path, """\
applications:
  web:
    type: python:3.11
    colour: blue
    resources: {memory: 12Q}
    relationships:
      cache: redis
egress:
  allow: ["bad host"]
""")
    p = run("check", str(tmp_path), f"--runtime-root={runtime_root}")
    assert p.returncode == 1
    f = f"{tmp_path}/.branchbox/config.yaml"
    assert p.stdout.splitlines() == [
        f"{f}:4:5: applications.web.colour: unknown key",
        f"{f}:5:25: applications.web.resources.memory: invalid size '12Q': expected e.g. "
        "512M, 2G or a number of bytes",
        f"{f}:7:14: applications.web.relationships.cache: service 'redis' is not defined "
        "under services",
        f"{f}:9:11: egress.allow[0]: invalid host 'bad host': expected a DNS name or an IP "
        "address, with an optional :port",
    ]


def test_check_runtime_missing(tmp_path, runtime_root):
    project(tmp_path, VALID.replace("python:3.11", "python:3.12"))
    p = run("check", str(tmp_path), f"--runtime-root={runtime_root}")
    assert p.returncode == 1
    assert p.stdout == (f"{tmp_path}/.branchbox/config.yaml:3:11: applications.web.type: "
                        "runtime python:3.12 is not installed on this host (found python3.11)\n")


def test_check_json(tmp_path, runtime_root):
    project(tmp_path, "applications:\n  web:\n    type: python:3.11\n    type: python:3.11\n")
    p = run("check", str(tmp_path), "--json", f"--runtime-root={runtime_root}")
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["ok"] is False
    assert out["file"] == f"{tmp_path}/.branchbox/config.yaml"
    assert out["errors"] == [{
        "file": f"{tmp_path}/.branchbox/config.yaml", "line": 4, "column": 5, "path": "",
        "message": "duplicate key 'type' (first defined at line 3)"}]

    project(tmp_path, VALID)
    p = run("check", str(tmp_path), "--json", f"--runtime-root={runtime_root}")
    assert p.returncode == 0
    out = json.loads(p.stdout)
    assert out["ok"] is True and out["errors"] == []


def test_upsun_file_and_precedence(tmp_path, runtime_root):
    project(tmp_path, VALID, where=".upsun")
    p = run("check", str(tmp_path), f"--runtime-root={runtime_root}")
    assert p.returncode == 0
    assert p.stdout == f"{tmp_path}/.upsun/config.yaml: ok\n"

    project(tmp_path, VALID)
    p = run("check", str(tmp_path), f"--runtime-root={runtime_root}")
    assert p.returncode == 0
    assert p.stdout == f"{tmp_path}/.branchbox/config.yaml: ok\n"
    assert "using .branchbox/config.yaml" in p.stderr


def test_no_config(tmp_path):
    p = run("check", str(tmp_path))
    assert p.returncode == 1
    assert "no config file" in p.stdout


def test_symlinked_config_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("root:x:0:0\n")
    (tmp_path / ".branchbox").mkdir()
    (tmp_path / ".branchbox/config.yaml").symlink_to(secret)
    p = run("check", str(tmp_path))
    assert p.returncode == 1
    assert "refusing to follow a symlink" in p.stdout
    assert "root:x" not in p.stdout + p.stderr


def test_show_json_defaults(tmp_path):
    project(tmp_path, "applications:\n  web:\n    type: python:3.11\n")
    p = run("show", str(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)
    web = c["applications"]["web"]
    assert web["web"] is None
    assert web["resources"] == {"cpu": 1.0, "memory": 512 * 1024 * 1024}
    assert c["environments"]["production_branch"] == "main"
    assert c["environments"]["preview"]["ttl"] == 86400
    assert c["environments"]["preview"]["profile"] == {"cpu": 0.5, "memory": 256 * 1024 * 1024}
    assert c["egress"] == {"allow": []}


def test_show_summary(tmp_path):
    project(tmp_path, VALID)
    p = run("show", str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "web: python:3.11, root ., cpu 1, memory 512M" in p.stdout
    assert "relationship database -> db:postgresql" in p.stdout
    assert "db: postgresql:15, disk 1G" in p.stdout


def test_show_invalid(tmp_path):
    project(tmp_path, "applications: [\n")
    p = run("show", str(tmp_path), "--json")
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["ok"] is False
    assert out["errors"][0]["message"].startswith("YAML syntax error")


def test_help_and_usage():
    p = run("--help")
    assert p.returncode == 0
    assert "branchbox config check [DIR] [--json]" in p.stdout
    p = run("check", "--help")
    assert p.returncode == 0
    p = run()
    assert p.returncode == 2
    p = run("frobnicate")
    assert p.returncode == 2
    p = run("check", "--bogus")
    assert p.returncode == 2


def test_documented_example_is_valid(tmp_path, runtime_root):
    """The example in docs/config.md must stay a valid config."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs/config.md")) as f:
        text = f.read()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    project(tmp_path, example)
    p = run("check", str(tmp_path), f"--runtime-root={runtime_root}")
    assert p.returncode == 0, p.stdout + p.stderr
