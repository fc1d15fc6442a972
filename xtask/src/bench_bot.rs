//! `cargo xtask bench-bot`: the camera bot end to end on this machine. The software encoder's
//! throughput and CPU per frame (`bot encode-bench`), then `bot camera` publishing the noisy
//! test pattern into a room on a local relay at each size, which prints capture-to-send
//! latency (capture to the sealed frame handed to the transport) and the bot's whole CPU per
//! frame (capture, encoding, encryption and sending).

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::bench::{machine, start_server_with};
use crate::{cargo, status, target_dir};

#[derive(Debug, Args)]
pub struct BotBenchArgs {
    /// Sizes, WxH.
    #[arg(long, value_delimiter = ',', default_values_t = ["640x480".to_string(), "1280x720".to_string()])]
    sizes: Vec<String>,
    /// Seconds of publishing per size.
    #[arg(long, default_value_t = 15)]
    duration: u64,
}

pub fn run(args: BotBenchArgs) -> Result<()> {
    crate::setup::ensure_bot_build()?;
    status(cargo().args(["build", "--release", "--locked", "-p", "actix-api", "-p", "bot"]))?;
    let bot = target_dir().join("release/bot");
    println!("xtask: bench-bot: the software encoder alone");
    status(Command::new(&bot).args(["encode-bench", "--sizes", &args.sizes.join(",")]))?;
    let (_server, http, _) = start_server_with(None, &[])?;
    let mut rows = Vec::new();
    for size in &args.sizes {
        let (w, h) = size.split_once('x').context("sizes are WxH")?;
        println!("xtask: bench-bot: publishing {size} for {} s", args.duration);
        let child = Command::new(&bot)
            .args(["camera", "--server", &http, "--room", "bench-bot", "--name", "Bench"])
            .args(["--width", w, "--height", h, "--fps", "30", "--bitrate", "1500000", "--noise", "6"])
            .args(["--encoder", "software", "--duration", &args.duration.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting bot camera")?;
        let out = child.wait_with_output()?;
        let log = String::from_utf8_lossy(&out.stderr);
        let summary = log.lines().find_map(|l| l.split("stopped: ").nth(1)).map(str::to_owned);
        let Some(summary) = summary.filter(|_| out.status.success()) else {
            bail!("bot camera at {size} failed ({}):\n{log}", out.status);
        };
        rows.push((size.clone(), summary));
    }
    println!("\nmachine: {}", machine());
    for (size, summary) in &rows {
        println!("{size:>10}: {summary}");
    }
    Ok(())
}
