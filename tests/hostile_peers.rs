//! What a hostile or broken peer can send, on the in-process network, and what comes of it:
//! nothing is believed unchecked, nothing is half installed, nothing an agent has is
//! replaced, state a peer can grow stays bounded, and every refusal is counted.

use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::knowledge::{MAX_PROVIDERS_PER_SERVICE, Service};
use selflet::negotiation::{AttemptError, CallError, MAX_ADVERT_SERVICES, Outcome};
use selflet::transport::{
    Envelope, Incoming, Membership, Message, Refusal, Reply, TeachingPackage, Transport,
};
use selflet::{Agent, AgentHandle, Network, OfferMode, OfferModes, SourceFile, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn shipped(name: &str) -> Behaviour {
    Behaviour::load(format!("{ROOT}/behaviors/{name}.yaml")).unwrap()
}

fn both() -> OfferModes {
    OfferModes::CAN_DO | OfferModes::CAN_TEACH
}

fn n(v: i64) -> Value {
    Value::map([("n", Value::Int(v))])
}

/// B of the teaching demo: service2 doubles its input.
async fn teacher(net: &Network, name: &str) -> AgentHandle {
    Agent::builder(name)
        .network(net)
        .behaviour(shipped("service2"))
        .behaviour(shipped("service3"))
        .service(Service::new("service2", both()))
        .service(Service::new("service3", both()))
        .ability("spare_capacity", |_input: Value| async {
            Ok(Value::Int(800))
        })
        .spawn()
        .await
        .unwrap()
}

/// A package for `service` whose behaviour answers `"pwned"`, with an ability script.
fn forged(service: &str, ability: &str) -> TeachingPackage {
    TeachingPackage {
        service: service.into(),
        behaviour: service.into(),
        behaviour_source: format!(
            "behaviour: {service}\ninitial: s\nstates:\n  s: {{ do: {{ ability: {ability} }}, on: {{ done: f }} }}\n  f: {{ final: true, output: '\"pwned\"' }}\n"
        ),
        scripts: vec![("evil.rhai".into(), format!("fn {ability}(i) {{ i }}"))],
        requires: vec![],
    }
}

fn send(net: &Network, from: &str, to: &str, id: u64, body: Message) {
    let _ = net.send(Envelope {
        trace: 0,
        from: from.into(),
        to: to.into(),
        id,
        body,
    });
}

/// Lets the agents handle what was sent.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A package for `service` implemented by behaviour `behaviour`, which answers its own name
/// through an ability of the lesson's script.
fn variant(service: &str, behaviour: &str, ability: &str) -> TeachingPackage {
    TeachingPackage {
        behaviour: behaviour.into(),
        behaviour_source: format!(
            "behaviour: {behaviour}\ninitial: s\nstates:\n  s: {{ do: {{ ability: {ability} }}, on: {{ done: f }} }}\n  f: {{ final: true, output: '\"{behaviour}\"' }}\n"
        ),
        scripts: vec![(
            format!("{ability}.rhai"),
            format!("fn {ability}(i) {{ i }}"),
        )],
        ..forged(service, ability)
    }
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_to_another_behaviour_removes_what_the_earlier_lesson_left() {
    let net = Network::new();
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    a.knowledge().allow_upgrade("web", true);
    let _t = net.join("t").unwrap();
    for (behaviour, ability) in [("web_a", "xa"), ("web_b", "xb"), ("web_a", "xa")] {
        send(
            &net,
            "t",
            "a",
            0,
            Message::Lesson(Box::new(variant("web", behaviour, ability))),
        );
        settle().await;
        assert_eq!(a.call("web", ()).await.unwrap(), Value::from(behaviour));
        // Only the lesson in force is installed: the earlier one's leftovers would make
        // teaching it again a clash with itself.
        let other = if behaviour == "web_a" {
            ("web_b", "xb")
        } else {
            ("web_a", "xa")
        };
        assert!(!a.behaviours().contains(other.0) && !a.abilities().contains(other.1));
    }
    assert_eq!(a.learned()["web"].upgrades, 2);
    assert_eq!(a.refusals().get(&Refusal::BadPackage), None);
}

#[tokio::test(start_paused = true)]
async fn a_lesson_from_a_name_no_agent_has_is_refused_and_changes_nothing() {
    let net = Network::new();
    let b = teacher(&net, "b").await;
    send(
        &net,
        "mallory",
        "b",
        0,
        Message::Lesson(Box::new(forged("service2", "x"))),
    );
    settle().await;
    assert_eq!(b.call("service2", n(21)).await.unwrap(), Value::Int(42));
    assert_eq!(b.refusals().get(&Refusal::NotMember), Some(&1));
    assert!(!b.abilities().contains("x"));
}

#[tokio::test(start_paused = true)]
async fn a_lesson_never_replaces_a_service_a_behaviour_or_an_ability_the_agent_has() {
    let net = Network::new();
    let b = teacher(&net, "b").await;
    let _mallory = net.join("mallory").unwrap();
    // Its own service2 ...
    send(
        &net,
        "mallory",
        "b",
        0,
        Message::Lesson(Box::new(forged("service2", "x"))),
    );
    // ... a new service whose script would replace its native ability ...
    send(
        &net,
        "mallory",
        "b",
        0,
        Message::Lesson(Box::new(forged("service7", "spare_capacity"))),
    );
    // ... and one whose behaviour is named like one b has.
    let mut same_behaviour = forged("service8", "y");
    same_behaviour.behaviour = "service3".into();
    same_behaviour.behaviour_source = same_behaviour
        .behaviour_source
        .replace("behaviour: service8", "behaviour: service3");
    send(
        &net,
        "mallory",
        "b",
        0,
        Message::Lesson(Box::new(same_behaviour)),
    );
    settle().await;
    assert_eq!(b.call("service2", n(21)).await.unwrap(), Value::Int(42));
    assert_eq!(b.call("service3", n(1)).await.unwrap(), Value::Int(2));
    assert_eq!(
        b.abilities()
            .call("spare_capacity", Value::Null)
            .await
            .unwrap(),
        Value::Int(800),
        "the native ability is still the application's"
    );
    assert!(b.knowledge().service("service7").is_none());
    assert!(b.knowledge().service("service8").is_none());
    assert!(!b.abilities().contains("y"));
    assert_eq!(b.refusals().get(&Refusal::BadPackage), Some(&3));
    assert!(b.learned().is_empty());
}

#[tokio::test(start_paused = true)]
async fn only_a_policy_lets_a_later_lesson_upgrade_what_was_taught_and_it_is_recorded() {
    let net = Network::new();
    let _b = teacher(&net, "b").await;
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    a.request_service("service2", &[OfferMode::CanTeach], ())
        .await
        .unwrap();
    assert_eq!(a.learned()["service2"].teacher, "b");
    let _c = net.join("c").unwrap();
    let lesson = || Message::Lesson(Box::new(forged("service2", "x")));
    send(&net, "c", "a", 0, lesson());
    settle().await;
    assert_eq!(a.call("service2", n(2)).await.unwrap(), Value::Int(4));
    assert_eq!(a.refusals().get(&Refusal::BadPackage), Some(&1));

    a.apply(selflet::policy::Action::AllowUpgrade {
        service: "service2".into(),
        allowed: true,
    })
    .await
    .unwrap();
    send(&net, "c", "a", 0, lesson());
    settle().await;
    assert_eq!(
        a.call("service2", n(2)).await.unwrap(),
        Value::from("pwned")
    );
    let learned = &a.learned()["service2"];
    assert_eq!((learned.teacher.as_str(), learned.upgrades), ("c", 1));

    // A learned service can be forgotten, with what its lesson installed.
    a.forget("service2").await.unwrap();
    assert!(a.knowledge().service("service2").is_none());
    assert!(!a.behaviours().contains("service2"));
    assert!(!a.abilities().contains("x"));
    assert!(
        a.forget("service2").await.is_err(),
        "nothing left to forget"
    );
}

/// A peer that answers every request with `reply(service)`.
fn answer_with(net: &Network, member: Membership, reply: impl Fn(&str) -> Reply + Send + 'static) {
    let net = net.clone();
    tokio::spawn(async move {
        while let Some(Incoming::Message { envelope: env, .. }) = member.inbox.recv().await {
            if let Message::Request { service, .. } = &env.body {
                let body = Message::Reply(reply(service));
                send(&net, &env.to, &env.from, env.id, body);
            }
        }
    });
}

#[tokio::test(start_paused = true)]
async fn a_package_is_accepted_only_in_answer_to_a_teaching_request_for_that_service() {
    let net = Network::new();
    let mallory = net.join("mallory").unwrap();
    // It answers every request with a package of another service.
    answer_with(&net, mallory, |_| {
        Reply::Teach(Box::new(forged("service8", "x")))
    });
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    a.knowledge()
        .providers()
        .heard("service2", "mallory", both())
        .unwrap();
    // Asked to do it: a package is not an answer.
    let err = a.call("service2", n(1)).await.unwrap_err();
    assert!(
        matches!(err.attempts(), [a] if matches!(a.error, AttemptError::Unexpected(_))),
        "{err}"
    );
    // Asked to teach it: a package for another service is not one either, and the request
    // ends instead of asking again and again.
    let err = a
        .request_service("service2", &[OfferMode::CanTeach], ())
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Unavailable { .. }), "{err}");
    assert_eq!(a.refusals().get(&Refusal::UnaskedPackage), Some(&2));
    assert!(a.knowledge().service("service8").is_none());
    assert!(!a.abilities().contains("x"));
}

