//! What a peer without an agent's key can make agents over Zenoh believe: nothing, in secure
//! mode. Each forgery comes from a bare Zenoh session, as it would from any program on the
//! network, and claims to be an agent the receiver trusts.
#![cfg(feature = "zenoh")]

#[path = "support/loopback.rs"]
mod loopback;

use std::sync::Arc;
use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::transport::{Keyring, Refusal, Security, Transport, Zenoh};
use selflet::{Agent, AgentHandle, OfferModes, Service, SourceFile, Value};

use loopback::{bare_session, connecting, fresh_keys, listening, sees};

/// Every test ends within this, or fails: a hanging call is a bug, not a slow machine.
const BOUND: Duration = Duration::from_secs(30);

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn shipped(name: &str) -> Behaviour {
    Behaviour::load(format!("{ROOT}/behaviors/{name}.yaml")).expect("shipped behaviour")
}

/// An agent that trusts `b` to teach it.
async fn learner(z: &Zenoh) -> AgentHandle {
    Agent::builder("a")
        .transport(Arc::new(z.clone()))
        .negotiation(selflet::negotiation::Config {
            teachers: Some(vec!["b".into()]),
            ..Default::default()
        })
        .spawn()
        .await
        .unwrap()
}

/// A lesson for `service` claiming to come from `from`, as JSON.
fn lesson(from: &str, to: &str, service: &str) -> String {
    format!(
        r#"{{"from":"{from}","to":"{to}","id":0,"body":{{"kind":"lesson","service":"{service}","behaviour":"{service}","behaviour_source":"behaviour: {service}\ninitial: s\nstates:\n  s: {{ final: true, output: '\"pwned\"' }}\n","scripts":[],"requires":[]}}}}"#
    )
}

/// How many messages `z` refused as `why`.
fn refused(z: &Zenoh, why: Refusal) -> u64 {
    z.counters().refused.get(&why).copied().unwrap_or(0)
}

