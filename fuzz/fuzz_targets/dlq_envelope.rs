//! A dead-letter topic is read by `dlq list/show`, redrive and the console, and anyone
//! may write to it: header names and values of any bytes, repeated, in any case. Reading
//! an envelope never panics, and the original headers never include a dead-letter one.
#![no_main]

use bytes::Bytes;
use hookbridge::kafka::envelope::{self, DeadLetterEnvelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: Vec<(String, Vec<u8>)>| {
    let headers: Vec<(String, Bytes)> = raw.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect();
    let _ = DeadLetterEnvelope::read(&headers);
    let _ = envelope::connector(&headers);
    for (name, _) in &headers {
        // What redrive and `dlq show` strip (`Record::retain_headers` by this test).
        assert_eq!(
            envelope::is_dead_letter_header(name),
            name.to_ascii_lowercase().starts_with("hookbridge-dlq-"),
            "told wrong whether {name} is a dead-letter header"
        );
    }
    for (name, _) in envelope::original_headers(&headers) {
        assert!(
            !name.to_ascii_lowercase().starts_with("hookbridge-dlq-"),
            "a dead-letter header passed for an original one: {name}"
        );
    }
});
