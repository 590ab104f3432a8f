//! A service call between two agents in one process, against the same request/reply with a
//! raw tokio mpsc + oneshot and with a `ractor` actor call, measured in the same run from inside
//! a runtime task, on a current-thread runtime and on two workers; and the throughput of 1,000
//! concurrent callers.
//!
//! The service is what an application would write: a behaviour around a native ability that
//! answers its input. The references do the same work without the framework: a task that
//! answers each request through a oneshot; an actor that answers each call.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use selflet::behaviour::Behaviour;
use selflet::{Agent, AgentHandle, Network, OfferModes, Service, SourceFile, Value};
use tokio::sync::{mpsc, oneshot};

/// Concurrent callers in the throughput runs, spread over agents: a provider takes at most
/// 64 requests in flight from one peer (`MAX_IN_FLIGHT_PER_PEER`).
const CALLERS: usize = 1000;
const CALLER_AGENTS: usize = 20;

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    let mut b = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    b.enable_time().build().expect("a tokio runtime")
}

/// Two agents: `b` offers `echo` (a behaviour around the native ability `echo`), `a` calls it.
async fn agents() -> (AgentHandle, AgentHandle) {
    let net = Network::new();
    let b = provider(&net).await;
    let a = Agent::builder("a")
        .network(&net)
        .spawn()
        .await
        .expect("agent a");
    assert_eq!(a.call("echo", 1).await.expect("a call"), Value::Int(1));
    (a, b)
}

async fn provider(net: &Network) -> AgentHandle {
    let echo = Behaviour::parse(SourceFile::new(
        "echo.yaml",
        "behaviour: echo\ninitial: e\nstates:\n  e: { do: { ability: echo, args: { x: input }, save: out }, on: { done: f } }\n  f: { final: true, output: out }\n",
    ))
    .expect("valid behaviour");
    Agent::builder("b")
        .network(net)
        .behaviour(echo)
        .service(Service::new("echo", OfferModes::CAN_DO))
        .ability("echo", |input: Value| async move {
            Ok(input.get("x").cloned().unwrap_or_default())
        })
        .spawn()
        .await
        .expect("agent b")
}

type Request = (i64, oneshot::Sender<i64>);

fn channel_server() -> mpsc::Sender<Request> {
    let (tx, mut rx) = mpsc::channel::<Request>(1024);
    tokio::spawn(async move {
        while let Some((x, reply)) = rx.recv().await {
            let _ = reply.send(x);
        }
    });
    tx
}

async fn channel_call(tx: &mpsc::Sender<Request>, x: i64) -> i64 {
    let (reply, answer) = oneshot::channel();
    tx.send((x, reply)).await.expect("server alive");
    answer.await.expect("answered")
}

struct Echo;

impl Actor for Echo {
    type Msg = (i64, RpcReplyPort<i64>);
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        (x, reply): Self::Msg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(x);
        Ok(())
    }
}

async fn actor_call(actor: &ActorRef<(i64, RpcReplyPort<i64>)>, x: i64) -> i64 {
    match actor
        .call(|reply| (x, reply), None)
        .await
        .expect("actor alive")
    {
        ractor::rpc::CallResult::Success(v) => v,
        other => panic!("{other:?}"),
    }
}

/// Times `iters` sequential calls made by one task spawned on the runtime.
fn timed<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, call: F) -> Duration
where
    F: Fn(i64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = i64> + Send,
{
    let task = rt.spawn(async move {
        let start = Instant::now();
        for i in 0..iters {
            std::hint::black_box(call(i as i64).await);
        }
        start.elapsed()
    });
    rt.block_on(task).expect("the timing task")
}

fn latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("call");
    for workers in [1, 2] {
        let rt = runtime(workers);
        let (a, _b) = rt.block_on(agents());
        let tx = rt.block_on(async { channel_server() });
        let (actor, _) = rt.block_on(Actor::spawn(None, Echo, ())).expect("actor");
        let p = format!("{workers} worker(s)");
        g.bench_function(BenchmarkId::new("selflet", &p), |bn| {
            bn.iter_custom(|n| {
                let a = a.clone();
                timed(&rt, n, move |x| {
                    let a = a.clone();
                    async move {
                        a.call("echo", x)
                            .await
                            .ok()
                            .and_then(|v| v.as_int())
                            .unwrap_or(-1)
                    }
                })
            })
        });
        g.bench_function(BenchmarkId::new("mpsc_oneshot", &p), |bn| {
            bn.iter_custom(|n| {
                let tx = tx.clone();
                timed(&rt, n, move |x| {
                    let tx = tx.clone();
                    async move { channel_call(&tx, x).await }
                })
            })
        });
        g.bench_function(BenchmarkId::new("ractor", &p), |bn| {
            bn.iter_custom(|n| {
                let actor = actor.clone();
                timed(&rt, n, move |x| {
                    let actor = actor.clone();
                    async move { actor_call(&actor, x).await }
                })
            })
        });
        actor.stop(None);
    }
    g.finish();
}

/// `CALLERS` tasks, each making `per` calls, all at once.
fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("call_throughput");
    g.sample_size(10);
    let per = 20;
    g.throughput(Throughput::Elements((CALLERS * per) as u64));
    for workers in [1, 2] {
        let rt = runtime(workers);
        let callers = rt.block_on(async {
            let net = Network::new();
            let b = provider(&net).await;
            let mut callers = Vec::new();
            for i in 0..CALLER_AGENTS {
                let a = Agent::builder(format!("a{i}")).network(&net).spawn().await;
                let a = a.expect("a caller");
                // One call first, as in `agents()`: the bench measures calls to a provider
                // the callers know. Fifty calls of one agent that all start by discovering it
                // sent fifty discovery messages and then fifty requests, past the share of the
                // provider's inbox one sender may fill (`PER_SENDER_QUEUED`), and some were
                // refused.
                assert_eq!(a.call("echo", 1).await.expect("a call"), Value::Int(1));
                callers.push(a);
            }
            (b, callers)
        });
        g.bench_function(
            BenchmarkId::new("selflet_1000_callers", format!("{workers} worker(s)")),
            |bn| {
                bn.to_async(&rt).iter(|| {
                    let agents = callers.1.clone();
                    async move {
                        let tasks: Vec<_> = (0..CALLERS)
                            .map(|i| {
                                let a = agents[i % CALLER_AGENTS].clone();
                                tokio::spawn(async move {
                                    for i in 0..per {
                                        a.call("echo", i as i64).await.expect("answered");
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.expect("caller");
                        }
                    }
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, latency, throughput);
criterion_main!(benches);
