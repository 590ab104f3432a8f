//! The dispatcher bus: ordering, patterns, overflow policies and counters.

use std::time::Duration;

use selflet::Value;
use selflet::bus::{Bus, Closed, Overflow, Pattern, SubscribeOptions, TopicStats};

fn pat(p: &str) -> Pattern {
    Pattern::parse(p).unwrap()
}

fn opts(capacity: usize, overflow: Overflow) -> SubscribeOptions {
    SubscribeOptions { capacity, overflow }
}

#[tokio::test]
async fn one_publisher_to_one_subscriber_keeps_order_and_loses_nothing() {
    let bus = Bus::new("a");
    let sub = bus
        .subscribe_with(pat("seq"), opts(16, Overflow::Wait))
        .unwrap();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for i in 0..10_000 {
                bus.publish("seq", i).await.unwrap();
            }
        })
    };
    for expected in 0..10_000 {
        let ev = sub.recv().await.unwrap();
        assert_eq!(ev.payload(), &Value::Int(expected));
        assert_eq!(ev.source(), "a");
    }
    publisher.await.unwrap();
    assert_eq!(
        bus.topic_stats("seq"),
        Some(TopicStats {
            published: 10_000,
            delivered: 10_000,
            dropped: 0
        })
    );
}

#[tokio::test]
async fn exact_prefix_and_catch_all_subscriptions_see_what_they_match() {
    let bus = Bus::new("a");
    let mut exact = bus.subscribe(pat("service.executed")).unwrap();
    let mut prefix = bus.subscribe(pat("service.*")).unwrap();
    let mut deep = bus.subscribe(pat("service.request.*")).unwrap();
    let mut all = bus.subscribe(pat("*")).unwrap();
    for t in [
        "service.executed",
        "service.request.outgoing",
        "services.other",
        "service",
        "other",
    ] {
        bus.publish(t, t).await.unwrap();
    }
    let drain = |s: &mut selflet::Subscription| {
        let mut got = Vec::new();
        while let Ok(ev) = s.try_recv() {
            got.push(ev.topic().to_owned());
        }
        got
    };
    assert_eq!(drain(&mut exact), ["service.executed"]);
    assert_eq!(
        drain(&mut prefix),
        ["service.executed", "service.request.outgoing"]
    );
    assert_eq!(drain(&mut deep), ["service.request.outgoing"]);
    assert_eq!(drain(&mut all).len(), 5);
}

#[tokio::test]
async fn a_subscription_made_after_a_topic_exists_still_receives_it() {
    let bus = Bus::new("a");
    bus.publish("late.topic", 1).await.unwrap();
    let sub = bus.subscribe(pat("late.*")).unwrap();
    bus.publish("late.topic", 2).await.unwrap();
    assert_eq!(sub.recv().await.unwrap().payload(), &Value::Int(2));
}

#[tokio::test(start_paused = true)]
async fn wait_overflow_back_pressures_the_publisher_and_loses_nothing() {
    let bus = Bus::new("a");
    let sub = bus
        .subscribe_with(pat("t"), opts(2, Overflow::Wait))
        .unwrap();
    bus.publish("t", 0).await.unwrap();
    bus.publish("t", 1).await.unwrap();
    // The queue is full: the third publish waits for room (the paused clock runs the
    // timeout out, deterministically).
    let blocked = tokio::time::timeout(Duration::from_secs(1), bus.publish("t", 2)).await;
    assert!(
        blocked.is_err(),
        "publish into a full `wait` queue must wait"
    );
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish("t", 3).await })
    };
    let got: Vec<_> = [sub.recv().await, sub.recv().await, sub.recv().await]
        .into_iter()
        .map(|e| e.unwrap().payload().clone())
        .collect();
    publisher.await.unwrap().unwrap();
    // Event 2's publish was cancelled by the timeout before it had room: it was never sent.
    assert_eq!(got, [Value::Int(0), Value::Int(1), Value::Int(3)]);
    assert_eq!(bus.topic_stats("t").unwrap().dropped, 0);
}

