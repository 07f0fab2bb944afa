"""The TCP ports daebus's servers listen on by default, chosen together so
that on one box they never clash: the appliance's gateway, and a service's
own endpoints (``DaebusHttp``) beside it."""

GATEWAY_PORT = 8080  # the gateway's [gateway] bind, and so the kiosk's page
HTTP_PORT = 8081     # DaebusHttp(port=...) when a service names none