/// Puts `payload` on `key` until `z` has refused one more message as `why` (puts sent before
/// the route exists are lost).
async fn put_until_refused(
    raw: &zenoh::Session,
    key: &str,
    payload: &str,
    z: &Zenoh,
    why: Refusal,
) {
    let before = refused(z, why);
    while refused(z, why) == before {
        raw.put(key, payload).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_lesson_is_refused_in_secure_mode_even_with_a_key_of_the_forgers_own() {
    tokio::time::timeout(BOUND, async {
        let security = fresh_keys("forged-lesson");
        let Security::Secure { keys } = &security else {
            unreachable!()
        };
        // b has a key, and a has its public key; b itself is not even running.
        Keyring::new(keys).own_key("b").unwrap();
        let (za, endpoint) = listening("sec1", security.clone()).await;
        let a = learner(&za).await;
        let raw = bare_session(&endpoint).await;
        let inbox = "selflet/sec1/agents/a/inbox";
        // Issue 13, case 3: without a tag ...
        put_until_refused(
            &raw,
            inbox,
            &lesson("b", "a", "svc"),
            &za,
            Refusal::Unauthenticated,
        )
        .await;
        // ... and with a tag made with a key mallory calls `b`.
        let mallory_dir =
            std::env::temp_dir().join(format!("selflet-mallory-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&mallory_dir);
        let mallory = Keyring::new(&mallory_dir);
        mallory.own_key("b").unwrap();
        mallory.pin("a", Keyring::new(keys).public_key("a").unwrap());
        let payload = lesson("b", "a", "svc");
        let tag = mallory.tag("b", "a", payload.as_bytes()).unwrap();
        let before = refused(&za, Refusal::Unauthenticated);
        raw.put(inbox, payload)
            .attachment(tag.to_vec())
            .await
            .unwrap();
        while refused(&za, Refusal::Unauthenticated) == before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(a.knowledge().service("svc").is_none());
        assert!(a.behaviours().names().is_empty());
        assert!(a.learned().is_empty());
        a.shutdown().await;
        raw.close().await.unwrap();
        za.close().await;
        std::fs::remove_dir_all(&mallory_dir).ok();
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_adverts_loads_and_replies_are_refused_and_the_real_reply_is_taken() {
    tokio::time::timeout(BOUND, async {
        let security = fresh_keys("forged-replies");
        let (za, endpoint) = listening("sec2", security.clone()).await;
        let zb = connecting("sec2", &endpoint, security).await;
        let a = learner(&za).await;
        let b = Agent::builder("b")
            .transport(Arc::new(zb.clone()))
            .behaviour(shipped("service2"))
            .service(Service::new("service2", OfferModes::CAN_DO))
            .spawn()
            .await
            .unwrap();
        sees(&za, "b").await;
        let raw = bare_session(&endpoint).await;
        let inbox = "selflet/sec2/agents/a/inbox";
        let advert = r#"{"from":"b","to":"a","id":0,"body":{"kind":"advert","services":[["evil",["can_do"]]]}}"#;
        put_until_refused(&raw, inbox, advert, &za, Refusal::Unauthenticated).await;
        let load = r#"{"from":"b","to":"a","id":0,"body":{"kind":"load","utilization":-1e300}}"#;
        put_until_refused(&raw, inbox, load, &za, Refusal::Unauthenticated).await;
        assert!(a.knowledge().providers().providers("evil").is_empty());
        assert!(!a.knowledge().loads().contains_key("b"));

        // Mallory answers every request to b as if she were b.
        let forger = raw
            .declare_queryable("selflet/sec2/agents/b/request")
            .callback(|query| {
                let Some(payload) = query.payload() else { return };
                let request: serde_json::Value =
                    serde_json::from_slice(&payload.to_bytes()).unwrap_or_default();
                let reply = serde_json::json!({
                    "from": "b", "to": request["from"], "id": request["id"],
                    "body": {"kind": "reply", "reply": "done", "value": "forged"}
                });
                let key = query.key_expr().clone();
                let _ = zenoh::Wait::wait(query.reply(key, reply.to_string()));
            })
            .await
            .unwrap();
        // Calls until the forger's queryable is known where a asks (declarations take a
        // moment to spread), and answered: every call gets the real b's answer.
        let before = refused(&za, Refusal::Unauthenticated);
        while refused(&za, Refusal::Unauthenticated) == before {
            let out = a
                .call("service2", Value::map([("n", Value::Int(21))]))
                .await
                .unwrap();
            assert_eq!(out, Value::Int(42), "the real b's answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(forger);
        a.shutdown().await;
        b.shutdown().await;
        raw.close().await.unwrap();
        zb.close().await;
        za.close().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_open_mode_anyone_may_call_and_no_one_may_teach_across_processes() {
    tokio::time::timeout(BOUND, async {
        let (za, endpoint) = listening("open1", Security::Open).await;
        let zb = connecting("open1", &endpoint, Security::Open).await;
        let a = learner(&za).await;
        let b = Agent::builder("b")
            .transport(Arc::new(zb.clone()))
            .behaviour(shipped("service2"))
            .service(Service::new("service2", OfferModes::CAN_DO | OfferModes::CAN_TEACH))
            .spawn()
            .await
            .unwrap();
        sees(&za, "b").await;
        let raw = bare_session(&endpoint).await;
        // A lesson claiming to be b's, who is a member and a's trusted teacher.
        let inbox = "selflet/open1/agents/a/inbox";
        while !a.refusals().contains_key(&Refusal::UntrustedTeacher) {
            raw.put(inbox, lesson("b", "a", "svc")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(a.knowledge().service("svc").is_none());
        // Not even b's real package: a does not ask what it would not accept.
        let err = a
            .request_service("service2", &[selflet::OfferMode::CanTeach], ())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a teacher"), "{err}");
        // Anyone calls, without a key, as the Python client of docs/protocol.md does.
        let call = r#"{"from":"py","to":"b","id":1,"body":{"kind":"request","service":"service2","modes":["can_do"],"input":{"n":3}}}"#;
        let replies = raw
            .get("selflet/open1/agents/b/request")
            .payload(call)
            .await
            .unwrap();
        let reply = replies.recv_async().await.unwrap().into_result().unwrap();
        let env: serde_json::Value = serde_json::from_slice(&reply.payload().to_bytes()).unwrap();
        assert_eq!(env["body"]["value"], 6);
        a.shutdown().await;
        b.shutdown().await;
        raw.close().await.unwrap();
        zb.close().await;
        za.close().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_secure_mode_a_request_without_a_tag_is_refused() {
    tokio::time::timeout(BOUND, async {
        let (zb, endpoint) = listening("sec3", fresh_keys("untagged")).await;
        let b = Agent::builder("b")
            .transport(Arc::new(zb.clone()))
            .behaviour(shipped("service2"))
            .service(Service::new("service2", OfferModes::CAN_DO))
            .spawn()
            .await
            .unwrap();
        let raw = bare_session(&endpoint).await;
        let call = r#"{"from":"py","to":"b","id":1,"body":{"kind":"request","service":"service2","modes":["can_do"],"input":{"n":3}}}"#;
        let reason = loop {
            let replies = raw
                .get("selflet/sec3/agents/b/request")
                .payload(call)
                .await
                .unwrap();
            if let Ok(reply) = replies.recv_async().await {
                let err = reply.into_result().expect_err("refused");
                break String::from_utf8_lossy(&err.payload().to_bytes()).into_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(reason.contains("not proven"), "{reason}");
        assert_eq!(refused(&zb, Refusal::Unauthenticated), 1);
        b.shutdown().await;
        raw.close().await.unwrap();
        zb.close().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_in_flight_is_not_taken_twice() {
    tokio::time::timeout(BOUND, async {
        let (zb, endpoint) = listening("dup", Security::Open).await;
        let slow = Behaviour::parse(SourceFile::new(
            "slow.yaml",
            "behaviour: slow\ninitial: s\nstates:\n  s: { after: { 1s: f } }\n  f: { final: true, output: '\"done\"' }\n",
        ))
        .unwrap();
        let b = Agent::builder("b")
            .transport(Arc::new(zb.clone()))
            .behaviour(slow)
            .service(Service::new("slow", OfferModes::CAN_DO))
            .spawn()
            .await
            .unwrap();
        let raw = bare_session(&endpoint).await;
        let key = "selflet/dup/agents/b/request";
        let call = |id: u64| {
            format!(r#"{{"from":"py","to":"b","id":{id},"body":{{"kind":"request","service":"slow","modes":["can_do"],"input":null}}}}"#)
        };
        // A first call until one is answered: the route to b exists from then on.
        let mut id = 100;
        loop {
            id += 1;
            let replies = raw.get(key).payload(call(id)).await.unwrap();
            if let Ok(reply) = replies.recv_async().await
                && reply.result().is_ok()
            {
                break;
            }
        }
        let first = raw.get(key).payload(call(5)).await.unwrap();
        while b.bus().topic_stats("service.request.incoming").map_or(0, |s| s.published) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // ... then the same id again, while the first is in flight.
        let second = raw.get(key).payload(call(5)).await.unwrap();
        let refusal = second.recv_async().await.unwrap().into_result().expect_err("refused");
        let reason = String::from_utf8_lossy(&refusal.payload().to_bytes()).into_owned();
        assert!(reason.contains("in flight"), "{reason}");
        let reply = first.recv_async().await.unwrap().into_result().unwrap();
        let env: serde_json::Value = serde_json::from_slice(&reply.payload().to_bytes()).unwrap();
        assert_eq!(env["body"]["value"], "done");
        b.shutdown().await;
        raw.close().await.unwrap();
        zb.close().await;
    })
    .await
    .expect("bounded");
}
