//! Records the cargo profile and optimisation level for `/info`.
fn main() {
    for (var, name) in [
        ("PROFILE", "SERVERS_BUILD_PROFILE"),
        ("OPT_LEVEL", "SERVERS_OPT_LEVEL"),
    ] {
        let value = std::env::var(var).unwrap_or_else(|_| "unknown".into());
        println!("cargo:rustc-env={name}={value}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
