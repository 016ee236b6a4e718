"""Reads requests a sink sent (JSON lines: {"headers": {...}, "body": base64}) and parses
each with the CloudEvents Python SDK, an implementation independent of hookbridge's.
Prints one JSON line per request: the event's attributes and data, or {"error": ...}
when the SDK refuses it."""

import base64
import json
import sys

from cloudevents.http import from_http

for line in sys.stdin:
    request = json.loads(line)
    body = base64.b64decode(request["body"])
    try:
        event = from_http(request["headers"], body)
        attributes = {k: str(v) for k, v in event.get_attributes().items()}
        data = event.data
        if isinstance(data, (bytes, bytearray)):
            data = {"bytes_base64": base64.b64encode(data).decode()}
        print(json.dumps({"attributes": attributes, "data": data}))
    except Exception as e:  # the SDK's refusal is the test's finding
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
