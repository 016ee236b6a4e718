// Differential test vectors from the providers' npm libraries, appended to the file
// tests/vectors/generate.py wrote (same format, see there). Where a library can verify
// but not sign (Paddle, Linear, Square), the request is signed with the provider's
// documented algorithm and the library's verify function gives the verdict.
//
// Usage: node generate-node.mjs OUT.json   (run by scripts/sdk-vectors.sh)

import { createHmac } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

import { LinearWebhooks } from "@linear/sdk";
import { sign as githubSign, verify as githubVerify } from "@octokit/webhooks-methods";
import { Paddle } from "@paddle/paddle-node-sdk";
import { WebhooksHelper } from "square";

const out = process.argv[2];
const vectors = JSON.parse(readFileSync(out, "utf8"));
const NOW = Math.floor(Date.now() / 1000);
const MIB = 1 << 20;

function bigJson(size, prefix = "") {
  const head = `{${prefix}"padding":"`;
  const tail = '"}';
  return head + "x".repeat(size - head.length - tail.length) + tail;
}

function add(provider, kase, config, headers, body, sdk, url = "") {
  vectors.push({
    provider,
    case: kase,
    config,
    headers: Object.entries(headers),
    body: Buffer.from(body).toString("base64"),
    url,
    now: NOW,
    sdk: Boolean(sdk),
  });
}

async function judged(fn) {
  try {
    return (await fn()) !== false;
  } catch {
    return false;
  }
}

async function anySecret(secrets, fn) {
  for (const s of secrets) {
    if (await judged(() => fn(s))) return true;
  }
  return false;
}

const hmacHex = (secret, text) => createHmac("sha256", secret).update(text).digest("hex");
const hmacB64 = (secret, text) => createHmac("sha256", secret).update(text).digest("base64");

function config(scheme, secrets, extra = "") {
  return `scheme = "${scheme}", secrets = [${secrets.map((s) => `"${s}"`).join(", ")}]${extra}`;
}

async function github() {
  const secrets = ["gh-differential-a", "gh-differential-b"];
  const judge = (list, headers, body) =>
    anySecret(list, (s) => githubVerify(s, body, headers["X-Hub-Signature-256"]));
  // octokit refuses to sign an empty payload; GitHub's documented algorithm then.
  const signed = async (body, secret = secrets[0]) => ({
    "X-Hub-Signature-256": body
      ? await githubSign(secret, body)
      : "sha256=" + hmacHex(secret, body),
  });
  const body = '{"action":"opened","number":1}';
  const good = await signed(body);
  const cases = [
    ["valid", secrets, good, body],
    ["tampered", secrets, good, body.replace("1", "2")],
    ["malformed", secrets, { "X-Hub-Signature-256": "sha256=xyz" }, body],
    ["missing", secrets, {}, body],
    ["rotated-secret", secrets, await signed(body, secrets[1]), body],
    ["unknown-secret", secrets.slice(0, 1), await signed(body, secrets[1]), body],
    ["empty-body", secrets, await signed(""), ""],
    ["1MiB-body", secrets, await signed(bigJson(MIB)), bigJson(MIB)],
    [
      "uppercase-hex",
      secrets,
      { "X-Hub-Signature-256": "sha256=" + good["X-Hub-Signature-256"].slice(7).toUpperCase() },
      body,
    ],
  ];
  for (const [kase, list, headers, b] of cases) {
    add("github", kase, config("github", list), headers, b, await judge(list, headers, b));
  }
}

async function paddle() {
  const secrets = ["pdl_ntfset_differential_a", "pdl_ntfset_differential_b"];
  // The client sets up the library's crypto runtime; the API key is never used.
  const client = new Paddle("pdl_sdbx_apikey_unused");
  const judge = (list, headers, body) =>
    anySecret(list, (s) =>
      client.webhooks.isSignatureValid(body, s, headers["Paddle-Signature"] ?? ""),
    );
  // Paddle's documented algorithm: h1 = hex HMAC-SHA256(secret, "{ts}:{body}").
  const signed = (body, ts = NOW, secret = secrets[0]) => ({
    "Paddle-Signature": `ts=${ts};h1=${hmacHex(secret, `${ts}:${body}`)}`,
  });
  const body = '{"event_type":"transaction.paid","data":{"id":"txn_1"}}';
  const good = signed(body);
  const h1 = good["Paddle-Signature"].split(";h1=")[1];
  const cases = [
    ["valid", secrets, good, body],
    ["tampered", secrets, good, body.replace("txn_1", "txn_2")],
    ["stale", secrets, signed(body, NOW - 600), body],
    ["future", secrets, signed(body, NOW + 600), body],
    ["malformed", secrets, { "Paddle-Signature": "ts=abc;h1=zz" }, body],
    ["missing", secrets, {}, body],
    ["rotated-secret", secrets, signed(body, NOW, secrets[1]), body],
    ["unknown-secret", secrets.slice(0, 1), signed(body, NOW, secrets[1]), body],
    ["empty-body", secrets, signed(""), ""],
    ["1MiB-body", secrets, signed(bigJson(MIB)), bigJson(MIB)],
    ["uppercase-hex", secrets, { "Paddle-Signature": `ts=${NOW};h1=${h1.toUpperCase()}` }, body],
  ];
  for (const [kase, list, headers, b] of cases) {
    add("paddle", kase, config("paddle", list), headers, b, await judge(list, headers, b));
  }
}