#[tokio::test(start_paused = true)]
async fn a_package_whose_last_check_fails_installs_none_of_its_scripts() {
    let net = Network::new();
    let mallory = net.join("mallory").unwrap();
    answer_with(&net, mallory, |service| {
        let mut pkg = forged(service, "needed");
        // The script compiles, but the behaviour needs an ability nobody has.
        pkg.scripts = vec![("ok.rhai".into(), "fn unrelated(i) { i }".into())];
        Reply::Teach(Box::new(pkg))
    });
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    a.knowledge()
        .providers()
        .heard("service2", "mallory", both())
        .unwrap();
    let err = a
        .request_service("service2", &[OfferMode::CanTeach], ())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needed"), "{err}");
    assert!(
        !a.abilities().contains("unrelated"),
        "its script is not installed"
    );
    assert!(a.behaviours().names().is_empty());
}

#[tokio::test(start_paused = true)]
async fn adverts_and_loads_are_taken_only_from_members_and_only_when_sane() {
    let net = Network::new();
    let b = teacher(&net, "b").await;
    let advert = |n: usize| Message::Advert {
        services: (0..n)
            .map(|i| (format!("s{i}").into(), OfferModes::CAN_DO))
            .collect(),
    };
    send(&net, "ghost", "b", 0, advert(1));
    let _m = net.join("mallory").unwrap();
    send(&net, "mallory", "b", 0, advert(MAX_ADVERT_SERVICES + 1));
    for utilization in [-1e300, f64::NAN, f64::INFINITY, 2e6] {
        send(&net, "mallory", "b", 0, Message::Load { utilization });
    }
    settle().await;
    assert!(b.knowledge().providers().services().is_empty());
    assert!(!b.knowledge().loads().contains_key("mallory"));
    let refused = b.refusals();
    assert_eq!(refused.get(&Refusal::NotMember), Some(&1));
    assert_eq!(refused.get(&Refusal::OverCap), Some(&1));
    assert_eq!(refused.get(&Refusal::BadLoad), Some(&4));
    send(&net, "mallory", "b", 0, Message::Load { utilization: 0.5 });
    settle().await;
    assert_eq!(b.knowledge().loads().get("mallory"), Some(&0.5));
}

