//! Every topic selflet's own parts publish, each with its payload as a type.
//!
//! This table is the one place a topic's name and fields are written: publishers build the
//! typed payload and [`Bus::emit`](crate::bus::Bus::emit) it, readers (the CLI's summary,
//! tests, applications) read it back with [`Payload::from_value`], `selflet check` warns about
//! rules on topics no topic of [`TOPICS`] matches, and a test keeps the
//! event table of `policies/README.md` equal to [`markdown_table`].
//!
//! ```
//! use selflet_core::topic::{Executed, Payload};
//! use selflet_core::Value;
//!
//! let ev = Executed { service: "service1".into(), requester: "a".into(), seconds: 0.02 };
//! let payload = ev.to_value();
//! assert_eq!(payload.get("requester"), Some(&Value::from("a")));
//! assert_eq!(Executed::from_value(&payload), Some(ev));
//! ```

use crate::value::Value;

/// A payload of a topic of [`TOPICS`].
pub trait Payload: Sized {
    /// The topic it is published on.
    const TOPIC: &'static str;
    /// The payload as published.
    fn to_value(&self) -> Value;
    /// The payload read back; `None` if a field is missing or of another type.
    fn from_value(payload: &Value) -> Option<Self>;
}

/// One topic of the table: its name, the part that publishes it, its payload's fields, and
/// what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic.
    pub topic: &'static str,
    /// The SelfLet part (module) that publishes it.
    pub part: &'static str,
    /// The payload's fields, in order.
    pub fields: &'static [&'static str],
    /// When it is published.
    pub about: &'static str,
}

/// A field type of a payload.
trait Field: Sized {
    fn to_field(&self) -> Value;
    fn from_field(v: Option<&Value>) -> Option<Self>;
}

impl Field for String {
    fn to_field(&self) -> Value {
        Value::from(self.as_str())
    }
    fn from_field(v: Option<&Value>) -> Option<Self> {
        v?.as_str().map(str::to_owned)
    }
}

impl Field for i64 {
    fn to_field(&self) -> Value {
        Value::Int(*self)
    }
    fn from_field(v: Option<&Value>) -> Option<Self> {
        v?.as_int()
    }
}

impl Field for f64 {
    fn to_field(&self) -> Value {
        Value::Float(*self)
    }
    fn from_field(v: Option<&Value>) -> Option<Self> {
        v?.as_f64()
    }
}

impl Field for bool {
    fn to_field(&self) -> Value {
        Value::Bool(*self)
    }
    fn from_field(v: Option<&Value>) -> Option<Self> {
        v?.as_bool()
    }
}

/// Any value; absent reads as null.
impl Field for Value {
    fn to_field(&self) -> Value {
        self.clone()
    }
    fn from_field(v: Option<&Value>) -> Option<Self> {
        Some(v.cloned().unwrap_or_default())
    }
}

