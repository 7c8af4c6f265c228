//! Events, their bodies (every kind, evidence included) and their signatures: decoding never
//! panics, and whatever decodes re-encodes to the same bytes (the encoding is canonical).
#![no_main]
use libfuzzer_sys::fuzz_target;
use web4fed_core::event::{Body, Event, Kind};

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = Event::decode(data) {
        assert_eq!(ev.bytes(), data, "event encoding is not canonical");
        let _ = ev.verify(&[0; 32]);
        let _ = ev.id();
    }
    // Bodies alone, under every kind byte.
    if let Some((k, rest)) = data.split_first() {
        let kind = match k % 6 {
            0 => Kind::Register,
            1 => Kind::Thought,
            2 => Kind::Validate,
            3 => Kind::Transfer,
            4 => Kind::Evidence,
            _ => Kind::Vouch,
        };
        if let Ok(b) = Body::decode(kind, rest) {
            assert_eq!(b.encode(), rest, "body encoding is not canonical");
        }
    }
});
