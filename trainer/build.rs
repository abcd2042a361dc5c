//! Embed libtorch's library folder as an rpath so `cxr-train` runs without
//! LD_LIBRARY_PATH (torch-sys exports it as DEP_TCH_LIBTORCH_LIB via `links = "tch"`).
fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
