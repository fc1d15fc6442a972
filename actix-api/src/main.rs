use anyhow::Result;
use clap::Parser;

#[tokio::main]
async fn main() -> Result<()> {
    let config = actix_api::Config::parse();
    actix_api::telemetry::init(config.log_format);
    let server = actix_api::start(config).await?;
    server.run_until_signal().await
}
