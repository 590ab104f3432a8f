//! The console's picture and its web server, and the trace ids it groups by: one call across
//! three agents is one trace, a forecast and the teaching it brings are one trace, and a
//! report that fails a check changes nothing.

#[path = "support/http.rs"]
mod http;
#[path = "support/teaching_pair.rs"]
mod teaching_pair;

use std::collections::BTreeMap;
use std::time::Duration;

use selflet::behaviour::Behaviour;
use selflet::console::{Console, Item, Offer, Rejected, Report};
use selflet::{Agent, AgentHandle, Event, Network, OfferModes, Service, Value};
use teaching_pair::teaching_pair;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn shipped(name: &str) -> Behaviour {
    Behaviour::load(format!("{ROOT}/behaviors/{name}.yaml")).unwrap()
}

fn n(v: i64) -> Value {
    Value::map([("n", Value::Int(v))])
}

fn drain(s: &selflet::bus::Subscription) -> Vec<Event> {
    std::iter::from_fn(|| s.try_recv().ok()).collect()
}

#[tokio::test(start_paused = true)]
async fn one_trace_follows_a_call_from_a_through_b_to_c_and_back() {
    let net = Network::new();
    // B runs service1, which calls service2 and service3: only C has those.
    let c = Agent::builder("c")
        .network(&net)
        .behaviour(shipped("service2"))
        .behaviour(shipped("service3"))
        .service(Service::new("service2", OfferModes::CAN_DO))
        .service(Service::new("service3", OfferModes::CAN_DO))
        .spawn()
        .await
        .unwrap();
    let b = Agent::builder("b")
        .network(&net)
        .behaviour(shipped("service1"))
        .service(Service::new("service1", OfferModes::CAN_DO).requiring(["service2", "service3"]))
        .spawn()
        .await
        .unwrap();
    let a = Agent::builder("a").network(&net).spawn().await.unwrap();
    let watch = |x: &AgentHandle| x.subscribe("service.*").unwrap();
    let (wa, wb, wc) = (watch(&a), watch(&b), watch(&c));
    assert_eq!(a.call("service1", n(2)).await.unwrap(), Value::Int(7));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let first: Vec<Event> = [&wa, &wb, &wc].into_iter().flat_map(drain).collect();
    let traces: std::collections::BTreeSet<_> = first.iter().map(Event::trace).collect();
    assert_eq!(traces.len(), 1, "one trace for the whole chain: {first:?}");
    let trace = traces.into_iter().next().unwrap();
    assert!(trace.is_some(), "a call starts a trace");
    let seen = |agent: &str, topic: &str, service: &str| {
        first.iter().any(|e| {
            e.source() == agent
                && e.topic() == topic
                && e.payload().get("service").and_then(Value::as_str) == Some(service)
        })
    };
    assert!(seen("a", "service.request.outgoing", "service1"));
    assert!(seen("b", "service.request.incoming", "service1"));
    assert!(seen("b", "service.request.outgoing", "service2"));
    assert!(seen("c", "service.executed", "service3"));
    assert!(seen("b", "service.executed", "service1"));

    a.call("service1", n(3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let second: Vec<Event> = [&wa, &wb, &wc].into_iter().flat_map(drain).collect();
    assert!(!second.is_empty());
    assert!(
        second
            .iter()
            .all(|e| e.trace().is_some() && e.trace() != trace),
        "the next call is a trace of its own"
    );
}

#[tokio::test(start_paused = true)]
async fn the_console_shows_a_forecast_its_rule_and_the_teaching_as_one_trace() {
    let console = Console::new();
    let (a, b) = teaching_pair(&console, Duration::from_secs(1), true).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(a.learned().len(), 3, "A learned services 1, 2 and 3");
    console.with_view(|view| {
        let timeline: Vec<_> = view.timeline().iter().collect();
        let of = |agent: &str, topic: &str, service: Option<&str>| {
            timeline
                .iter()
                .find(|e| {
                    e.agent == agent
                        && e.item.topic == topic
                        && (service.is_none()
                            || e.item.service.as_deref() == service
                            || e.item.text.contains(service.unwrap_or_default()))
                })
                .unwrap_or_else(|| panic!("{agent} {topic} {service:?} in {timeline:#?}"))
                .item
                .trace
                .clone()
        };
        let forecast = of("a", "prediction.frequent", Some("service1"));
        assert!(forecast.is_some(), "a forecast starts a trace");
        assert_eq!(of("a", "policy.fired", Some("service1")), forecast);
        assert_eq!(of("b", "service.taught", Some("service1")), forecast);
        assert_eq!(of("a", "service.learned", Some("service1")), forecast);
        assert_ne!(of("a", "service.learned", Some("service3")), forecast);

        let a_row = &view.agents()["a"];
        let teachers: Vec<_> = a_row
            .services
            .iter()
            .map(|o| o.teacher.as_deref())
            .collect();
        assert_eq!(teachers, [Some("b"); 3], "A runs what B taught it");
        assert_eq!(a_row.providers["service1"], ["b"]);
        let taught: Vec<_> = view
            .edges()
            .filter(|e| e.from == "b" && e.to == "a")
            .flat_map(|e| e.taught.iter().cloned())
            .collect();
        assert_eq!(taught, ["service1", "service2", "service3"]);
        let calls = view
            .edges()
            .find(|e| e.from == "a" && e.to == "b")
            .unwrap()
            .calls;
        assert!(calls > 40, "A's calls to B before it learned: {calls}");
        assert_eq!(view.agents()["b"].state, "running");
    });
    a.shutdown().await;
    b.shutdown().await;
}

fn report(agent: &str) -> Report {
    Report {
        agent: agent.into(),
        at_ms: selflet::console::report::now_ms(),
        state: "running".into(),
        services: vec![Offer {
            service: "echo".into(),
            modes: vec!["can_do".into()],
            teacher: None,
        }],
        providers: BTreeMap::from([("s".into(), vec!["b".into()])]),
        utilization: 0.5,
        calls: BTreeMap::from([("b".into(), 3)]),
        items: vec![Item {
            at_ms: 0,
            topic: "service.learned".into(),
            trace: Some("00000000000000ff".into()),
            peer: Some("b".into()),
            service: Some("echo".into()),
            text: "<img src=x onerror=alert(1)> learned echo".into(),
        }],
    }
}

/// What a hostile peer changes in an honest report.
type Spoil = fn(&mut Report);

#[test]
fn a_report_that_fails_a_check_changes_nothing() {
    let console = Console::new();
    let hostile: Vec<(Spoil, Rejected)> = vec![
        (
            |r| r.agent = "../../etc".into(),
            Rejected::Name("../../etc".into()),
        ),
        (|r| r.agent = String::new(), Rejected::Name(String::new())),
        (
            |r| r.utilization = f64::NAN,
            Rejected::Invalid("utilization"),
        ),
        (|r| r.utilization = -1.0, Rejected::Invalid("utilization")),
        (|r| r.state = "<b>".into(), Rejected::Invalid("state")),
        (
            |r| r.services[0].modes = vec!["root".into()],
            Rejected::Invalid("offer modes"),
        ),
        (
            |r| r.services[0].teacher = Some("a b".into()),
            Rejected::Name("a b".into()),
        ),
        (
            |r| r.providers = (0..300).map(|i| (format!("s{i}"), vec![])).collect(),
            Rejected::TooMany("services"),
        ),
        (
            |r| {
                r.providers
                    .insert("s".into(), vec!["b".into(); 65])
                    .map(drop)
                    .unwrap_or(())
            },
            Rejected::TooMany("providers"),
        ),
        (
            |r| r.calls = (0..2000).map(|i| (format!("p{i}"), 1)).collect(),
            Rejected::TooMany("call peers"),
        ),
        (
            |r| r.items = vec![r.items[0].clone(); 65],
            Rejected::TooMany("items"),
        ),
        (
            |r| r.items[0].trace = Some("not-hex-at-all!!".into()),
            Rejected::Invalid("trace"),
        ),
        (
            |r| r.items[0].topic = "a topic with spaces".into(),
            Rejected::Invalid("topic"),
        ),
        (
            |r| r.items[0].peer = Some("💥".into()),
            Rejected::Name("💥".into()),
        ),
    ];
    for (spoil, why) in hostile {
        let mut r = report("a");
        spoil(&mut r);
        assert_eq!(console.accept(r), Err(why.clone()));
        console.with_view(|v| {
            assert!(
                v.agents().is_empty() && v.timeline().is_empty() && v.edges().count() == 0,
                "{why}"
            );
        });
    }
    // A good report is taken in; its text is shown as text, and a clock far off is ours.
    console.accept(report("a")).unwrap();
    console.with_view(|v| {
        assert_eq!(v.agents().len(), 1);
        let entry = &v.timeline()[0];
        assert!(
            entry.item.at_ms > 0,
            "an agent's clock far from ours is replaced"
        );
        assert_eq!(
            v.edges()
                .map(|e| (e.from.as_str(), e.to.as_str(), e.calls))
                .collect::<Vec<_>>(),
            [("a", "b", 3), ("b", "a", 0)]
        );
    });
    let page = include_str!("../src/console/page.html");
    assert!(
        !page.contains("innerHTML"),
        "the page never parses what agents say as HTML"
    );
}

#[test]
fn the_picture_stays_bounded_whatever_agents_report() {
    let console = Console::new();
    // 101 agents each reporting calls to 1,024 different peers: more pairs than it keeps.
    for i in 0..101 {
        let mut r = report(&format!("a{i}"));
        r.items.clear();
        r.calls = (0..1024).map(|j| (format!("p{j}"), 1)).collect();
        console.accept(r).unwrap();
    }
    console.with_view(|v| {
        assert_eq!(v.edges().count(), selflet::console::view::MAX_EDGES);
        assert_eq!(v.agents().len(), 101);
    });
    // Timeline entries beyond its length push the oldest out.
    for _ in 0..selflet::console::view::TIMELINE + 10 {
        console.accept(report("a0")).unwrap();
    }
    console.with_view(|v| assert_eq!(v.timeline().len(), selflet::console::view::TIMELINE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_serves_its_page_the_state_and_live_updates() {
    let console = Console::new();
    let addr = console.serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    console.accept(report("a")).unwrap();
    let page = tokio::task::spawn_blocking(move || http::get(addr, "/"))
        .await
        .unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<title>selflet console</title>"));
    let state = tokio::task::spawn_blocking(move || http::get(addr, "/state"))
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(http::body(&state)).unwrap();
    assert_eq!(json["agents"]["a"]["state"], "running");
    assert_eq!(json["timeline"][0]["topic"], "service.learned");

    // The event stream starts with the whole picture, then each change as it comes.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let mut read_until = async |needle: &str, seen: &mut String| {
        while !seen.contains(needle) {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
                .await
                .expect("the stream goes on")
                .unwrap();
            assert!(n > 0, "the stream ended: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    read_until("event: snapshot", &mut seen).await;
    console.accept(report("b")).unwrap();
    read_until("\"agent\":\"b\"", &mut seen).await;
    assert!(seen.contains("event: update"), "{seen}");
}
