use clap::Parser;

/// Wire-compatible fake OpenAI, DeepSeek, Anthropic and Gemini APIs on one port.
#[derive(Debug, Parser)]
#[command(name = "fake-providers", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "FAKE_PROVIDERS_LISTEN", default_value = "127.0.0.1:8003")]
    listen: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let listener = tokio::net::TcpListener::bind(&cli.listen).await?;
    println!(
        "fake providers listening on http://{}",
        listener.local_addr()?
    );
    studyflow_testkit::fake_providers::serve(listener).await?;
    Ok(())
}
