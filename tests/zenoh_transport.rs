//! The Zenoh transport within one test process: several Zenoh sessions connected over
//! loopback, each standing for a process. Calls, teaching, membership, failover, and what
//! happens to malformed and oversized messages. Zenoh needs tokio's multi-thread runtime.
#![cfg(feature = "zenoh")]

#[path = "support/loopback.rs"]
mod loopback;

use std::sync::Arc;
use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::negotiation::Outcome;
use selflet::transport::{Security, Transport, Zenoh, ZenohConfig};
use selflet::{Agent, AgentHandle, OfferMode, OfferModes, Service, SourceFile, Value};

use loopback::{bare_session, connecting, free_endpoint, fresh_keys, listening, sees};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every test ends within this, or fails: a hanging call is a bug, not a slow machine.
const BOUND: Duration = Duration::from_secs(30);

async fn listener(namespace: &str) -> (Zenoh, String) {
    listening(namespace, Security::Open).await
}

async fn connected(namespace: &str, endpoint: &str) -> Zenoh {
    connecting(namespace, endpoint, Security::Open).await
}

fn shipped(name: &str) -> Behaviour {
    Behaviour::load(format!("{ROOT}/behaviors/{name}.yaml")).expect("shipped behaviour")
}

fn inline(name: &str, yaml: &str) -> Behaviour {
    Behaviour::parse(SourceFile::new(format!("{name}.yaml"), yaml)).expect("valid behaviour")
}

