"""The kiosk demo: three workers and a kiosk page served by the gateway.

``python -m kiosk_demo`` starts everything on a developer's machine (see
``docs/kiosk_demo.md``); on the appliance the workers run as
``daebus-worker@`` instances. The workers are plain scripts and import
nothing from this package.
"""
