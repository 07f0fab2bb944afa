"""The README's "Testing handlers" example passes against the Quick start service."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end != -1 else len(text)]


def test_the_testing_example_tests_the_quick_start_service(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    service = python_blocks(section(readme, "## Quick start"))[0]
    (tmp_path / "my_service.py").write_text(service)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_service", raising=False)
    namespace: dict = {}
    exec(python_blocks(section(readme, "### Testing handlers"))[0], namespace)  # noqa: S102
    namespace["test_status"]()
