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
    tokio::time::sleep(Duration::from_secs(90)).await;
    let d = &config.log.decisions()[0];
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
