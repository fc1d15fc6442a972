//! A small disk of the test's own: a tmpfs of a given size mounted on a fresh directory (root
//! only), unmounted when dropped. What "the disk fills up" tests write to.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// A tmpfs of `kib` KiB on a new directory named after `label`, or why not (not root).
    pub fn mount(label: &str, kib: u64) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("small-disk-{label}-{}", std::process::id()));
        let _ = Command::new("umount").arg(&path).output();
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0700"), "tmpfs"])
            .arg(&path)
            .output()
            .context("running mount")?;
        if !out.status.success() {
            bail!("mount -t tmpfs (root only): {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).output();
        let _ = std::fs::remove_dir(&self.path);
    }
}
