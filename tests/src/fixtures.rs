//! Where the compiled guest fixtures are.
//!
//! `build.rs` builds the guest workspace and exports its output directory as
//! `AEGIS_FIXTURE_DIR`; `AEGIS_FIXTURE_DIR` in the environment at run time overrides it.

use std::path::PathBuf;

/// The directory holding the fixture `.wasm` files.
pub fn fixture_dir() -> PathBuf {
    match std::env::var_os("AEGIS_FIXTURE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("AEGIS_FIXTURE_DIR")),
    }
}

/// The path of the compiled fixture `name` (`-` and `_` are interchangeable).
///
/// # Panics
/// When the fixture has not been built.
pub fn fixture(name: &str) -> PathBuf {
    let dir = fixture_dir();
    let candidates = [name.replace('-', "_"), name.replace('_', "-")];
    for candidate in &candidates {
        let path = dir.join(format!("{candidate}.wasm"));
        if path.is_file() {
            return path;
        }
    }
    let present: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".wasm"))
                .collect()
        })
        .unwrap_or_default();
    panic!(
        "fixture `{name}` is missing: no {}.wasm in {} (present: {present:?}). Build the guest \
         workspace: `make guests`, or `cd guest-workflows && cargo build --release --target \
         wasm32-wasip2 --workspace`",
        candidates[0],
        dir.display()
    );
}
