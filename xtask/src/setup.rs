//! Installing what a fresh Debian machine lacks, building for wasm32, and what a run may skip.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cargo, status, target_dir};

/// Whether the program is on `PATH` or in an `sbin` directory (Debian's `nats-server`).
pub fn has_command(name: &str) -> bool {
    testkit::find_program(name).is_some()
}

/// Parts of a run that could not run here. In CI (`CI` set) nothing may be skipped: a part that
/// cannot run fails the run. Elsewhere a skip is printed loudly and named in the last line.
#[derive(Default)]
pub struct Skipped(Vec<String>);

impl Skipped {
    /// Records that `part` cannot run because of `why`, or fails in CI.
    pub fn skip(&mut self, part: &str, why: anyhow::Error) -> Result<()> {
        if std::env::var_os("CI").is_some() {
            return Err(why.context(format!("{part} cannot run here, and CI allows no skipped part")));
        }
        println!("\n*** xtask: SKIPPING {part}: {why:#} ***\n");
        self.0.push(part.to_owned());
        Ok(())
    }

    /// The run's last line.
    pub fn summary(&self) -> String {
        if self.0.is_empty() {
            "xtask: every test passed".to_owned()
        } else {
            format!("xtask: the tests that ran passed, but these were SKIPPED: {}", self.0.join("; "))
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `apt-get` as root, or through `sudo`; `None` when neither can run.
fn apt_get() -> Option<Command> {
    if !has_command("apt-get") {
        return None;
    }
    if is_root() {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        Some(cmd)
    } else if has_command("sudo") {
        // sudo keeps only a few variables; env sets this one on the root side.
        let mut cmd = Command::new("sudo");
        cmd.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        Some(cmd)
    } else {
        None
    }
}

/// Another apt (unattended upgrades, a second run) may hold dpkg's lock for a while: wait for it
/// (seconds) rather than fail.
const APT_LOCK_WAIT: &str = "DPkg::Lock::Timeout=600";

/// Installs Debian packages (or upgrades them to the newest candidate) with apt-get, as root or
/// through sudo. The package lists are refreshed first, once per run: a new machine's lists may
/// be old or (after debootstrap) hold only the release's first versions.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    static UPDATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if packages.is_empty() {
        return Ok(());
    }
    let (Some(mut update), Some(mut install)) = (apt_get(), apt_get()) else {
        bail!(
            "missing packages: {list}. Install them (apt-get install {list}), or run this as root or \
             with sudo on Debian",
            list = packages.join(" ")
        );
    };
    if !UPDATED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        status(update.args(["-o", APT_LOCK_WAIT, "update"]))?;
    }
    status(install.args(["-o", APT_LOCK_WAIT, "install", "-y", "--no-install-recommends"]).args(packages))
        .with_context(|| format!("installing {}", packages.join(" ")))
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

/// What building the bot needs beyond Rust: a C++ compiler for OpenH264 (built from its bundled
/// source) and libclang for bindgen's V4L2 bindings.
pub fn ensure_bot_build() -> Result<()> {
    ensure_commands(&[("c++", "g++")])?;
    ensure_packages(&["libclang-dev"])
}

/// Makes sure `cargo fmt` works: rustup's rustfmt component, added when missing.
pub fn ensure_rustfmt() -> Result<()> {
    let works = || cargo().args(["fmt", "--version"]).output().is_ok_and(|o| o.status.success());
    if works() {
        return Ok(());
    }
    let _ = status(Command::new("rustup").args(["component", "add", "rustfmt"]));
    if works() { Ok(()) } else { bail!("`cargo fmt` is missing: rustup component add rustfmt") }
}

/// A Python virtual environment under the target directory named `name`, with `tools` (pinned
/// PyPI requirements) installed; made and installed when missing. Returns its directory.
pub fn python_tools(name: &str, tools: &[&str]) -> Result<PathBuf> {
    let venv = target_dir().join(name);
    let marker = venv.join(format!("installed-{}", tools.join(",")));
    if marker.is_file() {
        return Ok(venv);
    }
    ensure_packages(&["python3-venv"])?;
    status(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    status(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "--disable-pip-version-check"]).args(tools))?;
    std::fs::write(&marker, b"").with_context(|| format!("writing {}", marker.display()))?;
    Ok(venv)
}