#[tokio::test(start_paused = true)]
async fn the_provider_directory_keeps_a_bounded_number_of_providers_per_service() {
    let net = Network::new();
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    let mut members = Vec::new();
    for i in 0..MAX_PROVIDERS_PER_SERVICE + 10 {
        let name = format!("p{i}");
        members.push(net.join(&name).unwrap());
        let advert = Message::Advert {
            services: vec![("popular".into(), OfferModes::CAN_DO)],
        };
        send(&net, &name, "a", 0, advert);
        settle().await;
    }
    let known = a.knowledge().providers().providers("popular").len();
    assert_eq!(known, MAX_PROVIDERS_PER_SERVICE);
    assert_eq!(a.refusals().get(&Refusal::OverCap), Some(&10));
    // Members that left are forgotten as soon as a request finds them gone.
    drop(members);
    let err = a.call("popular", ()).await.unwrap_err();
    assert_eq!(err.attempts().len(), 3, "the first and two retries: {err}");
    assert_eq!(
        a.knowledge().providers().providers("popular").len(),
        MAX_PROVIDERS_PER_SERVICE - 3
    );
}

#[tokio::test(start_paused = true)]
async fn a_reply_from_anyone_but_the_agent_asked_or_after_the_call_is_refused_and_the_real_one_taken()
 {
    let net = Network::new();
    let _mallory = net.join("mallory").unwrap();
    let b = net.join("b").unwrap();
    // `b` answers after a while; before it does, mallory answers the same request id, with a
    // value and with a package.
    let relay = net.clone();
    tokio::spawn(async move {
        while let Some(Incoming::Message { envelope: env, .. }) = b.inbox.recv().await {
            if let Message::Request { .. } = &env.body {
                let forged = [
                    Reply::done(Value::from("forged")),
                    Reply::Teach(Box::new(forged("svc", "x"))),
                ];
                for r in forged {
                    send(&relay, "mallory", &env.from, env.id, Message::Reply(r));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                let real = || Message::Reply(Reply::done(Value::Int(2)));
                send(&relay, "b", &env.from, env.id, real());
                settle().await;
                // Once more, after the call has ended.
                send(&relay, "b", &env.from, env.id, real());
            }
        }
    });
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    a.knowledge()
        .providers()
        .heard("svc", "b", OfferModes::CAN_DO)
        .unwrap();
    assert_eq!(a.call("svc", ()).await.unwrap(), Value::Int(2));
    settle().await;
    settle().await;
    assert_eq!(a.refusals().get(&Refusal::UnsolicitedReply), Some(&3));
    assert!(
        a.knowledge().service("svc").is_none(),
        "nothing was learned"
    );
}

#[tokio::test(start_paused = true)]
async fn an_advertised_quality_out_of_range_in_an_answer_is_refused_and_the_answer_kept() {
    let net = Network::new();
    let b = net.join("b").unwrap();
    let relay = net.clone();
    tokio::spawn(async move {
        let mut adverts = [7.0, f64::NAN, -0.5, 0.4].into_iter();
        while let Some(Incoming::Message { envelope: env, .. }) = b.inbox.recv().await {
            if let Message::Request { .. } = &env.body {
                let reply = Reply::Done {
                    output: Value::Int(2),
                    advertised: adverts.next(),
                };
                send(&relay, "b", &env.from, env.id, Message::Reply(reply));
            }
        }
    });
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    a.knowledge()
        .providers()
        .heard("svc", "b", OfferModes::CAN_DO)
        .unwrap();
    let advertised = || a.knowledge().providers().advertised("svc", "b");
    for _ in 0..3 {
        assert_eq!(a.call("svc", ()).await.unwrap(), Value::Int(2));
        assert_eq!(advertised(), None, "nothing out of [0, 1] is taken");
    }
    assert_eq!(a.refusals().get(&Refusal::Malformed), Some(&3));
    assert_eq!(a.call("svc", ()).await.unwrap(), Value::Int(2));
    assert_eq!(advertised(), Some(0.4));
}

#[tokio::test(start_paused = true)]
async fn duplicate_request_ids_are_refused_and_the_first_request_still_answered() {
    let net = Network::new();
    let slow = Behaviour::parse(SourceFile::new(
        "slow.yaml",
        "behaviour: slow\ninitial: s\nstates:\n  s: { after: { 2s: f } }\n  f: { final: true, output: '\"done\"' }\n",
    ))
    .unwrap();
    let b = Agent::builder("b")
        .network(&net)
        .behaviour(slow)
        .service(Service::new("slow", OfferModes::CAN_DO))
        .spawn()
        .await
        .unwrap();
    let m = net.join("mallory").unwrap();
    let request = || Message::Request {
        service: "slow".into(),
        modes: vec![OfferMode::CanDo],
        input: Value::Null,
        hops: 0,
    };
    send(&net, "mallory", "b", 7, request());
    send(&net, "mallory", "b", 7, request());
    let mut replies = Vec::new();
    while replies.len() < 2 {
        if let Some(Incoming::Message { envelope, .. }) = m.inbox.recv().await
            && let Message::Reply(r) = envelope.body
        {
            replies.push(r);
        }
    }
    assert!(
        matches!(&replies[0], Reply::Refused(r) if r.contains("in flight")),
        "{replies:?}"
    );
    assert_eq!(replies[1], Reply::done(Value::from("done")));
    assert_eq!(b.refusals().get(&Refusal::DuplicateRequest), Some(&1));
}

/// A teacher that also offers `nap`, whose answer waits ten seconds, and `echo`, answered
/// without waiting.
async fn napper(net: &Network, name: &str) -> AgentHandle {
    let parse = |name: &str, text: &str| Behaviour::parse(SourceFile::new(name, text)).unwrap();
    let nap = parse(
        "nap.yaml",
        "behaviour: nap\ninitial: s\nstates:\n  s: { do: { ability: nap }, on: { done: f } }\n  f: { final: true }\n",
    );
    let echo = parse(
        "echo.yaml",
        "behaviour: echo\ninitial: e\nstates:\n  e: { final: true, output: input }\n",
    );
    Agent::builder(name)
        .network(net)
        .behaviour(shipped("service2"))
        .behaviour(shipped("service3"))
        .behaviour(nap)
        .behaviour(echo)
        .service(Service::new("service2", both()))
        .service(Service::new("service3", both()))
        .service(Service::new("nap", OfferModes::CAN_DO))
        .service(Service::new("echo", OfferModes::CAN_DO))
        .ability("spare_capacity", |_input: Value| async {
            Ok(Value::Int(800))
        })
        .ability("nap", |_input: Value| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(Value::Null)
        })
        .spawn()
        .await
        .unwrap()
}

