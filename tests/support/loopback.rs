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

use selflet::transport::{Security, Transport, Zenoh, ZenohConfig};

/// A selflet Zenoh session listening on a fresh loopback port, and its endpoint.
pub(crate) async fn listening(namespace: &str, security: Security) -> (Zenoh, String) {
    let endpoint = free_endpoint();
    let config = ZenohConfig {
        listen: vec![endpoint.clone()],
        namespace: namespace.into(),
        security,
        ..ZenohConfig::default()
    };
    (Zenoh::open(&config).await.expect("zenoh opens"), endpoint)
}

/// A selflet Zenoh session connected to `endpoint`.
pub(crate) async fn connecting(namespace: &str, endpoint: &str, security: Security) -> Zenoh {
    let config = ZenohConfig {
        connect: vec![endpoint.to_owned()],
        namespace: namespace.into(),
        security,
        ..ZenohConfig::default()
    };
    Zenoh::open(&config).await.expect("zenoh opens")
}

/// Secure mode with a fresh key directory of its own, shared by the sessions of one test as
/// by the processes of one machine.
pub(crate) fn fresh_keys(name: &str) -> Security {
    let dir = std::env::temp_dir().join(format!("selflet-keys-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Security::Secure { keys: dir }
}

/// Waits until `transport` sees `agent` on the network.
pub(crate) async fn sees(transport: &Zenoh, agent: &str) {
    while !transport.is_member(agent) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
