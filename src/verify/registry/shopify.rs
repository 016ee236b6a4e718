//! Shopify webhooks: `X-Shopify-Hmac-Sha256: base64(HMAC-SHA256(client_secret, body))`.
//!
//! Rule (Shopify, "Deliver webhooks through HTTPS", step "Validate the origin of each
//! webhook", <https://shopify.dev/docs/apps/build/webhooks/subscribe/https>):
//! the base64-encoded HMAC-SHA256 of the raw body keyed with the app's client secret (or
//! the store's webhook signing secret for webhooks created in the admin), compared in
//! constant time. Shopify signs no timestamp, so there is no replay window to check.

use crate::verify::crypto::Algorithm;

use crate::verify::recipe::{Encoding, Recipe, SignatureAt};

/// The signature header.
pub const HEADER: &str = "X-Shopify-Hmac-Sha256";
/// The same header as Shopify's newer deliveries name it, without the `X-` prefix.
pub const UNPREFIXED_HEADER: &str = "shopify-hmac-sha256";

/// An `orders/create` payload (trimmed).
pub const SAMPLE_BODY: &[u8] = br##"{"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508","email":"jon@example.com","created_at":"2024-06-01T12:00:00-04:00","currency":"USD","total_price":"403.00","financial_status":"paid","name":"#9999","line_items":[{"id":866550311766439020,"title":"Aviator sunglasses","quantity":1,"price":"89.99","sku":"SKU2006-001"}]}"##;

/// `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(secret, body)>`, or un-prefixed.
pub const RECIPE: Recipe = Recipe {
    name: "shopify",
    signatures: &[
        SignatureAt::sha256(HEADER, ""),
        SignatureAt {
            header: UNPREFIXED_HEADER,
            prefix: "",
            algorithm: Algorithm::Sha256,
            sent: false,
        },
    ],
    encoding: Encoding::Base64,
    sample_body: SAMPLE_BODY,
    ..Recipe::DEFAULTS
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::generic::GenericHmac;
    use crate::verify::testutil::{headers, keys, req, with_header, without_header};
    use crate::verify::VerifyError;

    fn shopify(secrets: &[&str]) -> GenericHmac {
        RECIPE.build(keys(secrets), None, &[]).unwrap()
    }

    #[test]
    fn unprefixed_header_is_accepted() {
        let v = shopify(&["s"]);
        let signed = v.sign(b"{}", "", 0).unwrap();
        let value = signed.get(HEADER).unwrap().to_str().unwrap();
        let h = headers(&[(UNPREFIXED_HEADER, value)]);
        assert_eq!(v.verify(&req(&h, b"{}", 0)), Ok(()));
        assert_eq!(v.verify(&req(&h, b"{ }", 0)), Err(VerifyError::Mismatch));
    }

    #[test]
    fn independently_computed_known_answer() {
        // Shopify publishes no test vector. Computed with Python:
        // base64.b64encode(hmac.new(b"hush", b'{"id":1}', sha256).digest())
        let h = headers(&[(HEADER, "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY=")]);
        let v = shopify(&["hush"]);
        assert_eq!(v.verify(&req(&h, br#"{"id":1}"#, 0)), Ok(()));
        assert_eq!(v.sign(br#"{"id":1}"#, "", 0).unwrap(), h);
    }

    #[test]
    fn rotated_second_secret_is_valid() {
        let h = shopify(&["new"]).sign(b"{}", "", 0).unwrap();
        assert_eq!(shopify(&["old", "new"]).verify(&req(&h, b"{}", 0)), Ok(()));
    }

    #[test]
    fn rejects_tampering_wrong_secret_missing_and_malformed() {
        let v = shopify(&["s"]);
        let h = v.sign(b"{\"a\":1}", "", 0).unwrap();
        assert_eq!(
            v.verify(&req(&h, b"{\"a\":2}", 0)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            shopify(&["x"]).verify(&req(&h, b"{\"a\":1}", 0)),
            Err(VerifyError::Mismatch)
        );
        let other = v.sign(b"other", "", 0).unwrap();
        assert_eq!(
            v.verify(&req(&other, b"{\"a\":1}", 0)),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(&req(&without_header(&h, HEADER), b"", 0)),
            Err(VerifyError::MissingHeader(HEADER))
        );
        for bad in ["", "%%%", "YWJj", &"A".repeat(200)] {
            let h = with_header(&h, HEADER, bad);
            assert_eq!(
                v.verify(&req(&h, b"", 0)),
                Err(VerifyError::MalformedHeader(HEADER)),
                "{bad}"
            );
        }
    }
}