/// A network with `napper` b, mallory (a bare member, whose inbox nobody reads) and a.
async fn flood_scene() -> (Network, AgentHandle, Membership, AgentHandle) {
    let net = Network::new();
    let b = napper(&net, "b").await;
    let m = net.join("mallory").unwrap();
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    (net, b, m, a)
}

/// Mallory sends `count` messages to `to` without pause, each made by `body(i)`; returns how
/// many were refused.
fn flood(net: &Network, to: &str, count: u64, body: impl Fn(u64) -> Message) -> u64 {
    (0..count)
        .map(|i| {
            let sent = net.send(Envelope {
                trace: 0,
                from: "mallory".into(),
                to: to.into(),
                id: i,
                body: body(i),
            });
            u64::from(sent.is_err())
        })
        .sum()
}

fn request_of(service: &str) -> Message {
    Message::Request {
        service: service.into(),
        modes: vec![OfferMode::CanDo],
        input: n(1),
        hops: 0,
    }
}

/// One-way messages are queued: a peer flooding them fills its own share of the inbox, and the
/// rest is refused. Requests whose answer waits each become a task: a peer may have only so
/// many of them in flight, and the rest are refused with an answer saying so. Others' calls
/// get through.
#[tokio::test(start_paused = true)]
async fn a_flooding_peer_fills_its_own_share_and_the_others_calls_get_through() {
    let (net, b, m, a) = flood_scene().await;
    // Loads, then requests of a service that waits, far beyond b's inbox.
    let flooded = 5000;
    let refused = flood(&net, "b", flooded, |i| {
        if i % 2 == 0 {
            Message::Load { utilization: 0.1 }
        } else {
            request_of("nap")
        }
    });
    let (loads, requests) = (flooded / 2, flooded / 2);
    let share = selflet::transport::PER_SENDER_QUEUED as u64;
    assert_eq!(
        refused,
        loads - share,
        "loads past mallory's share are refused"
    );
    let counters = net.counters();
    assert_eq!(counters.refused.get(&Refusal::Flooding), Some(&refused));
    let in_flight = selflet::negotiation::MAX_IN_FLIGHT_PER_PEER as u64;
    assert_eq!(
        b.refusals().get(&Refusal::TooManyInFlight),
        Some(&(requests - in_flight)),
        "requests past mallory's share in flight are refused"
    );
    let Some(Incoming::Message { envelope, .. }) = m.inbox.recv().await else {
        panic!("an answer");
    };
    assert!(
        matches!(&envelope.body, Message::Reply(Reply::Refused(r)) if r.contains("in flight")),
        "{envelope:?}"
    );
    assert_eq!(a.call("service2", n(21)).await.unwrap(), Value::Int(42));
}

