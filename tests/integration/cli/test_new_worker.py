"""daebus new worker: the project's tests pass, it serves, its .deb builds lintian-clean."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daebus.cli import Exit
from daebus.service.workers import read_worker
from support import ROOT, ManagedProcess, child_env

TOOLS = {"dpkg-buildpackage": "dpkg-dev", "dh": "debhelper", "lintian": "lintian"}
CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture
def project(tmp_path, daebus):
    out = daebus("new", "worker", "acme-probe", "--dir", str(tmp_path / "acme-probe"))
    assert out.returncode == Exit.OK, out.stderr
    assert "created" in out.stdout and "debian/control" in out.stdout
    return tmp_path / "acme-probe"


def test_the_generated_tests_pass_as_generated(project):
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 passed" in out.stdout


def test_the_test_step_it_prints_is_one_that_runs(tmp_path, daebus):
    out = daebus("new", "worker", "acme-step", "--dir", str(tmp_path / "acme-step"))
    step = next(line for line in out.stdout.splitlines() if line.rstrip().endswith("# its tests"))
    argv = step.split("#")[0].split()
    assert argv[-2:] == ["-m", "pytest"], step
    # Run as printed, as a user would: the interpreter the shell finds, no PYTHONPATH help.
    env = {k: v for k, v in child_env("redis://127.0.0.1:1/0").items() if k != "PYTHONPATH"}
    run = subprocess.run([*argv, "-q", "-p", "no:cacheprovider"], cwd=tmp_path / "acme-step",
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, step + "\n" + run.stdout[-2000:] + run.stderr[-2000:]


def test_the_generated_tests_can_fail(project):
    # They test the module: break it and they say so.
    module = project / "acme_probe.py"
    module.write_text(module.read_text().replace('return {"ok": True}', 'return {"ok": False}'))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 1 and "1 failed, 4 passed" in out.stdout, out.stdout


def test_the_generated_worker_serves_on_the_bus(project, daebus, redis_url):
    config = read_worker("acme-probe", project)
    assert config.app == "/usr/lib/acme-probe/acme_probe.py" and config.service == "acme-probe"
    # As its README says: run the file, call the service by the project's name.
    worker = ManagedProcess([sys.executable, "-m", "daebus.cli", "run", str(project / "acme_probe.py")],
                            child_env(redis_url), name="generated worker")
    try:
        worker.wait_ready()
        out = daebus("call", "acme-probe", "echo", '{"text": "hi"}')
        assert (out.returncode, json.loads(out.stdout)) == (Exit.OK, {"text": "hi"})
        out = daebus("call", "acme-probe", "echo", "{}")
        assert out.returncode == Exit.REMOTE_ERROR
        assert out.stderr == "daebus: acme-probe.echo: bad_request: 'text' must be a string\n"
        listed = json.loads(daebus("services", "--json").stdout)
        [entry] = [s for s in listed if s["name"] == "acme-probe"]
        assert entry["actions"] == ["echo", "status"] and entry["channels"] == ["acme-probe.commands"]
        assert daebus("publish", "acme-probe.commands", '{"do": "reset"}').stdout == \
            "acme-probe.commands: 1 receiver\n"
    finally:
        worker.close()


@pytest.mark.parametrize("name", ["Acme", "1probe", "a", "acme_probe", "acme--probe", "acme-",
                                  "../acme", "acme probe", "json", "daebus", "class"])
def test_bad_names_are_refused_and_nothing_is_written(daebus, tmp_path, name):
    out = daebus("new", "worker", name, "--dir", str(tmp_path / "out"))
    assert out.returncode == Exit.USAGE
    assert out.stderr.startswith(f"daebus: invalid worker name {name!r}: ") and out.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_an_existing_folder_is_left_alone(daebus, tmp_path):
    (tmp_path / "acme-probe").mkdir()
    (tmp_path / "acme-probe" / "mine.py").write_text("keep me")
    out = daebus("new", "worker", "acme-probe", "--dir", str(tmp_path / "acme-probe"))
    assert out.returncode == Exit.FAILURE
    assert "already exists and is not empty" in out.stderr
    assert [p.name for p in (tmp_path / "acme-probe").iterdir()] == ["mine.py"]
    assert (tmp_path / "acme-probe" / "mine.py").read_text() == "keep me"


def test_a_bad_maintainer_is_a_usage_error(daebus, tmp_path):
    out = daebus("new", "worker", "acme-probe", "--dir", str(tmp_path / "p"), "--maintainer", "nobody")
    assert out.returncode == Exit.USAGE and "expected 'Full Name <email@example.org>'" in out.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_generated_package_builds_and_lintian_is_clean(project):
    missing = [pkg for tool, pkg in TOOLS.items() if shutil.which(tool, path=CLEAN_PATH) is None]
    if missing:
        pytest.fail(f"install {' '.join(missing)} (./dev test does) to build the worker's package")
    # A clean environment, as a vendor's build machine: no venv python first on PATH.
    env = {"PATH": CLEAN_PATH, "HOME": str(project.parent), "LC_ALL": "C.UTF-8"}
    built = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-ui"], cwd=project, env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    deb = project.parent / "acme-probe_0.1.0_all.deb"
    files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ("./usr/lib/acme-probe/acme_probe.py", "./etc/daebus/workers/acme-probe.toml",
                 "./lib/systemd/system/daebus.target.d/acme-probe.conf"):
        assert path in files, files
    assert " -> " not in files  # no links into the daebus package
    conffiles = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True, text=True,
                               check=True).stdout.split()
    assert conffiles == ["/etc/daebus/workers/acme-probe.toml"]
    [changes] = project.parent.glob("acme-probe_0.1.0_*.changes")
    lint = subprocess.run(["lintian", "--fail-on", "error,warning", "--display-info", str(changes)],
                          env=env, capture_output=True, text=True, timeout=400)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    tags = [line for line in lint.stdout.splitlines() if line[:2] in ("E:", "W:", "I:")]
    assert not tags, tags
