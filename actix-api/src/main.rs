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
    let public_url = config.clone().normalized().public_url;
    let server = actix_api::start(config).await?;
    print!("{}", server.welcome(public_url.as_deref()));
    server.run_until_signal().await
}
