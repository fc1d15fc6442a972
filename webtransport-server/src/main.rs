use anyhow::Result;
use clap::Parser;
use videocall_relay::cli::init_tracing;

#[tokio::main]
async fn main() -> Result<()> {
    let config = webtransport_server::Config::parse();
    init_tracing(config.relay.log_format);
    let server = webtransport_server::run(config).await?;
    server.run_until_signal().await
}
