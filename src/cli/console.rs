//! `selflet console`: watch the agents of a Zenoh network, without running agents.

use std::net::SocketAddr;
use std::process::ExitCode;

use selflet::transport::{Security, ZenohMode};

use super::NetworkArgs;
use super::run::{Signals, block_on, network_settings, serve_console};

/// Serves the console on `serve` and fills it from the status keys of the agents on the
/// network `network` describes, until Ctrl-C.
pub(super) fn console(serve: SocketAddr, network: &NetworkArgs) -> ExitCode {
    let mut config = match network_settings(&[], &[], network) {
        Ok(Some(config)) => config,
        Ok(None) => {
            eprintln!(
                "error: `selflet console` watches a Zenoh network: give `--connect` or `--listen`"
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A client of the peer it connects to, which passes on what every agent puts: a peer
    // would hear only the agents it is connected to itself.
    if network.mode.is_none() && !config.connect.is_empty() {
        config.mode = ZenohMode::Client;
    }
    // The console only listens: it sends nothing that would need its own key. What agents
    // report of themselves is not authenticated (and is checked before it is shown).
    config.security = Security::Open;
    block_on(async move {
        #[cfg(feature = "zenoh")]
        {
            follow(serve, config).await
        }
        #[cfg(not(feature = "zenoh"))]
        {
            let _ = (serve, config);
            eprintln!("error: this selflet was built without the `zenoh` feature");
            ExitCode::FAILURE
        }
    })
}

#[cfg(feature = "zenoh")]
async fn follow(serve: SocketAddr, config: selflet::transport::ZenohConfig) -> ExitCode {
    let fail = |e: String| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    let mut signals = match Signals::listen() {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot listen for signals: {e}")),
    };
    let console = match serve_console(serve).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let zenoh = match selflet::transport::Zenoh::open(&config).await {
        Ok(z) => z,
        Err(e) => return fail(e.to_string()),
    };
    tracing::info!(key_expr = %format!("{}/agents/*/status", zenoh.prefix()), "watching");
    let code = tokio::select! {
        r = console.follow(&zenoh) => match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e.to_string()),
        },
        _ = signals.next() => {
            tracing::info!("stopping");
            ExitCode::SUCCESS
        }
    };
    zenoh.close().await;
    code
}
