"""A worker whose actions and listener declare JSON Schemas.

    contracts.py [service-name]
"""

import sys

from daebus import Daebus, broadcast, request

app = Daebus(__name__)

ALARM = {
    "type": "object",
    "required": ["hour"],
    "properties": {
        "hour": {"type": "integer", "minimum": 0, "maximum": 23},
        "days": {"type": "array", "items": {"enum": ["mon", "tue", "wed", "thu", "fri"]}},
    },
    "additionalProperties": False,
}


@app.action("set_alarm", schema=ALARM, reply_schema={"type": "object", "required": ["hour"]})
def set_alarm():
    return {"hour": request.payload["hour"]}


@app.action("secret", schema={"type": "object"})
def secret():
    return "not exposed"


@app.listen("alarms", schema={"type": "object", "required": ["id"]})
def on_alarm(payload):
    broadcast.send("alarms.seen", {"id": payload["id"]})


if __name__ == "__main__":
    app.run(service=sys.argv[1] if len(sys.argv) > 1 else "contracts")