impl Field for Vec<String> {
    fn to_field(&self) -> Value {
        Value::List(self.iter().map(|s| Value::from(s.as_str())).collect())
    }
    fn from_field(v: Option<&Value>) -> Option<Self> {
        match v? {
            Value::List(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        }
    }
}

macro_rules! topics {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident = $topic:literal by $part:literal {
            $( $(#[doc = $fdoc:literal])+ $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {
        $(
            $(#[doc = $doc])+
            #[doc = concat!("\n\nPublished on `", $topic, "` by `", $part, "`.")]
            #[derive(Debug, Clone, PartialEq)]
            pub struct $name {
                $( $(#[doc = $fdoc])+ pub $field: $ty, )*
            }

            impl Payload for $name {
                const TOPIC: &'static str = $topic;
                fn to_value(&self) -> Value {
                    Value::map([ $( (stringify!($field), Field::to_field(&self.$field)) ),* ])
                }
                fn from_value(payload: &Value) -> Option<Self> {
                    Some($name { $( $field: Field::from_field(payload.get(stringify!($field)))?, )* })
                }
            }
        )*

        /// Every topic selflet publishes, in the order of the table in `policies/README.md`.
        pub const TOPICS: &[TopicInfo] = &[
            $( TopicInfo {
                topic: $topic,
                part: $part,
                fields: &[ $( stringify!($field) ),* ],
                about: concat!($($doc),+),
            }, )*
        ];
    };
}

topics! {
    /// The agent moved in its lifecycle.
    Lifecycle = "agent.lifecycle" by "agent" {
        /// `starting`, `running`, `stopping` or `stopped`.
        state: String,
    }
    /// A fact was set to a new value.
    FactChanged = "knowledge.fact.changed" by "knowledge" {
        /// The fact.
        key: String,
        /// Its value before (null if it had none).
        old: Value,
        /// Its value now.
        new: Value,
    }
    /// A fact was removed.
    FactRemoved = "knowledge.fact.removed" by "knowledge" {
        /// The fact.
        key: String,
        /// Its last value.
        old: Value,
    }
    /// A service was offered, withdrawn (no modes) or offered differently.
    ServiceChanged = "knowledge.service.changed" by "knowledge" {
        /// The service.
        service: String,
        /// The behaviour that implements it here, or null.
        behaviour: Value,
        /// The modes it is offered in.
        modes: Vec<String>,
        /// The services its behaviour calls.
        requires: Vec<String>,
    }
    /// A behaviour instance entered a state.
    StateEntered = "behaviour.state" by "behaviour" {
        /// The behaviour.
        behaviour: String,
        /// The instance.
        instance: i64,
        /// The state.
        state: String,
    }
    /// A behaviour instance took a transition.
    TransitionTaken = "behaviour.transition" by "behaviour" {
        /// The behaviour.
        behaviour: String,
        /// The instance.
        instance: i64,
        /// The state it left.
        from: String,
        /// The state it entered.
        to: String,
        /// What moved it: `done`, `error`, `always`, `after <duration>` or an event's topic.
        trigger: String,
    }
    /// A behaviour instance ended with an output.
    BehaviourDone = "behaviour.done" by "behaviour" {
        /// The behaviour.
        behaviour: String,
        /// The instance.
        instance: i64,
        /// Its output.
        output: Value,
    }
    /// A behaviour instance ended with an error.
    BehaviourFailed = "behaviour.failed" by "behaviour" {
        /// The behaviour.
        behaviour: String,
        /// The instance.
        instance: i64,
        /// The state it was in.
        state: String,
        /// What went wrong.
        error: String,
    }
    /// A request left the agent.
    RequestOutgoing = "service.request.outgoing" by "negotiation" {
        /// The service.
        service: String,
        /// The agent asked.
        provider: String,
        /// The modes asked for, preferred first.
        modes: Vec<String>,
    }
    /// A request arrived.
    RequestIncoming = "service.request.incoming" by "negotiation" {
        /// The service.
        service: String,
        /// The agent asking.
        requester: String,
        /// The modes asked for, preferred first.
        modes: Vec<String>,
    }
    /// The agent ran a service for a peer.
    Executed = "service.executed" by "negotiation" {
        /// The service.
        service: String,
        /// The agent it ran it for.
        requester: String,
        /// How long it took, from the request's arrival to its answer (here or where the
        /// service's load is redirected), in seconds.
        seconds: f64,
    }
    /// A call failed, here or at a provider.
    ServiceFailed = "service.failed" by "negotiation" {
        /// The service.
        service: String,
        /// The provider that failed (empty if none was found).
        provider: String,
        /// Why.
        error: String,
    }
    /// The agent learned a service (or upgraded what it had learned).
    ServiceLearned = "service.learned" by "negotiation" {
        /// The service.
        service: String,
        /// Who taught it.
        teacher: String,
        /// Whether it replaced an earlier lesson of the service.
        upgrade: bool,
    }
    /// The agent forgot a learned service.
    ServiceForgotten = "service.forgotten" by "negotiation" {
        /// The service.
        service: String,
        /// Who had taught it.
        teacher: String,
    }
    /// The agent taught a service.
    ServiceTaught = "service.taught" by "negotiation" {
        /// The service.
        service: String,
        /// The agent taught.
        learner: String,
    }
    /// The agent handed a request on to the neighbour its load is redirected to, which
    /// answered it.
    ServiceRedirected = "service.redirected" by "negotiation" {
        /// The service.
        service: String,
        /// The neighbour that ran it.
        to: String,
    }
    /// Another agent appeared on the network.
    NeighbourJoined = "neighbour.joined" by "negotiation" {
        /// The agent.
        agent: String,
    }
    /// Another agent left the network, or its process or machine is gone (on Zenoh).
    NeighbourLeft = "neighbour.left" by "negotiation" {
        /// The agent.
        agent: String,
    }
    /// An item (a service, by default) is frequent among the events a Space-Saving predictor
    /// counts.
    Frequent = "prediction.frequent" by "plugins::space_saving" {
        /// The item.
        item: String,
        /// Its count (an upper bound).
        count: i64,
        /// How much the count may overestimate.
        error: i64,
        /// Its share of the events counted.
        support: f64,
        /// Events counted in the window.
        events: i64,
        /// The window's length in seconds, or null.
        window_s: Value,
    }
    /// A load forecast.
    LoadPrediction = "prediction.load" by "plugins::forecast" {
        /// The model: `ewma`, `holt` or `holt_winters`.
        model: String,
        /// How many sample periods ahead.
        horizon_samples: i64,
        /// How many seconds ahead.
        horizon_s: f64,
        /// The utilization forecast.
        utilization: f64,
        /// Instances per second forecast, per behaviour.
        rates: Value,
    }
    /// A predictor returned an error for an event.
    PredictionError = "prediction.error" by "prediction" {
        /// The predictor.
        predictor: String,
        /// The error.
        error: String,
    }
    /// A predictor panicked and was unplugged.
    PredictionFailed = "prediction.failed" by "prediction" {
        /// The predictor.
        predictor: String,
        /// The panic's message.
        error: String,
    }
    /// A rule fired on an event of topic `on`; `actions` says what each of its actions does.
    /// They run next, in the event's trace.
    PolicyFired = "policy.fired" by "agent" {
        /// The rule.
        rule: String,
        /// The topic of the event it reacted to.
        on: String,
        /// What its actions do, one line each, in order.
        actions: Vec<String>,
    }
    /// The agent's load over its last sample period, published when a predictor or policy
    /// consumes it.
    LoadSample = "load.sample" by "agent" {
        /// The period, in seconds.
        period_s: f64,
        /// Seconds of work done in it (the states' `demand`).
        busy_s: f64,
        /// `busy_s / period_s`.
        utilization: f64,
        /// Instances started per second, per behaviour.
        rates: Value,
    }
    /// A learner's observation window ended and the composition for the next is in force.
    LearnerWindow = "learner.window" by "learning" {
        /// The learner.
        learner: String,
        /// The service it composes.
        service: String,
        /// The composition in force during the window that ended.
        previous: String,
        /// The composition now in force.
        composition: String,
        /// The window's reward, in 0..=1 (null if nothing was measured).
        reward: Value,
        /// The environment class the learner put the window in (null if it has none).
        class: Value,
        /// Requests measured in the window.
        requests: i64,
    }
    /// A deployment's coordinator decided: a plan executed, or why not.
    DeploymentDecision = "deployment.decision" by "deployment" {
        /// The coordinator that decided (this agent).
        coordinator: String,
        /// Members before the plan.
        members: i64,
        /// The plan's actions, as text (`add on h1`, `remove h1-m3`, `move h2-m4 to h3`).
        actions: Value,
        /// Utility of the configuration before.
        utility_before: f64,
        /// Utility the plan expects.
        utility: f64,
        /// Migration cost of the plan.
        cost: f64,
        /// Whether it was executed (false: no gain above the threshold, or an error).
        executed: bool,
        /// Why nothing was executed, or which actions failed (empty when all went well).
        note: String,
    }
    /// This agent became its deployment's coordinator (the lowest live member).
    DeploymentCoordinator = "deployment.coordinator" by "deployment" {
        /// This agent.
        coordinator: String,
        /// The coordinator it took over from, if it knew one (empty otherwise).
        previous: String,
    }
}

/// The table as Markdown, as `policies/README.md` shows it.
pub fn markdown_table() -> String {
    let mut out = String::from("| topic | published by | payload | when |\n|---|---|---|---|\n");
    for t in TOPICS {
        let about = t.about.trim().replace('\n', " ");
        out.push_str(&format!(
            "| `{}` | `{}` | `{{{}}}` | {} |\n",
            t.topic,
            t.part,
            t.fields.join(", "),
            about
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_payload_reads_back_what_was_written() {
        let ev = TransitionTaken {
            behaviour: "b".into(),
            instance: 3,
            from: "a".into(),
            to: "c".into(),
            trigger: "done".into(),
        };
        assert_eq!(TransitionTaken::from_value(&ev.to_value()), Some(ev));
        assert_eq!(TransitionTaken::from_value(&Value::Null), None);
        let topics: std::collections::BTreeSet<_> = TOPICS.iter().map(|t| t.topic).collect();
        assert_eq!(topics.len(), TOPICS.len(), "every topic once");
    }
}
