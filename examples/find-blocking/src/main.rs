//! `cargo run -p find-blocking -- --port 8080`: serves the app of this example on
//! loopback until Ctrl-C. Long polls are also logged to stderr as warnings.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use clap::Parser;
use pollwatch::PollWatch;

/// An axum app with one blocking handler (GET /report) and one blocking
/// background task (spawned by POST /profile), instrumented with pollwatch; its
/// GET /metrics says which code blocked.
#[derive(Parser)]
#[command(after_help = "Example:
  cargo run -p find-blocking -- --port 8080 &
  cargo run -p loadgen -- bench --scenario examples/find-blocking/scenario.toml \\
      --scrape http://127.0.0.1:8080/metrics")]
struct Args {
    /// Port on 127.0.0.1 (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = find_blocking::app(PollWatch::new());
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