async fn provider_of_123(zenoh: &Zenoh) -> AgentHandle {
    let both = OfferModes::CAN_DO | OfferModes::CAN_TEACH;
    let mut s1 = Service::new("service1", both);
    s1.requires = vec!["service2".into(), "service3".into()];
    Agent::builder("b")
        .transport(Arc::new(zenoh.clone()))
        .behaviour(shipped("service1"))
        .behaviour(shipped("service2"))
        .behaviour(shipped("service3"))
        .service(s1)
        .service(Service::new("service2", both))
        .service(Service::new("service3", both))
        .spawn()
        .await
        .expect("b spawns")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_in_two_sessions_call_and_teach_each_other() {
    tokio::time::timeout(BOUND, async {
        // Teaching across processes needs proof of who teaches: secure mode, one key
        // directory as on one machine.
        let security = fresh_keys("call");
        let (za, endpoint) = listening("call", security.clone()).await;
        let zb = connecting("call", &endpoint, security).await;
        let a = Agent::builder("a")
            .transport(Arc::new(za.clone()))
            .spawn()
            .await
            .unwrap();
        let b = provider_of_123(&zb).await;
        sees(&za, "b").await;

        // Called across sessions, can-do: B runs service1, which calls 2 and 3 locally.
        let out = a.call("service1", Value::map([("n", Value::Int(2))])).await;
        assert!(out.is_ok(), "{out:?}");
        let counters = za.counters();
        assert_eq!(counters.by_kind.get("request"), Some(&1), "{counters:?}");
        // B counts its answer once it is on the wire, so A may hold it a moment before.
        while !zb.counters().by_kind.contains_key("result") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            zb.counters().by_kind.get("result"),
            Some(&1),
            "B answered the query once"
        );

        // Taught across sessions: the package travels, validates and installs.
        let learned = a
            .request_service("service2", &[OfferMode::CanTeach], Value::Null)
            .await
            .unwrap();
        assert_eq!(
            learned,
            Outcome::Learned {
                teacher: "b".into(),
                via: vec![]
            }
        );
        assert!(a.behaviours().contains("service2"));
        let before = za.counters().by_kind.get("request").copied();
        a.call("service2", Value::map([("n", Value::Int(1))]))
            .await
            .unwrap();
        assert_eq!(
            za.counters().by_kind.get("request").copied(),
            before,
            "a learned service runs locally"
        );

        a.shutdown().await;
        b.shutdown().await;
        zb.close().await;
        za.close().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_in_another_process_is_refused() {
    tokio::time::timeout(BOUND, async {
        let (za, endpoint) = listener("names").await;
        let zb = connected("names", &endpoint).await;
        let _x = Agent::builder("x")
            .transport(Arc::new(za.clone()))
            .spawn()
            .await
            .unwrap();
        sees(&zb, "x").await;
        let again = Agent::builder("x")
            .transport(Arc::new(zb.clone()))
            .spawn()
            .await;
        assert!(
            again.is_err_and(|e| e.to_string().contains("already on this network")),
            "a second `x` must be refused"
        );
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_vanishes_mid_call_is_failed_over_and_reported() {
    tokio::time::timeout(BOUND, async {
        let (za, endpoint) = listener("failover").await;
        let a = Agent::builder("a")
            .transport(Arc::new(za.clone()))
            // A time-out far beyond the test's bound: only the departure can end the call.
            .negotiation(selflet::negotiation::Config {
                timeout: Duration::from_secs(120),
                ..Default::default()
            })
            .spawn()
            .await
            .unwrap();
        let left = a.subscribe("neighbour.left").unwrap();
        let joined = a.subscribe("neighbour.joined").unwrap();

        // B1 takes a minute to answer; the call to it is in flight when it disappears.
        let z1 = connected("failover", &endpoint).await;
        let slow = inline(
            "work",
            "behaviour: work\ninitial: w\nstates:\n  w: { after: { 60s: d } }\n  d: { final: true, output: '\"slow\"' }\n",
        );
        let b1 = Agent::builder("b1")
            .transport(Arc::new(z1.clone()))
            .behaviour(slow)
            .service(Service::new("work", OfferModes::CAN_DO))
            .spawn()
            .await
            .unwrap();
        sees(&za, "b1").await;
        let caller = a.clone();
        let call = tokio::spawn(async move { caller.call("work", Value::Null).await });
        while !za.counters().by_kind.contains_key("request") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // B2 comes up while the call waits, then B1's process goes away.
        let z2 = connected("failover", &endpoint).await;
        let fast = inline(
            "work",
            "behaviour: work\ninitial: d\nstates:\n  d: { final: true, output: '\"fast\"' }\n",
        );
        let b2 = Agent::builder("b2")
            .transport(Arc::new(z2.clone()))
            .behaviour(fast)
            .service(Service::new("work", OfferModes::CAN_DO))
            .spawn()
            .await
            .unwrap();
        sees(&za, "b2").await;
        while !a
            .knowledge()
            .providers()
            .providers("work")
            .iter()
            .any(|p| p.agent == "b2")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(b1);
        z1.close().await;

        let out = call.await.unwrap();
        assert_eq!(out.unwrap(), Value::from("fast"), "failed over to b2");
        loop {
            let ev = left.recv().await.unwrap();
            if ev.payload().get("agent") == Some(&Value::from("b1")) {
                break;
            }
        }
        assert!(
            a.knowledge()
                .providers()
                .providers("work")
                .iter()
                .all(|p| p.agent != "b1"),
            "the departed provider is forgotten"
        );
        let mut saw_b2 = false;
        while let Ok(ev) = joined.try_recv() {
            saw_b2 |= ev.payload().get("agent") == Some(&Value::from("b2"));
        }
        assert!(saw_b2, "b2's arrival was published");
        a.shutdown().await;
        b2.shutdown().await;
        z2.close().await;
        za.close().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_messages_are_rejected_counted_and_harmless() {
    tokio::time::timeout(BOUND, async {
        let endpoint = free_endpoint();
        let config = ZenohConfig {
            listen: vec![endpoint.clone()],
            namespace: "garbage".into(),
            max_message_bytes: 4096,
            ..ZenohConfig::default()
        };
        let zb = Zenoh::open(&config).await.unwrap();
        let b = provider_of_123(&zb).await;

        // A bare Zenoh session, as a buggy or hostile client would use.
        let raw = bare_session(&endpoint).await;
        let inbox = "selflet/garbage/agents/b/inbox";
        let request = "selflet/garbage/agents/b/request";
        while zb.counters().rejected == 0 {
            // Puts before the route exists are lost; repeat until one arrives.
            raw.put(inbox, "{ not json").await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let base = zb.counters().rejected;
        raw.put(inbox, vec![b'x'; 10_000]).await.unwrap();
        raw.put(inbox, r#"{"from":"../etc","to":"b","id":1,"body":{"kind":"load","utilization":1.0}}"#)
            .await
            .unwrap();
        let replies = raw.get(request).payload("[1, 2, 3]").await.unwrap();
        let reply = replies.recv_async().await.expect("an error reply");
        let err = reply.result().expect_err("refused");
        let reason = String::from_utf8_lossy(&err.payload().to_bytes()).into_owned();
        assert!(reason.contains("not a selflet envelope"), "{reason}");
        while zb.counters().rejected < base + 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The agent is unharmed, and a well-formed query from the same client is served.
        let call = r#"{"from":"client","to":"b","id":7,"body":{"kind":"request","service":"service2","modes":["can_do"],"input":{"n":3}}}"#;
        let replies = raw.get(request).payload(call).await.unwrap();
        let reply = replies.recv_async().await.expect("a reply");
        let sample = reply.result().expect("served");
        let env: serde_json::Value = serde_json::from_slice(&sample.payload().to_bytes()).unwrap();
        assert_eq!(env["from"], "b");
        assert_eq!(env["id"], 7);
        assert_eq!(env["body"]["kind"], "reply");
        assert_eq!(env["body"]["reply"], "done");
        assert_eq!(b.lifecycle(), selflet::Lifecycle::Running);
        b.shutdown().await;
        raw.close().await.unwrap();
        zb.close().await;
    })
    .await
    .expect("bounded");
}
