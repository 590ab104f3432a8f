//! The deployment manager with hostile or broken objectives: a script that loops, fails or
//! returns nonsense changes nothing and is recorded; errors name file, line and column.

use std::sync::Arc;
use std::time::Duration;

use selflet::deployment::{self, Config, Hosts, ScriptObjective, SimulatedHosts};
use selflet::{Agent, Network, SourceFile};

fn deployment(objective: &str, threshold: f64) -> (SimulatedHosts, Config) {
    let mut config = Config::new(SourceFile::new("objective.rhai", objective));
    config.budget = Duration::from_millis(200);
    config.threshold = threshold;
    let net = Network::new();
    let c = config.clone();
    let hosts = SimulatedHosts::new(Arc::new(move |hosts, _host, name| {
        let (net, config) = (net.clone(), c.clone());
        Box::pin(async move {
            let a = Agent::builder(name).network(&net).spawn().await?;
            deployment::manage(&a, Arc::new(hosts), config)?;
            Ok(a)
        })
    }));
    hosts.add_host("h1", 1, &[]);
    hosts.add_host("h2", 4, &[]);
    (hosts, config)
}

#[tokio::test(start_paused = true)]
async fn a_looping_or_failing_objective_changes_nothing_and_is_recorded() {
    for (script, expect) in [
        ("fn utility(c) { loop {} }", "`utility`"),
        (
            "fn utility(c) { c.members.len() } fn constraint(c) { 1 }",
            "not true or false",
        ),
        ("fn utility(c) { \"many\" }", "not a finite number"),
        (
            "fn utility(c) { c.members.len() } fn cost(p) { throw \"no\" }",
            "`cost`",
        ),
    ] {
        let (hosts, config) = deployment(script, 0.0);
        let first = hosts.start("h1").await.unwrap();
        tokio::time::sleep(Duration::from_secs(150)).await;
        let log = config.log.decisions();
        assert_eq!(log.len(), 2, "{script}");
        for d in &log {
            assert!(!d.executed, "{script}");
            assert!(d.note.contains(expect), "{script}: {}", d.note);
        }
        assert_eq!(
            hosts.members().await.unwrap(),
            vec![(first, "h1".to_string())]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_plan_gains_or_it_does_not_run() {
    // Two members are worth more than one, by less than the threshold.
    let (hosts, config) = deployment("fn utility(c) { 0.01 * c.members.len() }", 0.05);
    hosts.start("h1").await.unwrap();
    tokio::time::sleep(Duration::from_secs(150)).await;
    // The first period it observes; the second it plans.
    let d = &config.log.decisions()[1];
    assert!(!d.executed);
    assert!(d.plan.as_ref().unwrap().gain() > 0.0);
    assert!(d.note.contains("not above the threshold"), "{}", d.note);
}

#[test]
fn an_objective_that_does_not_compile_is_located() {
    let src = SourceFile::new("bad.rhai", "fn utility(c) {\n  let x = ;\n}\n");
    let err = ScriptObjective::compile(&src).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!((p.file(), p.line()), ("bad.rhai", 2));
    assert!(p.column() > 1);
    let src = SourceFile::new("none.rhai", "fn cost(p) { 0.0 }");
    let err = ScriptObjective::compile(&src).unwrap_err();
    assert!(err.problems()[0].message().contains("fn utility(c)"));
}

/// Three host agents serving `deploy-*` on one network; members reach them as `RemoteHosts`.
async fn remote_deployment(
    net: &Network,
    config: &Config,
) -> Vec<(selflet::AgentHandle, deployment::HostServer)> {
    let mut out = Vec::new();
    for h in ["h1", "h2", "h3"] {
        let (n, c) = (net.clone(), config.clone());
        let server = deployment::HostServer::new(
            h,
            2.0,
            Default::default(),
            Arc::new(move |name| {
                let (net, config) = (n.clone(), c.clone());
                Box::pin(async move {
                    let a = Agent::builder(name).network(&net).spawn().await?;
                    let hosts = deployment::RemoteHosts::new(&a);
                    deployment::manage(&a, Arc::new(hosts), config)?;
                    Ok(a)
                })
            }),
        );
        let agent = server
            .install(Agent::builder(h).network(net))
            .unwrap()
            .spawn()
            .await
            .unwrap();
        out.push((agent, server));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn members_manage_hosts_across_agents_and_survive_their_coordinator() {
    // Two members, on different hosts.
    let objective = "fn utility(c) { if c.members.len() == 2 { 1.0 } else { 0.0 } }
                     fn constraint(c) { c.hosts.values().all(|h| h.count <= 1) }";
    let mut config = Config::new(SourceFile::new("two.rhai", objective));
    config.period = Duration::from_secs(10);
    let net = Network::new();
    let hosts = remote_deployment(&net, &config).await;
    let first = hosts[0].1.start_member().await.unwrap();
    tokio::time::sleep(Duration::from_secs(35)).await;
    // The lone member (coordinator) observed a period, then added one elsewhere.
    let running: Vec<String> = hosts
        .iter()
        .flat_map(|(_, s)| s.members())
        .map(|a| a.name().to_owned())
        .collect();
    assert_eq!(
        running.len(),
        2,
        "{running:?} {:#?}",
        config.log.decisions()
    );
    assert!(running.contains(&first));
    // The coordinator crashes; the other member takes over, observes, and restores two.
    hosts[0].1.members()[0].shutdown().await;
    let crashed = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(35)).await;
    let log = config.log.decisions();
    let takeover = log
        .iter()
        .find(|d| d.at >= crashed && d.coordinator != first)
        .expect("a new coordinator decided");
    assert!(
        takeover.at - crashed <= config.period,
        "re-elected within a period"
    );
    assert!(takeover.note.contains("took over"));
    let executed = log.iter().filter(|d| d.at >= crashed && d.executed).count();
    assert_eq!(executed, 1, "{log:#?}");
    let live: Vec<String> = hosts
        .iter()
        .flat_map(|(_, s)| s.members())
        .map(|a| a.name().to_owned())
        .collect();
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(!live.contains(&first));
}

#[tokio::test(start_paused = true)]
async fn a_host_status_that_lies_or_is_malformed_is_left_out() {
    let net = Network::new();
    // A "host" whose status names another host, and one whose members are not names.
    for (name, status) in [
        (
            "liar",
            r#"#{ name: "h1", up: true, capacity: 1.0, load: 0.0, metrics: #{}, attributes: #{}, members: [] }"#,
        ),
        (
            "junk",
            r#"#{ name: "junk", up: true, capacity: 1.0, load: 0.0, metrics: #{}, attributes: #{}, members: ["../x"] }"#,
        ),
    ] {
        let yaml = format!(
            "behaviour: deploy-status\ninitial: s\nstates:\n  s: {{ final: true, output: '{status}' }}\n"
        );
        let b = selflet::Behaviour::parse(SourceFile::new("s.yaml", yaml)).unwrap();
        Agent::builder(name)
            .network(&net)
            .behaviour(b)
            .service(selflet::Service::new(
                "deploy-status",
                selflet::OfferModes::CAN_DO,
            ))
            .spawn()
            .await
            .unwrap();
    }
    let member = Agent::builder("m").network(&net).spawn().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let remote = deployment::RemoteHosts::new(&member);
    assert!(remote.status().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_coordinator_teaches_the_members_it_starts() {
    let objective = "fn utility(c) { if c.members.len() == 2 { 1.0 } else { 0.0 } }
                     fn constraint(c) { c.hosts.values().all(|h| h.count <= 1) }";
    let mut config = Config::new(SourceFile::new("two.rhai", objective));
    config.teach = vec!["double".into()];
    let net = Network::new();
    let c = config.clone();
    let hosts = SimulatedHosts::new(Arc::new(move |hosts, _host, name| {
        let (net, config) = (net.clone(), c.clone());
        Box::pin(async move {
            let mut b = Agent::builder(name).network(&net);
            // Only the first member is started with the service; the others learn it.
            if hosts.members().await?.is_empty() {
                let double = selflet::Behaviour::parse(SourceFile::new(
                    "double.yaml",
                    "behaviour: double\ninitial: d\nstates:\n  d: { final: true, output: \"input * 2\" }\n",
                ))?;
                b = b.behaviour(double).service(selflet::Service::new(
                    "double",
                    selflet::OfferModes::CAN_DO | selflet::OfferModes::CAN_TEACH,
                ));
            }
            let a = b.spawn().await?;
            deployment::manage(&a, Arc::new(hosts), config)?;
            Ok(a)
        })
    }));
    hosts.add_host("h1", 1, &[]);
    hosts.add_host("h2", 1, &[]);
    hosts.start("h1").await.unwrap();
    tokio::time::sleep(Duration::from_secs(150)).await;
    let log = config.log.decisions();
    let added = log.iter().find(|d| d.executed).expect("a plan ran");
    assert_eq!((added.started.len(), added.taught), (1, 1), "{added:#?}");
    let learner = hosts.member(&added.started[0]).unwrap();
    assert!(learner.learned().contains_key("double"));
    assert_eq!(
        learner.call("double", 21).await.unwrap(),
        selflet::Value::Int(42)
    );
}
