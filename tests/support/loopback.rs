//! Zenoh on loopback for tests and benches: a fresh endpoint to listen on, and a bare Zenoh
//! session such as any Zenoh application (or a hostile client) would open.
#![allow(dead_code)] // each user takes what it needs

/// `tcp/127.0.0.1:<port>` on a port free a moment ago.
pub(crate) fn free_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    format!("tcp/127.0.0.1:{port}")
}

/// A plain Zenoh session connected to `endpoint`, without multicast scouting.
pub(crate) async fn bare_session(endpoint: &str) -> zenoh::Session {
    let mut config = zenoh::Config::default();
    config
        .insert_json5("connect/endpoints", &format!("[\"{endpoint}\"]"))
        .expect("config");
    config
        .insert_json5("scouting/multicast/enabled", "false")
        .expect("config");
    zenoh::open(config).await.expect("bare session")
}
