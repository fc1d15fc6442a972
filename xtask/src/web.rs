//! Building the web client: `yew-ui` for wasm32, its JavaScript glue through wasm-bindgen (the
//! library, at exactly the version in Cargo.lock), and the static files, into `target/web`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::{root, setup, target_dir};

/// Where the built client lands; `actix-api --web-root` serves it.
pub fn out_dir() -> PathBuf {
    target_dir().join("web")
}

pub fn build() -> Result<PathBuf> {
    let release = setup::wasm_build("yew-ui")?;
    let wasm = release.join("yew-ui.wasm");
    let out = out_dir();
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    println!("xtask: wasm-bindgen {} -> {}", wasm.display(), out.display());
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .out_name("yew_ui")
        .web(true)?
        .typescript(false)
        // Function names only help a debugger; they are a third of the file.
        .remove_name_section(true)
        .remove_producers_section(true)
        .generate(&out)
        .context("wasm-bindgen")?;
    copy_files(&root().join("yew-ui/static"), &out)?;
    let size = fs::metadata(out.join("yew_ui_bg.wasm")).map(|m| m.len()).unwrap_or(0);
    println!("xtask: web client built ({:.1} MB of wasm)", size as f64 / 1e6);
    Ok(out)
}

/// Copies the files of `from` (not its subdirectories' contents) into `to`.
pub fn copy_files(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            fs::copy(&path, to.join(name)).with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}
