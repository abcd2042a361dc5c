//! Records the cargo profile that built the crate (`CXR_BUILD_PROFILE`), so that
//! `bench` and `bench-model` can say whether they measure the optimised `board`
//! build or the quick-to-build `release` one (Cargo.toml, "Profiles").

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<package>-<hash>/out.
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let profile = std::path::Path::new(&out)
        .ancestors()
        .nth(3)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("unknown")
        .to_string();
    println!("cargo:rustc-env=CXR_BUILD_PROFILE={profile}");
}
