//! `cargo xtask dist`: the release build of everything that ships — `actix-api`,
//! `webtransport-server` and `bot` binaries, and the web client — gathered in one directory.
//! The container images build with exactly this command, and CI runs it too, so a broken build
//! step fails here before it fails in an image build.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::{cargo, status, target_dir, web};

/// The packages that ship.
pub const PACKAGES: [&str; 3] = ["actix-api", "webtransport-server", "bot"];

/// The binaries they ship (`internal-tls` issues NATS's certificate in docker-compose.yaml).
pub const BINARIES: [&str; 4] = ["actix-api", "webtransport-server", "internal-tls", "bot"];

/// Builds into `out` (`bin/` and `web/`); returns it.
pub fn build(out: &Path) -> Result<PathBuf> {
    crate::setup::ensure_bot_build()?;
    let web_root = web::build()?;
    let mut build = cargo();
    build.args(["build", "--release", "--locked"]);
    for package in PACKAGES {
        build.args(["-p", package]);
    }
    status(&mut build)?;
    let bin = out.join("bin");
    fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    for binary in BINARIES {
        let from = target_dir().join("release").join(binary);
        fs::copy(&from, bin.join(binary)).with_context(|| format!("copying {}", from.display()))?;
    }
    let web = out.join("web");
    if web.exists() {
        fs::remove_dir_all(&web).with_context(|| format!("clearing {}", web.display()))?;
    }
    fs::create_dir_all(&web)?;
    web::copy_files(&web_root, &web)?;
    println!("xtask: release build in {} (bin/: {}; web/)", out.display(), BINARIES.join(", "));
    Ok(out.to_owned())
}
