//! Across two processes over Zenoh on loopback: a service call's round trip and a teaching
//! package's transfer, against a bare Zenoh query round trip measured in the same run; and
//! the same call in secure mode, where every message carries a tag, to show what proving the
//! sender costs.
//!
//! The bench re-runs its own executable as the other process (`SELFLET_BENCH_PEER` set):
//! there, one Zenoh session in open mode and one in secure mode each carry a provider agent,
//! and beside them a bare queryable answers every query with its own payload. Here, a
//! requester agent in each mode calls its provider, and a bare session queries the echo with
//! payloads the size of the call's envelope and of the teaching package, so each selflet
//! figure has a reference of the same size. Teaching runs in secure mode, the only one that
//! teaches across processes, with upgrades allowed so that each round installs the package
//! again.
//!
//! Criterion gives means and medians of blocks of round trips. First, the p50/p99 of each kind
//! are printed from `SAMPLES` rounds in which every kind makes one round trip, one after the
//! other: the selflet figures and their references are taken under the same conditions, as
//! this VM's speed drifts between blocks of a few seconds. The p50s go to
//! `target/criterion/zenoh_round_trips.json`, where `bench_table` reads the Zenoh rows (the
//! targets are set at p50).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use selflet::behaviour::Behaviour;
use selflet::negotiation::Outcome;
use selflet::transport::{Security, Zenoh, ZenohConfig};
use selflet::{Agent, AgentHandle, OfferMode, OfferModes, Service, Value};
use zenoh::Wait;

#[path = "../tests/support/loopback.rs"]
mod loopback;

use loopback::{bare_session, connecting, free_endpoint, sees};

/// A session listening on `endpoint`.
async fn listening_at(endpoint: &str, namespace: &str, security: Security) -> (Zenoh, String) {
    let config = ZenohConfig {
        listen: vec![endpoint.to_owned()],
        namespace: namespace.into(),
        security,
        ..ZenohConfig::default()
    };
    (
        Zenoh::open(&config).await.expect("zenoh opens"),
        endpoint.to_owned(),
    )
}

const PEER: &str = "SELFLET_BENCH_PEER";
const NAMESPACE: &str = "bench";
const SECURE_NAMESPACE: &str = "bench-secure";
const ECHO: &str = "bench/echo";
const SAMPLES: usize = 2_000;
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn shipped(name: &str) -> Behaviour {
    Behaviour::load(format!("{ROOT}/behaviors/{name}.yaml")).expect("shipped behaviour")
}

