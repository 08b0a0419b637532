//! Fails early, with the fix, when the configured nginx tree is missing.
fn main() {
    println!("cargo:rerun-if-env-changed=NGINX_BUILD_DIR");
    println!("cargo:rerun-if-env-changed=NGINX_SOURCE_DIR");
    if std::env::var_os("NGINX_SOURCE_DIR").is_some() {
        return;
    }
    let dir = std::env::var("NGINX_BUILD_DIR").unwrap_or_default();
    let cfg = std::path::Path::new(&dir).join("ngx_auto_config.h");
    if dir.is_empty() || !cfg.exists() {
        panic!(
            "no configured nginx tree at NGINX_BUILD_DIR={dir:?} (missing ngx_auto_config.h).\n\
             Run scripts/setup.sh first: it installs nginx-dev and configures Debian's nginx \
             sources under target/nginx-src."
        );
    }
}
