//! How a [`Reply`] is written: `{"reply": kind, "value": …}`, plus `"advertised"` beside them
//! on a done reply that carries one.
//!
//! The advertisement sits beside `value` rather than in it so that a done reply's `value` is
//! the service's output whether or not the provider gossips: clients that speak the protocol
//! directly read the output where they always did.

use serde::{Deserialize, Serialize, Serializer};

use super::{Reply, TeachingPackage};
use crate::name::Name;
use crate::offer::OfferModes;
use crate::value::Value;

/// A reply as written, borrowing what it carries: writing one copies nothing.
#[derive(Serialize)]
struct ReplyOut<'a> {
    #[serde(flatten)]
    body: BodyOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    advertised: Option<f64>,
}

#[derive(Serialize)]
#[serde(tag = "reply", content = "value", rename_all = "snake_case")]
enum BodyOut<'a> {
    Done(&'a Value),
    Teach(&'a TeachingPackage),
    Referral(&'a [(Name, OfferModes)]),
    Refused(&'a str),
    Failed(&'a str),
}

/// A reply as read. An `advertised` beside any reply but a done one is ignored, as any field
/// the protocol does not define is.
#[derive(Deserialize)]
pub(super) struct ReplyIn {
    #[serde(flatten)]
    body: BodyIn,
    #[serde(default)]
    advertised: Option<f64>,
}

#[derive(Deserialize)]
#[serde(tag = "reply", content = "value", rename_all = "snake_case")]
enum BodyIn {
    Done(Value),
    Teach(Box<TeachingPackage>),
    Referral(Vec<(Name, OfferModes)>),
    Refused(String),
    Failed(String),
}

impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (body, advertised) = match self {
            Reply::Done { output, advertised } => (BodyOut::Done(output), *advertised),
            Reply::Teach(package) => (BodyOut::Teach(package), None),
            Reply::Referral(providers) => (BodyOut::Referral(providers), None),
            Reply::Refused(why) => (BodyOut::Refused(why), None),
            Reply::Failed(why) => (BodyOut::Failed(why), None),
        };
        ReplyOut { body, advertised }.serialize(serializer)
    }
}

impl From<ReplyIn> for Reply {
    fn from(reply: ReplyIn) -> Reply {
        match reply.body {
            BodyIn::Done(output) => Reply::Done {
                output,
                advertised: reply.advertised,
            },
            BodyIn::Teach(package) => Reply::Teach(package),
            BodyIn::Referral(providers) => Reply::Referral(providers),
            BodyIn::Refused(why) => Reply::Refused(why),
            BodyIn::Failed(why) => Reply::Failed(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(reply: &Reply) -> serde_json::Value {
        serde_json::to_value(reply).expect("a reply is written")
    }

    fn read(json: &str) -> Reply {
        serde_json::from_str(json).expect("a reply is read")
    }

    #[test]
    fn a_done_reply_keeps_its_output_under_value_with_or_without_an_advertisement() {
        let plain = Reply::done(Value::Int(6));
        assert_eq!(
            written(&plain),
            serde_json::json!({"reply": "done", "value": 6})
        );
        let advertised = Reply::Done {
            output: Value::Int(6),
            advertised: Some(0.85),
        };
        assert_eq!(
            written(&advertised),
            serde_json::json!({"reply": "done", "value": 6, "advertised": 0.85})
        );
        assert_eq!(
            read(r#"{"reply":"done","value":6,"advertised":0.85}"#),
            advertised
        );
        assert_eq!(
            read(r#"{"advertised":0.85,"value":6,"reply":"done"}"#),
            advertised
        );
        assert_eq!(read(r#"{"reply":"done","value":6}"#), plain);
    }

    #[test]
    fn an_advertisement_beside_another_reply_is_ignored() {
        assert_eq!(
            read(r#"{"reply":"failed","value":"boom","advertised":0.5}"#),
            Reply::Failed("boom".into())
        );
        assert_eq!(
            written(&Reply::Refused("no".into())),
            serde_json::json!({"reply": "refused", "value": "no"})
        );
    }

    #[test]
    fn an_advertisement_that_is_not_a_number_makes_the_reply_unreadable() {
        assert!(
            serde_json::from_str::<Reply>(r#"{"reply":"done","value":6,"advertised":"high"}"#)
                .is_err()
        );
    }
}
