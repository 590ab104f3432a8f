//! Bus publish→deliver throughput against a raw async-channel in the same run; and an agent's
//! bus with and without the Prometheus exporter watching the agent (`selflet::metrics`).
//!
//! Each iteration moves `N` events from one publisher to 1 or 8 subscribers that run as tasks
//! on the same single-threaded runtime, so both sides pay the same scheduling costs. Queues
//! hold 1,024 events in both cases, and the bus uses its lossless `wait` policy. A second
//! reference, `raw_async_channel_events`, is the raw channel carrying an event made per publish
//! as the bus makes one (shared, timestamped): what the event alone costs, queues aside.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use selflet::Value;
use selflet::bus::{Bus, Overflow, Pattern, SubscribeOptions};

const N: u64 = 100_000;
const CAPACITY: usize = 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
}

async fn raw_channel(subscribers: usize) {
    let mut txs = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let (tx, rx) = async_channel::bounded::<Value>(CAPACITY);
        txs.push(tx);
        readers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while rx.recv().await.is_ok() {
                n += 1;
            }
            n
        }));
    }
    for i in 0..N {
        for tx in &txs {
            tx.send(Value::Int(i as i64)).await.expect("reader alive");
        }
    }
    drop(txs);
    for r in readers {
        assert_eq!(r.await.expect("reader finished"), N);
    }
}

/// The raw channel carrying what a bus event is made of, made per send as the bus makes it:
/// one allocation shared by every subscriber (a reference count each), holding the topic, the
/// time on tokio's clock, the payload and the trace. No counting, no lock, no topic: the floor
/// that publishing a timestamped, shareable event puts under the bus, whatever its queues.
async fn raw_channel_events(subscribers: usize) {
    struct Made {
        _topic: Arc<str>,
        _time: tokio::time::Instant,
        _payload: Value,
        _trace: Option<u64>,
    }
    let topic: Arc<str> = Arc::from("bench.event");
    let mut txs = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let (tx, rx) = async_channel::bounded::<Arc<Made>>(CAPACITY);
        txs.push(tx);
        readers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while rx.recv().await.is_ok() {
                n += 1;
            }
            n
        }));
    }
    for i in 0..N {
        let event = Arc::new(Made {
            _topic: Arc::clone(&topic),
            _time: tokio::time::Instant::now(),
            _payload: Value::Int(i as i64),
            _trace: black_box(None),
        });
        for tx in &txs {
            tx.send(Arc::clone(&event)).await.expect("reader alive");
        }
    }
    drop(txs);
    for r in readers {
        assert_eq!(r.await.expect("reader finished"), N);
    }
}

async fn bus(subscribers: usize) {
    deliver(Bus::new("bench"), subscribers).await;
}

async fn deliver(bus: Bus, subscribers: usize) {
    let options = SubscribeOptions {
        capacity: CAPACITY,
        overflow: Overflow::Wait,
    };
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let sub = bus
            .subscribe_with(Pattern::parse("bench.event").expect("valid"), options)
            .expect("open bus");
        readers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while sub.recv().await.is_some() {
                n += 1;
            }
            n
        }));
    }
    let publisher = bus.publisher("bench.event");
    for i in 0..N {
        publisher
            .publish(Value::Int(i as i64))
            .await
            .expect("open bus");
    }
    bus.close();
    for r in readers {
        assert_eq!(r.await.expect("reader finished"), N, "the bus lost events");
    }
}

fn publish_deliver(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("publish_deliver");
    for subscribers in [1usize, 8] {
        g.throughput(Throughput::Elements(N * subscribers as u64));
        g.bench_with_input(
            BenchmarkId::new("raw_async_channel", subscribers),
            &subscribers,
            |b, &s| {
                b.to_async(&rt).iter(|| raw_channel(s));
            },
        );
        g.bench_with_input(
            BenchmarkId::new("raw_async_channel_events", subscribers),
            &subscribers,
            |b, &s| {
                b.to_async(&rt).iter(|| raw_channel_events(s));
            },
        );
        g.bench_with_input(
            BenchmarkId::new("bus", subscribers),
            &subscribers,
            |b, &s| {
                b.to_async(&rt).iter(|| bus(s));
            },
        );
    }
    g.finish();
}

/// One subscriber on a running agent's bus, the agent watched by the metrics exporter or not:
/// what exporting metrics costs the bus.
fn metrics_overhead(c: &mut Criterion) {
    // Agents need timers (their shutdown grace, the exporter's period).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let mut g = c.benchmark_group("metrics_overhead");
    g.throughput(Throughput::Elements(N));
    for watched in [false, true] {
        let name = if watched {
            "agent_bus_exported"
        } else {
            "agent_bus"
        };
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async move {
                let agent = selflet::Agent::builder("bench")
                    .spawn()
                    .await
                    .expect("an agent");
                if watched {
                    selflet::metrics::watch(&agent, std::time::Duration::from_secs(1));
                }
                deliver(agent.bus().clone(), 1).await;
                agent.shutdown().await;
            });
        });
    }
    g.finish();
}

/// The exporter's recorder, installed once for the process (as `selflet run --metrics`
/// does), before any bench runs: the unwatched agent then pays for a recorder as well.
fn install_recorder() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    metrics::set_global_recorder(recorder).expect("the first recorder");
}

fn benches(c: &mut Criterion) {
    install_recorder();
    publish_deliver(c);
    metrics_overhead(c);
}

criterion_group!(all, benches);
criterion_main!(all);
