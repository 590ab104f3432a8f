//! Services between agents on the in-process network, on a paused clock: can-do, teaching,
//! referrals, discovery, time-outs and retries, refused and invalid packages, counters.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::negotiation::{Attempt, AttemptError, CallError, Outcome};
use selflet::transport::{Envelope, Incoming, Message, Reply, TeachingPackage, Transport};
use selflet::{Agent, AgentHandle, Network, OfferMode, OfferModes, Service, SourceFile, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn shipped(name: &str) -> Behaviour {
    Behaviour::load(format!("{ROOT}/behaviors/{name}.yaml")).unwrap()
}

fn both() -> OfferModes {
    OfferModes::CAN_DO | OfferModes::CAN_TEACH
}

/// B of the paper: offers service1, 2 and 3, can do and can teach.
async fn provider(net: &Network, name: &str) -> AgentHandle {
    let mut s1 = Service::new("service1", both());
    s1.requires = vec!["service2".into(), "service3".into()];
    Agent::builder(name)
        .network(net)
        .behaviour(shipped("service1"))
        .behaviour(shipped("service2"))
        .behaviour(shipped("service3"))
        .service(s1)
        .service(Service::new("service2", both()))
        .service(Service::new("service3", both()))
        .spawn()
        .await
        .unwrap()
}

fn n(v: i64) -> Value {
    Value::map([("n", Value::Int(v))])
}

#[tokio::test(start_paused = true)]
async fn a_can_do_round_trip_and_counters_that_match_the_messages_sent() {
    let net = Network::new();
    let b = provider(&net, "b").await;
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    // a offers nothing, so it stays quiet; its first call discovers b.
    a.call("service2", n(1)).await.unwrap();
    let outgoing = a.subscribe("service.request.outgoing").unwrap();
    let executed = b.subscribe("service.executed").unwrap();
    let before = net.counters();
    for i in 0..3 {
        // service1(n) = service2(n) + service3(n) = 2n + (n + 1), run by b.
        assert_eq!(
            a.call("service1", n(i)).await.unwrap(),
            Value::Int(3 * i + 1)
        );
    }
    let after = net.counters();
    let delta = |kind: &str| {
        after.by_kind.get(kind).copied().unwrap_or(0)
            - before.by_kind.get(kind).copied().unwrap_or(0)
    };
    assert_eq!(
        (delta("request"), delta("result"), delta("discover")),
        (3, 3, 0)
    );
    let pair = |c: &selflet::transport::MessageCounters, f: &str, t: &str| {
        c.by_pair
            .get(&(f.to_owned(), t.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(pair(&after, "a", "b") - pair(&before, "a", "b"), 3);
    assert_eq!(pair(&after, "b", "a") - pair(&before, "b", "a"), 3);
    assert_eq!(after.total() - before.total(), 6, "nothing else was sent");
    assert_eq!(std::iter::from_fn(|| outgoing.try_recv().ok()).count(), 3);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(std::iter::from_fn(|| executed.try_recv().ok()).count(), 3);
}

#[tokio::test(start_paused = true)]
async fn after_teaching_the_service_runs_locally_and_no_request_leaves_the_learner() {
    let net = Network::new();
    let b = provider(&net, "b").await;
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    let learned = a.subscribe("service.learned").unwrap();
    let taught = b.subscribe("service.taught").unwrap();
    let outcome = a
        .request_service("service2", &[OfferMode::CanTeach], ())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Learned {
            teacher: "b".into(),
            via: vec![]
        }
    );
    assert_eq!(
        learned.recv().await.unwrap().payload().get("service"),
        Some(&Value::from("service2"))
    );
    assert_eq!(
        taught.recv().await.unwrap().payload().get("learner"),
        Some(&Value::from("a"))
    );
    assert!(a.knowledge().can_run("service2"));
    let requests_before = net.counters().by_kind.get("request").copied();
    assert_eq!(a.call("service2", n(4)).await.unwrap(), Value::Int(8));
    assert_eq!(
        net.counters().by_kind.get("request").copied(),
        requests_before,
        "no request left a"
    );
    // A taught service carries the names of what it requires, not their implementations.
    a.request_service("service1", &[OfferMode::CanTeach], ())
        .await
        .unwrap();
    assert_eq!(
        a.knowledge().service("service1").unwrap().requires,
        ["service2", "service3"]
    );
    assert!(a.knowledge().requires().contains(&"service3".to_owned()));
    assert!(!a.knowledge().can_run("service3"));
    // service1 now runs on a; service2 locally, service3 still on b.
    assert_eq!(a.call("service1", n(2)).await.unwrap(), Value::Int(7));
}

#[tokio::test(start_paused = true)]
async fn a_referral_is_followed_to_the_referred_provider() {
    let net = Network::new();
    let b = provider(&net, "b").await;
    // c knows who can do service2, and only offers that knowledge.
    let c = Agent::builder("c")
        .network(&net)
        .service(Service::known("service2", OfferModes::KNOWS_WHO_CAN_DO))
        .spawn()
        .await
        .unwrap();
    c.knowledge()
        .providers()
        .heard("service2", "b", both())
        .unwrap();
    // a only talks to c at first: it knows of no one else.
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    a.knowledge().providers().forget("b");
    a.knowledge()
        .providers()
        .heard("service2", "c", OfferModes::KNOWS_WHO_CAN_DO)
        .unwrap();
    let modes = [OfferMode::CanDo, OfferMode::KnowsWhoCanDo];
    let outcome = a.request_service("service2", &modes, n(5)).await.unwrap();
    assert_eq!(
        outcome,
        Outcome::Done {
            value: Value::Int(10),
            provider: "b".into(),
            via: vec!["c".into()]
        }
    );
    assert_eq!(net.counters().by_kind.get("referral"), Some(&1));
    assert!(
        a.knowledge()
            .providers()
            .providers("service2")
            .iter()
            .any(|p| p.agent == "b")
    );
    drop(b);
}

#[tokio::test(start_paused = true)]
async fn with_no_known_provider_the_request_is_published_to_whoever_offers_the_service() {
    let net = Network::new();
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    // b starts after a and its advert reaches a; a forgets it, to start from nothing.
    let _b = provider(&net, "b").await;
    a.knowledge().providers().forget("b");
    assert!(a.knowledge().providers().providers("service3").is_empty());
    assert_eq!(a.call("service3", n(1)).await.unwrap(), Value::Int(2));
    assert_eq!(net.counters().by_kind.get("discover"), Some(&1));
    // Nobody offers service9: the call ends with an error, not silence.
    assert!(matches!(
        a.call("service9", ()).await,
        Err(CallError::NoProvider { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_silent_provider_times_out_and_the_call_is_retried_on_another() {
    let net = Network::new();
    // b1 is on the network and never answers.
    let _b1 = net.join("b1").unwrap();
    let _b2 = provider(&net, "b2").await;
    let a = Agent::builder("a")
        .network(&net)
        .negotiation(selflet::negotiation::Config {
            choice: std::sync::Arc::new(selflet::negotiation::FirstKnown),
            ..Default::default()
        })
        .spawn()
        .await
        .unwrap();
    let providers = a.knowledge().providers();
    providers.forget("b2");
    providers
        .heard("service2", "b1", OfferModes::CAN_DO)
        .unwrap();
    providers.heard("service2", "b2", both()).unwrap();
    let failures = a.subscribe("service.failed").unwrap();
    let start = tokio::time::Instant::now();
    assert_eq!(a.call("service2", n(3)).await.unwrap(), Value::Int(6));
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(5),
        "one time-out, then b2 answered at once"
    );
    let f = failures.try_recv().unwrap();
    assert_eq!(f.payload().get("provider"), Some(&Value::from("b1")));
    assert_eq!(
        providers
            .providers("service2")
            .iter()
            .find(|p| p.agent == "b1")
            .unwrap()
            .failures,
        1
    );
    // The failed provider is passed over next time: no second time-out.
    let start = tokio::time::Instant::now();
    a.call("service2", n(3)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

/// A behaviour around one ability, answering what the ability gives.
fn around(service: &str, ability: &str) -> Behaviour {
    let source = format!(
        "behaviour: {service}\ninitial: s\nstates:\n  s: {{ do: {{ ability: {ability}, args: input, save: out }}, on: {{ done: f }} }}\n  f: {{ final: true, output: out }}\n"
    );
    Behaviour::parse(SourceFile::new(format!("{service}.yaml"), source)).unwrap()
}

/// A provider answers a request that needs no waiting as soon as it takes it in; one that
/// waits goes on by itself, so the requests behind it are answered meanwhile, and it is
/// answered once what it waits for comes.
#[tokio::test(start_paused = true)]
async fn a_request_that_waits_does_not_hold_up_the_ones_behind_it_and_is_answered_later() {
    let net = Network::new();
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let waiting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (opened, started) = (gate.clone(), waiting.clone());
    let _b = Agent::builder("b")
        .network(&net)
        .behaviour(around("slow", "wait"))
        .behaviour(around("fast", "echo"))
        .service(Service::new("slow", OfferModes::CAN_DO))
        .service(Service::new("fast", OfferModes::CAN_DO))
        .ability("wait", move |input| {
            let (gate, started) = (opened.clone(), started.clone());
            async move {
                started.store(true, SeqCst);
                gate.notified().await;
                Ok(input)
            }
        })
        .ability("echo", |input| async move { Ok(input) })
        .spawn()
        .await
        .unwrap();
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    // Twice: the second slow request goes straight to a task of its own, its service having
    // waited the first time.
    for round in 0..2 {
        waiting.store(false, SeqCst);
        let slow = tokio::spawn({
            let a = a.clone();
            async move { a.call("slow", round).await }
        });
        // Sleeping, not yielding, lets the paused clock run: if the request never reaches
        // the ability, this fails instead of spinning.
        let reached = async {
            while !waiting.load(SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(1), reached)
            .await
            .expect("the slow request reaches its ability");
        let start = tokio::time::Instant::now();
        assert_eq!(a.call("fast", 2).await.unwrap(), Value::Int(2));
        assert_eq!(a.call("fast", 3).await.unwrap(), Value::Int(3));
        assert_eq!(start.elapsed(), Duration::ZERO, "answered at once");
        assert!(!slow.is_finished(), "the slow request still waits");
        gate.notify_one();
        assert_eq!(slow.await.unwrap().unwrap(), Value::Int(round));
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_package_and_an_invalid_package_leave_the_learner_unchanged() {
    let net = Network::new();
    let _b = provider(&net, "b").await;
    let a = Agent::builder("a")
        .network(&net)
        .negotiation(selflet::negotiation::Config {
            teachers: Some(vec!["trusted".into()]),
            ..Default::default()
        })
        .spawn()
        .await
        .unwrap();
    let teachings = net.counters().by_kind.get("teaching").copied();
    let err = a
        .request_service("service2", &[OfferMode::CanTeach], ())
        .await
        .unwrap_err();
    // b is not a trusted teacher: a does not even ask it to teach.
    assert!(
        matches!(err.attempts(), [Attempt { provider, error: AttemptError::NotTrusted }] if provider == "b"),
        "{err}"
    );
    assert_eq!(net.counters().by_kind.get("teaching").copied(), teachings);
    assert!(!a.knowledge().can_run("service2"));
    assert!(a.behaviours().names().is_empty());

    // A peer that sends an invalid package.
    let a2 = Agent::builder("a2").network(&net).spawn().await.unwrap();
    let mallory = net.join("mallory").unwrap();
    let advert = Message::Advert {
        services: vec![("service9".into(), OfferModes::CAN_TEACH)],
    };
    net.send(Envelope {
        trace: 0,
        from: "mallory".into(),
        to: "a2".into(),
        id: 0,
        body: advert,
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let net2 = net.clone();
    tokio::spawn(async move {
        while let Some(Incoming::Message { envelope: env, .. }) = mallory.inbox.recv().await {
            if let Message::Request { .. } = env.body {
                let pkg = TeachingPackage {
                    service: "service9".into(),
                    behaviour: "service9".into(),
                    behaviour_source:
                        "behaviour: service9\ninitial: nowhere\nstates:\n  a: { final: true }\n"
                            .into(),
                    scripts: vec![("evil.rhai".into(), "fn x(i) { i }".into())],
                    requires: vec![],
                };
                let reply = Envelope {
                    trace: 0,
                    from: "mallory".into(),
                    to: env.from,
                    id: env.id,
                    body: Message::Reply(Reply::Teach(Box::new(pkg))),
                };
                net2.send(reply).unwrap();
            }
        }
    });
    let abilities_before = a2.abilities().names();
    let err = a2
        .request_service("service9", &[OfferMode::CanTeach], ())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("initial state `nowhere`"), "{err}");
    assert!(a2.behaviours().names().is_empty());
    assert_eq!(
        a2.abilities().names(),
        abilities_before,
        "no script of an invalid package is installed"
    );
    assert!(a2.knowledge().service("service9").is_none());
}

#[tokio::test(start_paused = true)]
async fn offer_mode_changes_are_advertised() {
    let net = Network::new();
    let b = provider(&net, "b").await;
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    a.call("service2", n(1)).await.unwrap();
    let modes = |a: &AgentHandle| {
        a.knowledge()
            .providers()
            .providers("service2")
            .first()
            .map(|p| p.modes)
    };
    assert_eq!(modes(&a), Some(both()));
    b.knowledge()
        .set_modes("service2", OfferModes::CAN_DO)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(modes(&a), Some(OfferModes::CAN_DO));
    // Teaching is now refused.
    let err = a
        .request_service("service2", &[OfferMode::CanTeach], ())
        .await
        .unwrap_err();
    assert!(
        matches!(err.attempts(), [Attempt { error: AttemptError::Refused(reason), .. }] if reason.contains("can_do only")),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_offer_changes_is_advertised_once() {
    let net = Network::new();
    let b = provider(&net, "b").await;
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    let adverts = || net.counters().by_kind.get("advert").copied().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let before = adverts();
    for service in ["service1", "service2", "service3"] {
        b.knowledge()
            .set_modes(service, OfferModes::CAN_DO)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    // One advert, to b's one neighbour, carrying all three changes.
    assert_eq!(adverts() - before, 1);
    let heard = a.knowledge().providers();
    for service in ["service1", "service2", "service3"] {
        let modes = heard.providers(service).first().map(|p| p.modes);
        assert_eq!(modes, Some(OfferModes::CAN_DO), "{service}");
    }
    // And a change after it has gone is advertised again.
    b.knowledge().withdraw("service3").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(adverts() - before, 2);
}

#[tokio::test(start_paused = true)]
async fn behaviours_call_remote_services_and_stopping_ends_in_flight_calls() {
    let net = Network::new();
    let b = Agent::builder("b")
        .network(&net)
        .behaviour(Behaviour::parse(SourceFile::new("slow.yaml", "behaviour: slow\ninitial: s\nstates:\n  s: { after: { 3600s: f } }\n  f: { final: true }\n")).unwrap())
        .service(Service::new("slow", OfferModes::CAN_DO))
        .shutdown_grace(Duration::from_secs(1))
        .spawn()
        .await
        .unwrap();
    let a = Agent::builder("a")
        .network(&net)
        .negotiation(selflet::negotiation::Config {
            timeout: Duration::from_secs(7200),
            ..Default::default()
        })
        .spawn()
        .await
        .unwrap();
    let call = {
        let a = a.clone();
        tokio::spawn(async move { a.call("slow", ()).await })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    b.shutdown().await;
    let r = call.await.unwrap();
    assert!(
        r.unwrap_err().to_string().contains("stopping"),
        "the provider answered the in-flight call with an error"
    );
}

#[tokio::test(start_paused = true)]
async fn a_requester_shutting_down_still_receives_the_replies_of_its_in_flight_work() {
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
    let executed = b.subscribe("service.executed").unwrap();
    let a = Agent::builder("a")
        .network(&net)
        .shutdown_grace(Duration::from_secs(5))
        .policy(SourceFile::new(
            "p.rhai",
            r#"rule("r").on("go").then(|ev| request_service("slow", "can_do"));"#,
        ))
        .spawn()
        .await
        .unwrap();
    a.publish("go", ()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let start = tokio::time::Instant::now();
    a.shutdown().await;
    // The request finished within the grace period: its reply was still received.
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(executed.try_recv().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_behaviours_call_to_a_redirected_service_is_redirected() {
    let net = Network::new();
    let work = || shipped("work");
    let y = Agent::builder("y")
        .network(&net)
        .behaviour(work())
        .service(Service::new("work", OfferModes::CAN_DO))
        .spawn()
        .await
        .unwrap();
    let uses_work = Behaviour::parse(SourceFile::new(
        "uses_work.yaml",
        "behaviour: uses_work\nrequires: [work]\ninitial: w\nstates:\n  w: { do: { call: work }, on: { done: f } }\n  f: { final: true }\n",
    ))
    .unwrap();
    let x = Agent::builder("x")
        .network(&net)
        .behaviour(work())
        .behaviour(uses_work)
        .service(Service::new("work", OfferModes::CAN_DO))
        .spawn()
        .await
        .unwrap();
    let executed = y.subscribe("service.executed").unwrap();
    x.redirect("work", "y", 1.0);
    x.run_behaviour("uses_work", ()).await.unwrap();
    let ev = executed.recv().await.unwrap();
    assert_eq!(ev.payload().get("requester"), Some(&Value::from("x")));
    assert_eq!(x.load_counters().runs.get("work"), None, "x did not run it");
}

/// A transport that remembers who tried to join it and counts the discoveries sent through it;
/// it panics while sending the next `panicking_replies` replies.
#[derive(Default)]
struct Watched {
    net: Network,
    joins: std::sync::Mutex<Vec<String>>,
    discoveries: std::sync::atomic::AtomicUsize,
    panicking_replies: std::sync::atomic::AtomicUsize,
}

impl Transport for Watched {
    fn join(
        &self,
        agent: &str,
    ) -> Result<selflet::transport::Membership, selflet::transport::JoinError> {
        self.joins.lock().unwrap().push(agent.to_owned());
        self.net.join(agent)
    }
    fn send(&self, e: Envelope) -> Result<(), selflet::transport::SendError> {
        let panics = &self.panicking_replies;
        if matches!(e.body, Message::Reply(_))
            && panics
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            panic!("a transport that panics");
        }
        self.net.send(e)
    }
    fn publish(&self, service: &str, e: Envelope) -> usize {
        if matches!(e.body, Message::Discover { .. }) {
            self.discoveries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.net.publish(service, e)
    }
    fn broadcast(&self, e: Envelope) -> usize {
        self.net.broadcast(e)
    }
    fn offer(&self, agent: &str, service: &str, offered: bool) {
        self.net.offer(agent, service, offered)
    }
    fn members(&self) -> Vec<selflet::name::Name> {
        self.net.members()
    }
    fn authenticates(&self, agent: &str) -> bool {
        self.net.authenticates(agent)
    }
    fn counters(&self) -> selflet::transport::MessageCounters {
        self.net.counters()
    }
}

/// A panic around a service's answer (in the transport's `send`, here) loses that answer,
/// not the provider: its next request is answered.
#[tokio::test(start_paused = true)]
async fn a_panic_while_answering_loses_that_answer_not_the_provider() {
    let watched = std::sync::Arc::new(Watched::default());
    watched.panicking_replies.store(1, SeqCst);
    let _b = Agent::builder("b")
        .transport(watched.clone())
        .behaviour(around("fast", "echo"))
        .service(Service::new("fast", OfferModes::CAN_DO))
        .ability("echo", |input| async move { Ok(input) })
        .spawn()
        .await
        .unwrap();
    let a = Agent::builder("a")
        .network(&watched.net)
        .spawn()
        .await
        .unwrap();
    let lost = a.call("fast", 1).await.unwrap_err();
    assert!(
        matches!(&lost, CallError::Unavailable { attempts, .. }
            if matches!(attempts[..], [Attempt { error: AttemptError::TimedOut(_), .. }])),
        "{lost:?}"
    );
    assert_eq!(a.call("fast", 2).await.unwrap(), Value::Int(2));
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_fails_to_spawn_never_shows_itself_to_its_network() {
    let watched = std::sync::Arc::new(Watched::default());
    let err = Agent::builder("broken")
        .transport(watched.clone())
        .policy(SourceFile::new(
            "bad.rhai",
            "rule(\"r\").on(\"x\").then(|ev| log(\n",
        ))
        .spawn()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad.rhai"), "{err}");
    assert!(watched.joins.lock().unwrap().is_empty(), "it never joined");
    Agent::builder("fine")
        .transport(watched.clone())
        .spawn()
        .await
        .unwrap();
    assert_eq!(*watched.joins.lock().unwrap(), ["fine"]);
}

impl Watched {
    fn discoveries(&self) -> usize {
        self.discoveries.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Provider `b` on a network, and `a`, which offers nothing, joined through a [`Watched`].
async fn caller_through_watched() -> (std::sync::Arc<Watched>, AgentHandle, AgentHandle) {
    let watched = std::sync::Arc::new(Watched::default());
    let b = provider(&watched.net, "b").await;
    let a = Agent::builder("a")
        .transport(watched.clone())
        .spawn()
        .await
        .unwrap();
    (watched, b, a)
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_first_calls_shares_one_discovery_and_every_call_is_served() {
    let (watched, _b, a) = caller_through_watched().await;
    // More calls than one sender may have queued at b, all before a knows b: one discovery
    // each would crowd out the requests themselves.
    let calls = (0..60).map(|i| {
        let a = a.clone();
        async move { a.call("service2", n(i)).await }
    });
    for (i, answer) in futures_util::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(answer.unwrap(), Value::Int(2 * i as i64));
    }
    let discoveries = watched.discoveries();
    assert_eq!(discoveries, 1, "the calls shared one discovery");
}

#[tokio::test(start_paused = true)]
async fn once_the_providers_it_found_are_gone_the_next_call_discovers_afresh() {
    let (watched, _b, a) = caller_through_watched().await;
    assert_eq!(a.call("service2", n(1)).await.unwrap(), Value::Int(2));
    // `a` forgets `b`, as when a provider leaves: nobody is known for the service again.
    let providers = a.knowledge().providers();
    providers.heard("service2", "b", OfferModes::NONE).unwrap();
    assert!(!providers.knows("service2"));
    // Well within the 5 s time-out of the first discovery: that one was answered, so the
    // call sends another rather than waiting for the first one's time to run out.
    let answer = tokio::time::timeout(Duration::from_secs(1), a.call("service2", n(2)))
        .await
        .expect("a fresh discovery");
    assert_eq!(answer.unwrap(), Value::Int(4));
    let discoveries = watched.discoveries();
    assert_eq!(discoveries, 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_known_providers_are_all_gone_looks_again_before_giving_up() {
    let (watched, b, a) = caller_through_watched().await;
    assert_eq!(a.call("service2", n(1)).await.unwrap(), Value::Int(2));
    // `c` also offers the service, but `a` does not know it (forgotten, as with a provider
    // whose advert never reached it), and `b` stops without anyone being told.
    let _c = provider(&watched.net, "c").await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    a.knowledge()
        .providers()
        .heard("service2", "c", OfferModes::NONE)
        .unwrap();
    b.shutdown().await;
    let answer = a.call("service2", n(2)).await;
    assert_eq!(
        answer.unwrap(),
        Value::Int(4),
        "found `c` by a fresh discovery"
    );
    assert_eq!(watched.discoveries(), 2);
}
