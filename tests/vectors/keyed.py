"""Differential vectors for the schemes whose keys are fetched from the provider
(Google Pub/Sub push), judged by the provider's own library against a key server on
loopback that serves the same document the Rust test then serves to hookbridge.

Writes {"google-pubsub": {"jwks", "audience", "email", "now", "vectors": [{"case",
"authorization", "sdk"}]}} to argv[1].
"""

import base64
import hashlib
import hmac
import http.server
import json
import sys
import threading
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.transport import requests as google_requests
from google.oauth2 import id_token

NOW = int(time.time())
AUDIENCE = "https://hooks.example.com/pubsub"
EMAIL = "push@project-id.iam.gserviceaccount.com"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def serve(document):
    """A loopback server answering every GET with `document`; returns its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = document.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return "http://127.0.0.1:%d/oauth2/v3/certs" % server.server_address[1]


def judged(certs_url, token):
    """Google's verdict, as its Pub/Sub push documentation checks a token:
    id_token.verify_token (signature, audience, times), the issuer check of
    verify_oauth2_token, then the service account's `email` and `email_verified`."""
    try:
        claims = id_token.verify_token(
            token, google_requests.Request(), audience=AUDIENCE, certs_url=certs_url
        )
    except Exception:
        return False
    if claims.get("iss") not in ["accounts.google.com", "https://accounts.google.com"]:
        return False
    return claims.get("email") == EMAIL and claims.get("email_verified") is True


def pubsub():
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = []
    for kid, key in (("new", new), ("old", old)):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
        keys.append(jwk)
    document = json.dumps({"keys": keys})
    certs_url = serve(document)

    def claims(**changes):
        c = {
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "azp": "112233445566778899000",
            "sub": "112233445566778899000",
            "email": EMAIL,
            "email_verified": True,
            "iat": NOW - 5,
            "exp": NOW + 3595,
        }
        for k, v in changes.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def signed(c, key=new, kid="new"):
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return jwt.encode(c, pem, algorithm="RS256", headers={"kid": kid})

    def unsigned(header, c, mac_key=None):
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(c).encode())
        if mac_key is None:
            return signing_input + "."
        sig = hmac.new(mac_key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + b64url(sig)

    good = signed(claims())
    head, payload, sig = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered["email"] = "attacker@evil.iam.gserviceaccount.com"
    public_pem = new.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cases = {
        "valid": good,
        "rotated-key": signed(claims(), old, "old"),
        "issuer-without-scheme": signed(claims(iss="accounts.google.com")),
        "audience-in-list": signed(claims(aud=["https://other.example.com", AUDIENCE])),
        "wrong-audience": signed(claims(aud="https://other.example.com/pubsub")),
        "no-audience": signed(claims(aud=None)),
        "wrong-issuer": signed(claims(iss="https://evil.example.com")),
        "expired": signed(claims(iat=NOW - 7200, exp=NOW - 600)),
        "issued-in-future": signed(claims(iat=NOW + 600, exp=NOW + 4200)),
        "not-before-future": signed(claims(nbf=NOW + 600)),
        "unknown-kid": signed(claims(), stranger, "stranger"),
        "other-key-same-kid": signed(claims(), stranger, "new"),
        "old-key-new-kid": signed(claims(), old, "new"),
        "tampered-claims": head + "." + b64url(json.dumps(tampered).encode()) + "." + sig,
        "truncated-signature": good[:-10],
        "alg-none": unsigned({"alg": "none", "kid": "new"}, claims()),
        "alg-hs256-with-public-key": unsigned({"alg": "HS256", "kid": "new"}, claims(), public_pem),
        "other-email": signed(claims(email="someone@project-id.iam.gserviceaccount.com")),
        "email-unverified": signed(claims(email_verified=False)),
        "no-email": signed(claims(email=None, email_verified=None)),
        "garbage": "not.a.jwt",
        "no-exp": signed(claims(exp=None)),
    }
    vectors = [
        {"case": case, "authorization": "Bearer " + token, "sdk": judged(certs_url, token)}
        for case, token in cases.items()
    ]
    return {
        "jwks": document,
        "audience": AUDIENCE,
        "email": EMAIL,
        "now": NOW,
        "vectors": vectors,
    }


def main():
    out = {"google-pubsub": pubsub()}
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
