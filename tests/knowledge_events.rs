//! Internal knowledge: facts with change events, services, providers.

use selflet::bus::{Bus, Pattern};
use selflet::knowledge::Service;
use selflet::topic::{FactChanged, FactRemoved, Payload, ServiceChanged};
use selflet::{Knowledge, OfferMode, OfferModes, Value};

#[tokio::test]
async fn setting_and_removing_facts_publishes_changes_with_old_and_new_values() {
    let bus = Bus::new("a");
    let events = bus
        .subscribe(Pattern::parse("knowledge.fact.*").unwrap())
        .unwrap();
    let k = Knowledge::new(bus.clone());

    assert_eq!(k.set_fact("load", 0.5).await, None);
    assert_eq!(k.set_fact("load", 0.5).await, Some(Value::Float(0.5)));
    assert_eq!(k.set_fact("load", 0.9).await, Some(Value::Float(0.5)));
    assert_eq!(k.remove_fact("load").await, Some(Value::Float(0.9)));
    assert_eq!(k.remove_fact("load").await, None);
    assert_eq!(k.fact("load"), None);

    let first = events.recv().await.unwrap();
    assert_eq!(first.topic(), FactChanged::TOPIC);
    assert_eq!(first.payload().get("key"), Some(&Value::from("load")));
    assert_eq!(first.payload().get("old"), Some(&Value::Null));
    assert_eq!(first.payload().get("new"), Some(&Value::Float(0.5)));
    // Setting the same value again changes nothing and publishes nothing.
    let second = events.recv().await.unwrap();
    assert_eq!(second.payload().get("old"), Some(&Value::Float(0.5)));
    assert_eq!(second.payload().get("new"), Some(&Value::Float(0.9)));
    let third = events.recv().await.unwrap();
    assert_eq!(third.topic(), FactRemoved::TOPIC);
    assert_eq!(third.payload().get("old"), Some(&Value::Float(0.9)));
    assert!(events.try_recv().is_err());
}

#[tokio::test]
async fn services_can_be_offered_reconfigured_and_withdrawn_with_events() {
    let bus = Bus::new("a");
    let events = bus
        .subscribe(Pattern::parse(ServiceChanged::TOPIC).unwrap())
        .unwrap();
    let k = Knowledge::new(bus);
    k.offer(Service::new("service1", OfferModes::CAN_DO)).await;
    assert!(k.can_run("service1"));
    let both = OfferModes::CAN_DO | OfferModes::CAN_TEACH;
    assert_eq!(k.set_modes("service1", both).await, Ok(OfferModes::CAN_DO));
    assert_eq!(k.set_modes("service1", both).await, Ok(both));
    assert!(k.set_modes("nope", both).await.is_err());
    assert!(k.withdraw("service1").await.is_some());
    assert!(!k.can_run("service1"));

    let modes = |ev: selflet::Event| ev.payload().get("modes").cloned().unwrap();
    assert_eq!(
        modes(events.recv().await.unwrap()),
        Value::from(vec!["can_do"])
    );
    assert_eq!(
        modes(events.recv().await.unwrap()),
        Value::from(vec!["can_do", "can_teach"])
    );
    assert_eq!(modes(events.recv().await.unwrap()), Value::List(vec![]));
    assert!(
        events.try_recv().is_err(),
        "an unchanged mode set publishes nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn the_provider_directory_tracks_modes_freshness_failures_and_departures() {
    let k = Knowledge::new(Bus::new("a"));
    let dir = k.providers();
    dir.heard("service1", "b", OfferModes::CAN_DO).unwrap();
    tokio::time::advance(std::time::Duration::from_secs(3)).await;
    dir.heard("service1", "c", OfferMode::CanTeach.into())
        .unwrap();
    dir.failed("service1", "b");
    dir.failed("service1", "b");
    let ps = dir.providers("service1");
    assert_eq!(ps.len(), 2);
    assert_eq!((ps[0].agent.as_str(), ps[0].failures), ("b", 2));
    assert!(ps[0].last_failure.is_some());
    assert!(ps[1].last_heard > ps[0].last_heard);
    // Hearing from b again clears its failures.
    dir.heard("service1", "b", OfferModes::CAN_DO | OfferModes::CAN_TEACH)
        .unwrap();
    assert_eq!(dir.providers("service1")[0].failures, 0);
    dir.forget("b");
    assert_eq!(dir.providers("service1").len(), 1);
    dir.heard("service1", "c", OfferModes::NONE).unwrap();
    assert!(dir.services().is_empty());
}
