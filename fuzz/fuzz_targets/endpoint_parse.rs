//! Endpoint URL parsing (`utp::endpoint`) on arbitrary text: never a panic,
//! and an accepted URL prints as a URL that parses back to the same endpoint.
#![no_main]

use libfuzzer_sys::fuzz_target;
use utp::endpoint::{Endpoint, parse_size};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_size(text);
    match Endpoint::parse(text) {
        Ok(endpoint) => {
            let printed = endpoint.to_string();
            let again = Endpoint::parse(&printed)
                .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
            assert_eq!(again, endpoint, "{text:?} printed as {printed:?}");
            assert!(!endpoint.address.scheme().is_empty());
            for (key, _) in &endpoint.params {
                assert!(endpoint.param(key).is_some());
                let _ = endpoint.param_number(key);
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains("accepted forms"), "{message}");
        }
    }
});