async function linear() {
  const secrets = ["lin_wh_differential_a", "lin_wh_differential_b"];
  const judge = (list, headers, body) =>
    anySecret(list, (s) =>
      new LinearWebhooks(s).verify(Buffer.from(body), headers["Linear-Signature"] ?? ""),
    );
  // Linear's documented algorithm: hex HMAC-SHA256(secret, body); the timestamp is the
  // body's webhookTimestamp (ms), which the library checks against a one-minute window.
  const event = (ms) => `{"action":"create","type":"Issue","webhookTimestamp":${ms}}`;
  const signed = (body, secret = secrets[0]) => ({ "Linear-Signature": hmacHex(secret, body) });
  const body = event(NOW * 1000);
  const good = signed(body);
  const big = bigJson(MIB, `"webhookTimestamp":${NOW * 1000},`);
  const cases = [
    ["valid", secrets, good, body],
    ["tampered", secrets, good, body.replace("create", "remove")],
    ["stale", secrets, signed(event((NOW - 600) * 1000)), event((NOW - 600) * 1000)],
    ["future", secrets, signed(event((NOW + 600) * 1000)), event((NOW + 600) * 1000)],
    ["malformed", secrets, { "Linear-Signature": "zz" }, body],
    ["missing", secrets, {}, body],
    ["rotated-secret", secrets, signed(body, secrets[1]), body],
    ["unknown-secret", secrets.slice(0, 1), signed(body, secrets[1]), body],
    ["empty-body", secrets, signed(""), ""],
    ["1MiB-body", secrets, signed(big), big],
    ["uppercase-hex", secrets, { "Linear-Signature": good["Linear-Signature"].toUpperCase() }, body],
  ];
  for (const [kase, list, headers, b] of cases) {
    add("linear", kase, config("linear", list), headers, b, await judge(list, headers, b));
  }
}

async function square() {
  const secrets = ["square-differential-a", "square-differential-b"];
  const url = "https://hooks.example.com/square";
  const judge = (list, headers, body, notificationUrl) =>
    anySecret(list, (s) =>
      WebhooksHelper.verifySignature({
        requestBody: body,
        signatureHeader: headers["x-square-hmacsha256-signature"] ?? "",
        signatureKey: s,
        notificationUrl,
      }),
    );
  // Square's documented algorithm: base64 HMAC-SHA256(key, notification URL + body).
  const signed = (body, secret = secrets[0], at = url) => ({
    "x-square-hmacsha256-signature": hmacB64(secret, at + body),
  });
  const body = '{"type":"payment.created","event_id":"e1"}';
  const good = signed(body);
  const cases = [
    ["valid", secrets, good, body, url],
    ["tampered", secrets, good, body.replace("e1", "e2"), url],
    ["other-url", secrets, signed(body, secrets[0], url + "2"), body, url],
    ["malformed", secrets, { "x-square-hmacsha256-signature": "###" }, body, url],
    ["missing", secrets, {}, body, url],
    ["rotated-secret", secrets, signed(body, secrets[1]), body, url],
    ["unknown-secret", secrets.slice(0, 1), signed(body, secrets[1]), body, url],
    ["empty-body", secrets, signed(""), "", url],
    ["1MiB-body", secrets, signed(bigJson(MIB)), bigJson(MIB), url],
    [
      "unpadded-base64",
      secrets,
      { "x-square-hmacsha256-signature": good["x-square-hmacsha256-signature"].replace(/=+$/, "") },
      body,
      url,
    ],
  ];
  for (const [kase, list, headers, b, u] of cases) {
    const cfg = config("square", list, `, public_url = "${url}"`);
    add("square", kase, cfg, headers, b, await judge(list, headers, b, u), u);
  }
}

await github();
await paddle();
await linear();
await square();
writeFileSync(out, JSON.stringify(vectors));
console.log(`${vectors.length} vectors`);