/// Requests answered without waiting are answered as they are delivered, on the sender's
/// own time: a peer flooding them takes no share of the provider's inbox, each gets its
/// answer (until the flooder's own inbox is full), and the others' calls get through.
#[tokio::test(start_paused = true)]
async fn a_flood_of_requests_answered_at_once_costs_the_flooder_its_own_time() {
    let (net, b, m, a) = flood_scene().await;
    let flooded = 3000;
    let refused = flood(&net, "b", flooded, |_| request_of("echo"));
    assert_eq!(
        refused,
        0,
        "every request was taken: {:?}",
        net.counters().refused
    );
    assert!(b.refusals().is_empty(), "{:?}", b.refusals());
    // Every request was answered before its send returned: mallory's inbox holds as many
    // answers as fit, and the transport refused the rest.
    assert_eq!(m.inbox.len(), selflet::transport::INBOX_CAPACITY);
    let counters = net.counters();
    assert_eq!(
        counters.refused.get(&Refusal::InboxFull).copied(),
        Some(flooded - selflet::transport::INBOX_CAPACITY as u64)
    );
    assert_eq!(counters.refused.get(&Refusal::Flooding), None);
    let Some(Incoming::Message { envelope, .. }) = m.inbox.recv().await else {
        panic!("an answer");
    };
    assert_eq!(envelope.body, Message::Reply(Reply::done(n(1))));
    assert_eq!(a.call("service2", n(21)).await.unwrap(), Value::Int(42));
}

#[tokio::test(start_paused = true)]
async fn a_learner_asks_to_be_taught_only_by_teachers_it_trusts() {
    let net = Network::new();
    let _b = teacher(&net, "b").await;
    let _c = teacher(&net, "c").await;
    let a = Agent::builder("a")
        .network(&net)
        .negotiation(selflet::negotiation::Config {
            teachers: Some(vec!["c".into()]),
            ..Default::default()
        })
        .spawn()
        .await
        .unwrap();
    let outcome = a
        .request_service("service2", &[OfferMode::CanTeach], ())
        .await
        .unwrap();
    assert!(
        matches!(&outcome, Outcome::Learned { teacher, .. } if teacher == "c"),
        "{outcome:?}"
    );
    assert_eq!(
        net.counters().by_kind.get("teaching"),
        Some(&1),
        "b was not asked to teach"
    );
}
