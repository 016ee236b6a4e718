//! Commit metadata is written by whichever member committed last — another version of
//! hookbridge, another tool, or nothing sane at all. Whatever the bytes, decoding never
//! panics, and a map it accepts answers every question about its offsets without
//! panicking and never calls an offset below its base finished.
#![no_main]

use arbitrary::Arbitrary;
use hookbridge::egress::finished;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    metadata: &'a [u8],
    committed: i64,
    probes: Vec<(i64, i32)>,
}

fuzz_target!(|input: Input<'_>| {
    let Some(map) = finished::decode(input.metadata, input.committed) else {
        return;
    };
    assert!(map.end() >= input.committed, "a map ends below its base");
    for (offset, epoch) in input.probes {
        let finished = map.is_finished(offset);
        assert!(
            !(finished && offset < input.committed),
            "an offset below the committed one read as finished above it"
        );
        let _ = map.skips(offset, epoch);
        let _ = map.rewritten(epoch);
    }
});
