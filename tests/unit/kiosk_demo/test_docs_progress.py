"""The documented ``on_progress`` callbacks accept what a caller passes
them: one argument, the progress payload."""

import re
from pathlib import Path

import pytest

from daebus.testing import TestClient

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("path", ["docs/kiosk_demo.md", "kiosk_demo/system.py"])
def test_documented_progress_callbacks_take_the_progress_payload(path, load_worker, capsys):
    source = (ROOT / path).read_text()
    [expression] = re.findall(r"on_progress=(lambda .*?)\)$", source, re.M)
    callback = eval(expression)  # noqa: S307 - the documentation's own code
    system = load_worker("system")
    with TestClient(system.app) as client:
        reply = client.request("run_diagnostics", {"pause": 0})
    for update in reply.progress:
        callback(update)
    printed = capsys.readouterr().out.splitlines()
    assert printed and printed[-1].startswith("100% ")
