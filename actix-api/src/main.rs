use anyhow::Result;
use clap::Parser;

#[tokio::main]
async fn main() -> Result<()> {
    let config = actix_api::Config::parse();
    videocall_relay::cli::init_tracing(config.relay.log_format);
    if let Some(room) = &config.issue_kiosk_token {
        println!("{}", actix_api::kiosk_token(&config, room)?);
        return Ok(());
    }
    let server = actix_api::start(config).await?;
    server.run_until_signal().await
}
