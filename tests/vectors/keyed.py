"""Differential vectors for the schemes whose keys are fetched from the provider.

Google Pub/Sub push: tokens judged by google-auth against a key server on loopback that
serves the same document the Rust test then serves to hookbridge. AWS SNS: messages
signed with a certificate made here, judged by sns-validator (keyed-node.mjs, which
fills in each "sdk").

Writes {"google-pubsub": {"jwks", "audience", "email", "now", "vectors": [{"case",
"authorization", "sdk"}]}, "aws-sns": {"cert", "cert_url", "topic", "vectors":
[{"case", "body", "sdk"}]}} to argv[1].
"""

import base64
import hashlib
import hmac
import http.server
import json
import sys
import threading
import time

import datetime

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
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


SNS_TOPIC = "arn:aws:sns:us-east-1:123456789012:orders"
SNS_CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"
SNS_NOTIFICATION_KEYS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
SNS_CONTROL_KEYS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]


def certificate(key):
    """A self-signed certificate for `key`, as PEM (SNS's are signed by a public CA;
    nobody checks that chain: the HTTPS host it is fetched from vouches for it)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sns():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def signed(m, version="1", signer=key, keys=None, digest=None):
        m = dict(m)
        m["SignatureVersion"] = version
        m.setdefault("SigningCertURL", SNS_CERT_URL)
        if keys is None:
            keys = SNS_NOTIFICATION_KEYS if m["Type"] == "Notification" else SNS_CONTROL_KEYS
        text = "".join("%s\n%s\n" % (k, m[k]) for k in keys if k in m)
        if digest is None:
            digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        sig = signer.sign(text.encode(), padding.PKCS1v15(), digest)
        m["Signature"] = base64.b64encode(sig).decode()
        return m

    notification = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": SNS_TOPIC,
        "Subject": "Order placed",
        "Message": '{"order":"o-1","total":12.5}',
        "Timestamp": "2026-12-04T12:00:00.000Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=" + SNS_TOPIC + ":c9135db0",
    }
    subscribe_url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + SNS_TOPIC + "&Token=2336412f37fb687f5d51e6e2425"

    def control(kind):
        return {
            "Type": kind,
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37fb687f5d51e6e2425",
            "TopicArn": SNS_TOPIC,
            "Message": "You have chosen to subscribe to the topic " + SNS_TOPIC,
            "SubscribeURL": subscribe_url,
            "Timestamp": "2026-12-04T12:00:00.000Z",
        }

    def changed(m, **changes):
        m = dict(m)
        for k, v in changes.items():
            if v is None:
                m.pop(k, None)
            else:
                m[k] = v
        return m

    no_subject = changed(notification, Subject=None)
    cases = {
        "notification-v1": signed(notification),
        "notification-v2": signed(notification, "2"),
        "no-subject-v1": signed(no_subject),
        "no-subject-v2": signed(no_subject, "2"),
        "unicode-message": signed(changed(notification, Message="Größe: 5 \u2603\nzweite Zeile"), "2"),
        "subscription-v1": signed(control("SubscriptionConfirmation")),
        "subscription-v2": signed(control("SubscriptionConfirmation"), "2"),
        "unsubscribe-v1": signed(control("UnsubscribeConfirmation")),
        "tampered-message": changed(signed(notification), Message='{"order":"o-1","total":0}'),
        "tampered-subject": changed(signed(notification, "2"), Subject="Refund"),
        "added-subject": changed(signed(no_subject), Subject="Refund"),
        "removed-subject": changed(signed(notification), Subject=None),
        "tampered-topic": changed(signed(notification), TopicArn=SNS_TOPIC + "-other"),
        "other-key": signed(notification, signer=stranger),
        "v1-signed-sha256": signed(notification, "1", digest=hashes.SHA256()),
        "v2-signed-sha1": signed(notification, "2", digest=hashes.SHA1()),
        "version-3": signed(notification, "3", digest=hashes.SHA256()),
        "cert-over-http": signed(changed(notification, SigningCertURL=SNS_CERT_URL.replace("https", "http"))),
        "cert-on-other-host": signed(changed(notification, SigningCertURL="https://sns.us-east-1.amazonaws.com.evil.example/c.pem")),
        "cert-not-pem": signed(changed(notification, SigningCertURL=SNS_CERT_URL[:-4] + ".crt")),
        "no-signature": changed(signed(notification), Signature=None),
        "subscription-without-token": signed(changed(control("SubscriptionConfirmation"), Token=None)),
        "subscribe-url-in-notification": signed(changed(notification, SubscribeURL=subscribe_url)),
        "subscribe-url-changed": changed(signed(control("SubscriptionConfirmation")), SubscribeURL=subscribe_url + "0"),
        "other-topic": signed(changed(notification, TopicArn="arn:aws:sns:us-east-1:123456789012:other")),
        "signature-garbage": changed(signed(notification), Signature="AAAA"),
    }
    vectors = [{"case": case, "body": json.dumps(m), "sdk": None} for case, m in cases.items()]
    vectors.append({"case": "not-json", "body": "Type=Notification", "sdk": None})
    return {"cert": certificate(key), "cert_url": SNS_CERT_URL, "topic": SNS_TOPIC, "vectors": vectors}


def main():
    out = {"google-pubsub": pubsub(), "aws-sns": sns()}
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
