//! Endpoint URL parsing (`utp::endpoint`) on arbitrary text: never a panic;
//! an accepted URL prints as a URL that parses back to the same endpoint; a
//! refused one gets one error naming the URL, with the list of accepted forms
//! exactly when the scheme is missing or unknown.
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
            assert!(message.starts_with("invalid endpoint URL "), "{message}");
            let scheme_problem =
                message.contains("unknown scheme") || message.contains("missing scheme");
            assert_eq!(
                message.contains("accepted forms"),
                scheme_problem,
                "the forms are listed only for a scheme problem: {message}"
            );
        }
    }
});
