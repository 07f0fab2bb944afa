"""The WSGI entry point gunicorn loads: ``gunicorn ... gateway.wsgi:app``.

The settings come from the daebus config files (``DAEBUS_CONFIG`` names
another main file), exactly as :mod:`gateway.gunicorn_conf` reads them.
Example::

    gunicorn -c python:gateway.gunicorn_conf gateway.wsgi:app
"""

from gateway import create_app

app = create_app()
