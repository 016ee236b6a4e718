// AWS SNS verdicts from sns-validator (npm), filled into the "aws-sns" vectors that
// tests/vectors/keyed.py wrote. sns-validator fetches the signing certificate with
// https.get; here that one function answers with the certificate keyed.py made for the
// vectors' SigningCertURL (and 404 for any other URL), so the library's own checks —
// required keys, URL rules, string to sign, signature — give the verdict unchanged.
//
// Usage: node keyed-node.mjs OUT.json   (run by scripts/sdk-vectors.sh … keyed)

import { EventEmitter } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const MessageValidator = require("sns-validator");

const out = process.argv[2];
const all = JSON.parse(readFileSync(out, "utf8"));
const sns = all["aws-sns"];

https.get = (url, callback) => {
  const res = new EventEmitter();
  res.statusCode = String(url) === sns.cert_url ? 200 : 404;
  const req = new EventEmitter();
  setImmediate(() => {
    callback(res);
    if (res.statusCode === 200) res.emit("data", Buffer.from(sns.cert));
    res.emit("end");
  });
  return req;
};

const validator = new MessageValidator();
for (const v of sns.vectors) {
  v.sdk = await new Promise((resolve) => {
    try {
      validator.validate(v.body, (err) => resolve(!err));
    } catch {
      resolve(false);
    }
  });
}
writeFileSync(out, JSON.stringify(all, null, 1));
