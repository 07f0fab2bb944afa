"""./dev: each command installs what it needs, and no more."""

import os
import subprocess

from support import ROOT


def test_dev_run_installs_only_what_the_demo_needs(tmp_path):
    venv = tmp_path / "venv"
    env = {**os.environ, "DAEBUS_VENV": str(venv)}
    result = subprocess.run([str(ROOT / "dev"), "run", "--help"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "Run the Daebus kiosk demo" in result.stdout
    found = subprocess.run(
        [str(venv / "bin/python"), "-c", "import importlib.util as u, sys; "
         "print(' '.join(m for m in sys.argv[1:] if u.find_spec(m)))",
         "flask", "gunicorn", "fakeredis", "daebus", "pytest", "playwright", "openapi_spec_validator"],
        capture_output=True, text=True, timeout=60).stdout.split()
    assert found == ["flask", "gunicorn", "fakeredis", "daebus"]
