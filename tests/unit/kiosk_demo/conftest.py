"""The demo workers are plain scripts in kiosk_demo/; import them as modules."""

import importlib

import pytest


@pytest.fixture
def load_worker():
    """A fresh import of ``kiosk_demo/<name>.py``: module state such as the
    simulated room starts anew in every test."""

    def load(name):
        module = importlib.import_module(f"kiosk_demo.{name}")
        return importlib.reload(module)

    return load
