//! `include/utp.h` must be exactly what cbindgen generates from the crate.
//! Regenerate with `UTP_BLESS=1 cargo test -p utp-ffi --test header`.

#[test]
fn checked_in_header_matches_the_code() {
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = format!("{crate_dir}/include/utp.h");
    if std::env::var_os("UTP_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "include/utp.h is out of date: run `UTP_BLESS=1 cargo test -p utp-ffi --test header` and commit it"
    );
}
