//! The web client: static files from the built directory; any other page path (`/room/…`) gets
//! `index.html` so the client's router takes it.

use std::path::{Path, PathBuf};

use actix_files::{Files, NamedFile};
use actix_web::dev::{ServiceRequest, ServiceResponse, fn_service};
use actix_web::web::ServiceConfig;
use anyhow::{Context, Result, bail};

/// Refuses to start with a web root that holds no built client.
pub fn check(root: &Path) -> Result<()> {
    let index = root.join("index.html");
    if !index.is_file() || !root.join("yew_ui_bg.wasm").is_file() {
        bail!("{} holds no built web client (index.html, yew_ui_bg.wasm): run `cargo xtask web`", root.display());
    }
    std::fs::metadata(&index).with_context(|| format!("reading {}", index.display()))?;
    Ok(())
}

pub fn routes(cfg: &mut ServiceConfig, root: &Path) {
    let index: PathBuf = root.join("index.html");
    cfg.service(Files::new("/", root).index_file("index.html").default_handler(fn_service(
        move |req: ServiceRequest| {
            let index = index.clone();
            async move {
                let (req, _) = req.into_parts();
                let file = NamedFile::open_async(&index).await?;
                let res = file.into_response(&req);
                Ok(ServiceResponse::new(req, res))
            }
        },
    )));
}
