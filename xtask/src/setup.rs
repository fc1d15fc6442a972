//! Installing what a fresh Debian machine lacks, and building for wasm32.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

use crate::{cargo, status, target_dir};

pub fn has_command(name: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {name}")]).output().is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Installs Debian packages with apt-get (as root), refreshing the package lists if needed.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    if !is_root() || !has_command("apt-get") {
        bail!(
            "missing packages {packages:?}: install them (apt-get install {}) or run as root on Debian",
            packages.join(" ")
        );
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        status(Command::new("apt-get").arg("update"))?;
        if !install() {
            bail!("apt-get install {} failed", packages.join(" "));
        }
    }
    Ok(())
}

/// Makes sure each (command, Debian package) is available.
pub fn ensure_commands(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = wanted.iter().filter(|(cmd, _)| !has_command(cmd)).map(|(_, pkg)| *pkg).collect();
    apt_install(&missing)
}

/// Makes sure each Debian package is installed.
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !package_installed(p)).collect();
    apt_install(&missing)
}

pub fn package_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn rustup_has_wasm_target() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-unknown-unknown"))
}

/// Builds a crate for `wasm32-unknown-unknown`: with rustup's target when installed, else with
/// Debian's `rustc-web` and a std built from `rust-web-src`. Returns the release output
/// directory (where a binary crate's `.wasm` lands).
pub fn wasm_build(package: &str) -> Result<PathBuf> {
    if rustup_has_wasm_target() {
        status(cargo().args(["build", "--locked", "--release", "-p", package, "--target", "wasm32-unknown-unknown"]))?;
        return Ok(target_dir().join("wasm32-unknown-unknown/release"));
    }
    let missing: Vec<&str> =
        ["rustc-web", "cargo-web", "rust-web-src"].into_iter().filter(|p| !package_installed(p)).collect();
    apt_install(&missing)?;
    let wasm_target = target_dir().join("wasm");
    status(
        Command::new("/usr/bin/cargo")
            .current_dir(crate::root())
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTC", "/usr/bin/rustc")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .args([
                "build",
                "--locked",
                "-p",
                package,
                "--release",
                "--target",
                "wasm32-unknown-unknown",
                "-Zbuild-std=std,panic_abort",
                "--target-dir",
            ])
            .arg(&wasm_target),
    )?;
    Ok(wasm_target.join("wasm32-unknown-unknown/release"))
}