fn echo() -> Behaviour {
    Behaviour::parse(selflet::SourceFile::new(
        "echo.yaml",
        "behaviour: echo\ninitial: e\nstates:\n  e: { final: true, output: input }\n",
    ))
    .expect("valid")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The key directory both processes share, as on one machine.
fn keys() -> Security {
    Security::Secure {
        keys: std::env::temp_dir().join("selflet-bench-keys"),
    }
}

/// A provider of `echo` (can do) and of services 1 to 3 (can teach).
async fn provider(zenoh: &Zenoh, name: &str) -> AgentHandle {
    let both = OfferModes::CAN_DO | OfferModes::CAN_TEACH;
    let s1 = Service::new("service1", OfferModes::CAN_TEACH).requiring(["service2", "service3"]);
    Agent::builder(name)
        .transport(Arc::new(zenoh.clone()))
        .behaviour(echo())
        .behaviour(shipped("service1"))
        .behaviour(shipped("service2"))
        .behaviour(shipped("service3"))
        .service(Service::new("echo", OfferModes::CAN_DO))
        .service(s1)
        .service(Service::new("service2", both))
        .service(Service::new("service3", both))
        .spawn()
        .await
        .expect("provider spawns")
}

/// The other process: a provider agent in each mode and a bare echo queryable, until stdin
/// closes.
fn peer(endpoints: String) {
    let (endpoint, secure_endpoint) = endpoints.split_once(',').expect("two endpoints");
    let (endpoint, secure_endpoint) = (endpoint.to_owned(), secure_endpoint.to_owned());
    runtime().block_on(async move {
        let config = ZenohConfig {
            listen: vec![endpoint.clone()],
            namespace: NAMESPACE.into(),
            ..ZenohConfig::default()
        };
        let zenoh = Zenoh::open(&config).await.expect("zenoh opens");
        // Each mode on a session of its own, listening where the requester's connects.
        let (secure, _) = listening_at(&secure_endpoint, SECURE_NAMESPACE, keys()).await;
        let provider_open = provider(&zenoh, "provider").await;
        let provider_secure = provider(&secure, "provider").await;
        let bare = bare_session(&endpoint).await;
        let _queryable = bare
            .declare_queryable(ECHO)
            .callback(|q| {
                let payload = q.payload().cloned().unwrap_or_default();
                let _ = q.reply(q.key_expr().clone(), payload).wait();
            })
            .await
            .expect("queryable");
        println!("ready");
        // The parent holds our stdin; when it ends, so do we.
        let _ = tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await;
        provider_open.shutdown().await;
        provider_secure.shutdown().await;
        secure.close().await;
        zenoh.close().await;
    });
}

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_peer(endpoint: &str, secure_endpoint: &str) -> Peer {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(PEER, format!("{endpoint},{secure_endpoint}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("peer starts");
    let mut out = child.stdout.take().expect("piped");
    let mut ready = [0u8; 5];
    out.read_exact(&mut ready).expect("peer says ready");
    Peer(child)
}

struct Side {
    requester: AgentHandle,
    // The same requester in secure mode, which also learns.
    secure: AgentHandle,
    secure_zenoh: Zenoh,
    // The same call between two agents of this process: the cost of selflet's own path.
    local: AgentHandle,
    // Kept: an agent whose last handle is dropped stops.
    _local_provider: AgentHandle,
    bare: zenoh::Session,
    zenoh: Zenoh,
}

async fn connect(endpoint: &str, secure_endpoint: &str) -> Side {
    let config = ZenohConfig {
        connect: vec![endpoint.to_owned()],
        namespace: NAMESPACE.into(),
        ..ZenohConfig::default()
    };
    let zenoh = Zenoh::open(&config).await.expect("zenoh opens");
    let requester = Agent::builder("requester")
        .transport(Arc::new(zenoh.clone()))
        .spawn()
        .await
        .expect("requester spawns");
    let secure_zenoh = connecting(SECURE_NAMESPACE, secure_endpoint, keys()).await;
    let secure = Agent::builder("requester")
        .transport(Arc::new(secure_zenoh.clone()))
        .spawn()
        .await
        .expect("requester spawns");
    secure.knowledge().allow_upgrade("service1", true);
    sees(&zenoh, "provider").await;
    sees(&secure_zenoh, "provider").await;
    let bare = bare_session(endpoint).await;
    let network = selflet::Network::new();
    let local_provider = Agent::builder("local_provider")
        .network(&network)
        .behaviour(echo())
        .service(Service::new("echo", OfferModes::CAN_DO))
        .spawn()
        .await
        .expect("provider spawns");
    let local = Agent::builder("local")
        .network(&network)
        .spawn()
        .await
        .expect("requester spawns");
    // Declarations travel like anything else: ask until the echo is there.
    loop {
        let replies = bare.get(ECHO).payload("x").await.expect("query sent");
        if replies.recv_async().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Side {
        requester,
        secure,
        secure_zenoh,
        local,
        _local_provider: local_provider,
        bare,
        zenoh,
    }
}

async fn bare_query(session: &zenoh::Session, payload: &[u8]) {
    let replies = session
        .get(ECHO)
        .payload(payload.to_vec())
        .await
        .expect("query sent");
    let reply = replies.recv_async().await.expect("an answer");
    let sample = reply.result().expect("echoed");
    assert_eq!(sample.payload().len(), payload.len());
}

async fn call(side: &Side) {
    call_from(&side.requester).await;
}

async fn call_from(requester: &AgentHandle) {
    let out = requester
        .call("echo", Value::map([("n", Value::Int(7))]))
        .await
        .expect("the call succeeds");
    assert_eq!(out, Value::map([("n", Value::Int(7))]));
}

async fn teach(side: &Side) {
    let learned = side
        .secure
        .request_service("service1", &[OfferMode::CanTeach], Value::Null)
        .await
        .expect("taught");
    assert!(matches!(learned, Outcome::Learned { .. }));
}

/// The JSON sizes of the call's request and of the teaching package's reply.
fn sizes() -> (usize, usize) {
    use selflet::transport::{Envelope, Message, Reply, TeachingPackage};
    let request = Envelope {
        trace: 0,
        from: "requester".into(),
        to: "provider".into(),
        id: 1,
        body: Message::Request {
            service: "echo".into(),
            modes: vec![OfferMode::CanDo],
            input: Value::map([("n", Value::Int(7))]),
            hops: 0,
        },
    };
    let behaviour = shipped("service1");
    let package = Envelope {
        trace: 0,
        from: "provider".into(),
        to: "requester".into(),
        id: 1,
        body: Message::Reply(Reply::Teach(Box::new(TeachingPackage {
            service: "service1".into(),
            behaviour: "service1".into(),
            behaviour_source: behaviour.source().text().to_owned(),
            scripts: Vec::new(),
            requires: behaviour.requires().to_vec(),
        }))),
    };
    let len = |e: &Envelope| serde_json::to_vec(e).expect("serializable").len();
    (len(&request), len(&package))
}

/// The round trips measured, in the order each round makes them: a call and its reference
/// next to each other.
const KINDS: [&str; 6] = [
    "bare_query_request_size",
    "service_call",
    "service_call_secure",
    "service_call_in_process",
    "bare_query_package_size",
    "teaching",
];

/// `SAMPLES` rounds, each making one round trip of every kind; the timings by kind.
async fn interleaved(side: &Side, small: &[u8], large: &[u8]) -> [Vec<Duration>; 6] {
    let mut times: [Vec<Duration>; 6] = Default::default();
    for _ in 0..SAMPLES {
        let mut t = Instant::now();
        let mut lap = |i: usize| {
            let now = Instant::now();
            times[i].push(now - t);
            t = now;
        };
        bare_query(&side.bare, small).await;
        lap(0);
        call(side).await;
        lap(1);
        call_from(&side.secure).await;
        lap(2);
        call_from(&side.local).await;
        lap(3);
        bare_query(&side.bare, large).await;
        lap(4);
        teach(side).await;
        lap(5);
    }
    times
}

/// The `q` quantile of sorted samples.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Prints each kind's p50 and p99 and writes the p50s, in nanoseconds, for `bench_table`.
fn report(mut times: [Vec<Duration>; 6], request_bytes: usize, package_bytes: usize) {
    let labels = [
        format!("bare zenoh query, {request_bytes} B"),
        "selflet service call (echo)".into(),
        "  the same call in secure mode".into(),
        "  the same call within this process".into(),
        format!("bare zenoh query, {package_bytes} B"),
        "selflet teaching (request, package, install)".into(),
    ];
    let mut p50 = serde_json::Map::new();
    for ((kind, label), samples) in KINDS.iter().zip(&labels).zip(&mut times) {
        samples.sort_unstable();
        let (median, tail) = (quantile(samples, 0.5), quantile(samples, 0.99));
        println!(
            "{label:<44} p50 {:>8.1} µs   p99 {:>8.1} µs",
            median.as_secs_f64() * 1e6,
            tail.as_secs_f64() * 1e6
        );
        p50.insert((*kind).into(), (median.as_nanos() as f64).into());
    }
    let ratio = |a: usize, b: usize| {
        quantile(&times[a], 0.5).as_secs_f64() / quantile(&times[b], 0.5).as_secs_f64()
    };
    println!(
        "p50 ratios: call / query {:.2}, teaching / query of the package's size {:.2}",
        ratio(1, 0),
        ratio(5, 4)
    );
    let dir = std::path::Path::new(ROOT).join("target/criterion");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        let json = serde_json::json!({ "samples": SAMPLES, "p50_ns": p50 });
        std::fs::write(dir.join("zenoh_round_trips.json"), json.to_string())
    });
    if let Err(e) = written {
        eprintln!("could not write the p50s for bench_table: {e}");
    }
}

fn main() {
    if let Ok(endpoints) = std::env::var(PEER) {
        peer(endpoints);
        return;
    }
    let (endpoint, secure_endpoint) = (free_endpoint(), free_endpoint());
    let _peer = start_peer(&endpoint, &secure_endpoint);
    let rt = runtime();
    let side = rt.block_on(connect(&endpoint, &secure_endpoint));
    let (request_bytes, package_bytes) = sizes();
    let small = vec![b'x'; request_bytes];
    let large = vec![b'x'; package_bytes];

    // Warm up every path, then p50/p99 from many round trips of each.
    rt.block_on(async {
        for _ in 0..100 {
            bare_query(&side.bare, &small).await;
            call(&side).await;
            call_from(&side.secure).await;
            call_from(&side.local).await;
            teach(&side).await;
        }
    });
    println!(
        "round trips across two processes on loopback ({SAMPLES} rounds of one of each, interleaved; request {request_bytes} B, teaching package {package_bytes} B)"
    );
    let times = rt.block_on(interleaved(&side, &small, &large));
    report(times, request_bytes, package_bytes);

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("zenoh_round_trip");
    g.bench_function("bare_query_request_size", |b| {
        b.to_async(&rt).iter(|| bare_query(&side.bare, &small))
    });
    g.bench_function("service_call", |b| b.to_async(&rt).iter(|| call(&side)));
    g.bench_function("service_call_secure", |b| {
        b.to_async(&rt).iter(|| call_from(&side.secure))
    });
    g.bench_function("service_call_in_process", |b| {
        b.to_async(&rt).iter(|| call_from(&side.local))
    });
    g.bench_function("bare_query_package_size", |b| {
        b.to_async(&rt).iter(|| bare_query(&side.bare, &large))
    });
    g.bench_function("teaching", |b| b.to_async(&rt).iter(|| teach(&side)));
    g.finish();
    c.final_summary();
    rt.block_on(async {
        side.requester.shutdown().await;
        side.secure.shutdown().await;
        side.zenoh.close().await;
        side.secure_zenoh.close().await;
        let _ = side.bare.close().await;
    });
}
