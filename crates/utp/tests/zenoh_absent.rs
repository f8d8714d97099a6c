//! Without the cargo feature `zenoh`, a zenoh:// URL still parses and says
//! how to get the transport, instead of "unknown scheme".

#![cfg(not(feature = "zenoh"))]

#[test]
fn a_zenoh_url_names_the_missing_feature() {
    for result in [
        utp::connect("zenoh://site1/calc").err(),
        utp::listen("zenoh://calc").err(),
    ] {
        let err = result
            .expect("zenoh:// must fail without the feature")
            .to_string();
        assert!(err.contains("feature `zenoh`"), "{err}");
    }
}
