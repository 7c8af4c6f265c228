//! Genesis files as an operator or a peer hands them over: parsing and validation never
//! panic, and a valid genesis has a network id.
#![no_main]
use libfuzzer_sys::fuzz_target;
use web4fed_core::genesis::Genesis;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(g) = toml::from_str::<Genesis>(text) {
        if g.validate().is_ok() {
            let _ = g.network_id();
            let _ = g.pcr_policy();
            let _ = g.attest_roots_der();
        }
    }
});