/// Makes sure PostgreSQL's server binaries are there for the tests' throwaway servers.
pub fn ensure_postgres() -> Result<()> {
    if testkit::postgres_binaries().is_ok() { Ok(()) } else { apt_install(&["postgresql"]) }
}

/// Whether rustup's wasm32 target is installed, adding it when rustup can download it.
fn rustup_wasm_target() -> bool {
    let installed = || {
        Command::new("rustup")
            .current_dir(crate::root())
            .args(["target", "list", "--installed"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-unknown-unknown"))
    };
    if installed() {
        return true;
    }
    if !has_command("rustup") {
        return false;
    }
    println!("xtask: rustup target add wasm32-unknown-unknown");
    match Command::new("rustup").current_dir(crate::root()).args(["target", "add", "wasm32-unknown-unknown"]).output() {
        Ok(out) if out.status.success() => installed(),
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr);
            let why = why.lines().find(|l| l.starts_with("error")).unwrap_or("failed");
            println!("xtask: rustup could not add the wasm32 target ({why}); using Debian's rustc-web instead");
            false
        }
        Err(e) => {
            println!("xtask: rustup could not run ({e}); using Debian's rustc-web instead");
            false
        }
    }
}

/// Builds a crate for `wasm32-unknown-unknown`: with rustup's target when it is installed or can
/// be added, else with Debian's `rustc-web` and a std built from `rust-web-src`. Returns the release output
/// directory (where a binary crate's `.wasm` lands).
pub fn wasm_build(package: &str) -> Result<PathBuf> {
    if rustup_wasm_target() {
        status(cargo().args(["build", "--locked", "--release", "-p", package, "--target", "wasm32-unknown-unknown"]))?;
        return Ok(target_dir().join("wasm32-unknown-unknown/release"));
    }
    const DEBIAN_WASM: [&str; 3] = ["rustc-web", "cargo-web", "rust-web-src"];
    ensure_packages(&DEBIAN_WASM)?;
    if !debian_rustc_is_recent()? {
        // An older rustc-web (bookworm's first one is 1.85): the newest candidate may do.
        apt_install(&DEBIAN_WASM)?;
        if !debian_rustc_is_recent()? {
            bail!(
                "Debian's rustc-web is older than the workspace's rust-version ({RUST_VERSION}); \
                 add bookworm-security to apt's sources, or install rustup's wasm32 target"
            );
        }
    }
    let linker = debian_wasm_linker()?;
    let wasm_target = target_dir().join("wasm");
    status(
        Command::new("/usr/bin/cargo")
            .current_dir(crate::root())
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTC", "/usr/bin/rustc")
            // rustc's wasm32 target calls `rust-lld`, which Debian's rustc-web does not ship
            // (rust-web-llvm's `rust-lld` points at lld without depending on it): name the
            // linker of rustc's own LLVM version instead.
            .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", &linker)
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

/// `wasm-ld` from the `lld-N` package whose N is the LLVM major version of Debian's rustc,
/// installed when missing.
fn debian_wasm_linker() -> Result<PathBuf> {
    let out = Command::new("/usr/bin/rustc").arg("-vV").output().context("running /usr/bin/rustc -vV")?;
    let info = String::from_utf8_lossy(&out.stdout);
    let major = info
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .with_context(|| format!("no LLVM version in /usr/bin/rustc -vV:\n{info}"))?
        .trim()
        .to_owned();
    ensure_packages(&[&format!("lld-{major}")])?;
    let linker = PathBuf::from(format!("/usr/lib/llvm-{major}/bin/wasm-ld"));
    if !linker.is_file() {
        bail!("lld-{major} is installed but {} is missing", linker.display());
    }
    Ok(linker)
}

/// The oldest rustc the workspace builds with (the workspace's `rust-version`, which xtask inherits).
const RUST_VERSION: &str = env!("CARGO_PKG_RUST_VERSION");

/// Whether `/usr/bin/rustc` is at least [`RUST_VERSION`].
fn debian_rustc_is_recent() -> Result<bool> {
    let out = Command::new("/usr/bin/rustc").arg("--version").output().context("running /usr/bin/rustc --version")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = |v: &str| -> Option<(u32, u32)> {
        let mut parts = v.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    let found = text.split_whitespace().nth(1).and_then(version).with_context(|| format!("rustc said {text:?}"))?;
    let wanted = version(RUST_VERSION).context("RUST_VERSION")?;
    println!("xtask: Debian's {}", text.trim());
    Ok(found >= wanted)
}