#[tokio::test]
async fn drop_oldest_never_blocks_keeps_the_newest_and_counts_drops() {
    let bus = Bus::new("a");
    let slow = bus
        .subscribe_with(pat("t"), opts(2, Overflow::DropOldest))
        .unwrap();
    let other = bus
        .subscribe_with(pat("u"), opts(8, Overflow::Wait))
        .unwrap();
    for i in 0..5 {
        bus.publish("t", i).await.unwrap();
    }
    bus.publish("u", "fine").await.unwrap();
    assert_eq!(slow.recv().await.unwrap().payload(), &Value::Int(3));
    assert_eq!(slow.recv().await.unwrap().payload(), &Value::Int(4));
    assert!(slow.try_recv().is_err());
    assert_eq!(other.recv().await.unwrap().payload(), &Value::from("fine"));
    assert_eq!(
        bus.topic_stats("t"),
        Some(TopicStats {
            published: 5,
            delivered: 2,
            dropped: 3
        })
    );
}

#[tokio::test]
async fn evictions_are_counted_against_the_evicted_events_topic() {
    let bus = Bus::new("a");
    let _sub = bus
        .subscribe_with(pat("x.*"), opts(1, Overflow::DropOldest))
        .unwrap();
    bus.publish("x.first", 1).await.unwrap();
    bus.publish("x.second", 2).await.unwrap();
    assert_eq!(bus.topic_stats("x.first").unwrap().dropped, 1);
    assert_eq!(bus.topic_stats("x.second").unwrap().dropped, 0);
}

#[tokio::test]
async fn a_dropped_subscription_counts_its_queue_as_dropped_and_receives_no_more() {
    let bus = Bus::new("a");
    let sub = bus.subscribe(pat("t")).unwrap();
    let keep = bus.subscribe(pat("t")).unwrap();
    bus.publish("t", 1).await.unwrap();
    bus.publish("t", 2).await.unwrap();
    drop(sub);
    bus.publish("t", 3).await.unwrap();
    for _ in 0..3 {
        keep.recv().await.unwrap();
    }
    assert_eq!(
        bus.topic_stats("t"),
        Some(TopicStats {
            published: 3,
            delivered: 3,
            dropped: 2
        })
    );
}

#[tokio::test]
async fn a_closed_bus_hands_the_payload_back_and_subscribers_drain_then_end() {
    let bus = Bus::new("a");
    let sub = bus.subscribe(pat("t")).unwrap();
    bus.publish("t", 1).await.unwrap();
    bus.close();
    bus.close();
    assert_eq!(bus.publish("t", 2).await, Err(Closed(Value::Int(2))));
    assert!(bus.subscribe(pat("t")).is_err());
    assert_eq!(sub.recv().await.unwrap().payload(), &Value::Int(1));
    assert!(sub.recv().await.is_none());
}

#[tokio::test]
async fn fan_out_to_eight_subscribers_delivers_every_event_to_each() {
    let bus = Bus::new("a");
    let subs: Vec<_> = (0..8)
        .map(|_| {
            bus.subscribe_with(pat("t"), opts(4, Overflow::Wait))
                .unwrap()
        })
        .collect();
    let readers: Vec<_> = subs
        .into_iter()
        .map(|s| {
            tokio::spawn(async move {
                let mut sum = 0;
                while let Some(ev) = s.recv().await {
                    sum += ev.payload().as_int().unwrap();
                }
                sum
            })
        })
        .collect();
    for i in 0..1000 {
        bus.publish("t", i).await.unwrap();
    }
    bus.close();
    for r in readers {
        assert_eq!(r.await.unwrap(), (0..1000).sum::<i64>());
    }
    assert_eq!(bus.topic_stats("t").unwrap().delivered, 8000);
}

#[tokio::test]
async fn one_subscription_with_several_patterns_receives_each_event_once_and_can_change() {
    let bus = Bus::new("a");
    let options = SubscribeOptions {
        capacity: 16,
        overflow: Overflow::Wait,
    };
    let sub = bus
        .subscribe_many(vec![pat("a.*"), pat("a.b"), pat("c")], options)
        .unwrap();
    for t in ["a.b", "a.c", "c", "d"] {
        bus.publish(t, t).await.unwrap();
    }
    let mut got = Vec::new();
    while let Ok(ev) = sub.try_recv() {
        got.push(ev.topic().to_owned());
    }
    assert_eq!(got, ["a.b", "a.c", "c"]);
    sub.set_patterns(vec![pat("d")]);
    assert_eq!(sub.patterns(), [pat("d")]);
    for t in ["a.b", "c", "d"] {
        bus.publish(t, t).await.unwrap();
    }
    assert_eq!(sub.recv().await.unwrap().topic(), "d");
    assert!(sub.try_recv().is_err());
}
