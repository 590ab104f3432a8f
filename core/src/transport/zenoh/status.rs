//! Status records: what each agent says of itself, for observers such as `selflet console
//! --connect`. An agent's process puts them on `selflet/<ns>/agents/<agent>/status`; an
//! observer subscribes to every agent's. They change nothing in any agent: a record is an
//! agent's word about itself, checked for size and name here and for content by whoever
//! reads it.

use async_channel::{Receiver, TrySendError};
use zenoh::pubsub::Subscriber;

use super::{Zenoh, ZenohError};
use crate::name::is_valid_name;
use crate::sync::lock;

/// Every agent's status records, as they arrive: `(agent, bytes)`.
///
/// Bounded: when the reader falls behind, what arrives is dropped (the next record of the
/// same agent says it all again).
pub struct StatusWatch {
    records: Receiver<(String, Vec<u8>)>,
    _subscriber: Subscriber<()>,
}

impl StatusWatch {
    /// The next record; `None` once the session is closed.
    pub async fn recv(&self) -> Option<(String, Vec<u8>)> {
        self.records.recv().await.ok()
    }
}

impl Zenoh {
    /// Puts a status record of `agent`, one of this process's agents.
    ///
    /// # Errors
    ///
    /// `agent` is not an agent of this process, the record is larger than the network's
    /// message limit, or Zenoh refused it.
    pub async fn put_status(&self, agent: &str, record: Vec<u8>) -> Result<(), ZenohError> {
        if !lock(&self.shared.state).local.contains_key(agent) {
            return Err(ZenohError::Status(format!(
                "`{agent}` is not an agent of this process"
            )));
        }
        if record.len() > self.shared.max_message_bytes {
            return Err(ZenohError::Status(format!(
                "a status record of {} bytes is over the limit of {}",
                record.len(),
                self.shared.max_message_bytes
            )));
        }
        self.shared
            .session
            .put(self.shared.agent_key(agent, "status"), record)
            .await
            .map_err(|e| ZenohError::Status(e.to_string()))
    }

    /// Subscribes to every agent's status records, keeping up to `capacity` unread.
    ///
    /// # Errors
    ///
    /// Zenoh refused the subscription.
    pub async fn watch_status(&self, capacity: usize) -> Result<StatusWatch, ZenohError> {
        let (tx, records) = async_channel::bounded(capacity.max(1));
        let limit = self.shared.max_message_bytes;
        let prefix = format!("{}/agents/", self.shared.prefix);
        let subscriber = self
            .shared
            .session
            .declare_subscriber(self.shared.agent_key("*", "status"))
            .callback(move |sample| {
                let bytes = sample.payload().to_bytes();
                let Some(agent) = agent_of(sample.key_expr().as_str(), &prefix) else {
                    return;
                };
                if bytes.len() > limit {
                    return;
                }
                match tx.try_send((agent.to_owned(), bytes.into_owned())) {
                    Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_)) => {}
                }
            })
            .await
            .map_err(|e| ZenohError::Open(e.to_string()))?;
        Ok(StatusWatch {
            records,
            _subscriber: subscriber,
        })
    }
}

/// The agent a status key names, if the key is `<prefix><agent>/status` with a valid name.
fn agent_of<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let agent = key.strip_prefix(prefix)?.strip_suffix("/status")?;
    is_valid_name(agent).then_some(agent)
}
