#!/usr/bin/env python3
"""The demo destination: prints every webhook hookbridge delivers and checks its
Standard Webhooks signature (stdlib only). Usage: demo_receiver.py PORT WHSEC [LOGFILE]"""
import base64
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
KEY = base64.b64decode(sys.argv[2].removeprefix("whsec_"))
LOG = open(sys.argv[3], "a", buffering=1) if len(sys.argv) > 3 else sys.stdout


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        wid, ts = self.headers.get("webhook-id", ""), self.headers.get("webhook-timestamp", "")
        mac = hmac.new(KEY, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        valid = any(hmac.compare_digest(expected, s) for s in self.headers.get("webhook-signature", "").split())
        print(json.dumps({"webhook-id": wid, "signature_valid": valid,
                          "body": body.decode("utf-8", "replace")[:200]}), file=LOG)
        self.send_response(200 if valid else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Hook).serve_forever()
