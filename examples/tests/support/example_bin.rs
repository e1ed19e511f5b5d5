//! Where `cargo test -p examples` put an example's binary, for the tests that start
//! one: `examples/` of the profile's directory, beside the test's own `deps/`.

use std::path::{Path, PathBuf};

/// The path of example `name`'s binary; panics, saying what to run, if it is missing
/// or older than its source.
pub fn example(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("the test's own path");
    let exe = me
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .join("examples")
        .join(name);
    let built = exe
        .metadata()
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; `cargo test -p examples` builds it (`cargo build --example {name}` too)",
                exe.display()
            )
        });
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("{name}.rs"));
    assert!(
        source
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|changed| changed <= built),
        "{} is older than its source: `cargo build --example {name}`",
        exe.display()
    );
    exe
}
