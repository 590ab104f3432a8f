//! Hosts across processes: a host agent serves its machine's operations as services
//! ([`HostServer`]); members reach every host through their own agent, on the one call path
//! ([`RemoteHosts`]). Over Zenoh in secure mode, every request is authenticated as any other
//! message: only agents whose public key a host has can ask it anything.
//!
//! | service | input | answer |
//! |---|---|---|
//! | `deploy-status` | — | `{name, up, capacity, load, metrics, attributes, members}` |
//! | `deploy-start` | — | the new member's name |
//! | `deploy-stop` | `{member}` | `true` |

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::hosts::{HostError, HostStatus, Hosts, Rates};
use crate::agent::{AgentBuilder, AgentHandle};
use crate::behaviour::Behaviour;
use crate::error::BoxError;
use crate::knowledge::Service;
use crate::name::is_valid_name;
use crate::offer::OfferModes;
use crate::source::{LoadError, SourceFile};
use crate::sync::lock;
use crate::value::Value;

/// The service a host answers its status on; hosts are found by who offers it.
pub const STATUS: &str = "deploy-status";
/// The service that starts a member.
pub const START: &str = "deploy-start";
/// The service that stops one.
pub const STOP: &str = "deploy-stop";

/// Most members a host's status may list; a longer one is refused as malformed.
pub const MAX_MEMBERS_PER_HOST: usize = 1024;
/// Most attributes or metrics a host's status may carry.
pub const MAX_HOST_FIELDS: usize = 64;

/// Starts a member on this host: its name in, the running agent out.
pub type MemberSpawner =
    Arc<dyn Fn(String) -> BoxFuture<'static, Result<AgentHandle, BoxError>> + Send + Sync>;

/// A host's side: its members, and the three services that start, stop and report them.
#[derive(Clone)]
pub struct HostServer {
    inner: Arc<Server>,
}

struct Server {
    name: String,
    capacity: f64,
    attributes: BTreeMap<String, Value>,
    spawn: MemberSpawner,
    members: Mutex<BTreeMap<String, AgentHandle>>,
    next: AtomicU64,
    // Busy seconds of the members, per second.
    load: Rates<1>,
}

impl std::fmt::Debug for HostServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServer")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl HostServer {
    /// A host named like its agent, of `capacity` cores, described by `attributes`.
    pub fn new(
        name: &str,
        capacity: f64,
        attributes: BTreeMap<String, Value>,
        spawn: MemberSpawner,
    ) -> HostServer {
        HostServer {
            inner: Arc::new(Server {
                name: name.to_owned(),
                capacity,
                attributes,
                spawn,
                members: Mutex::new(BTreeMap::new()),
                next: AtomicU64::new(1),
                load: Rates::new(),
            }),
        }
    }

    /// Gives the host agent the three services.
    pub fn install(&self, builder: AgentBuilder) -> Result<AgentBuilder, LoadError> {
        let mut b = builder;
        for (service, ability) in [
            (STATUS, "deploy_status"),
            (START, "deploy_start"),
            (STOP, "deploy_stop"),
        ] {
            let yaml = format!(
                "behaviour: {service}\ninitial: run\nstates:\n  run:\n    do: {{ ability: {ability}, args: {{ input: \"input\" }}, save: out }}\n    on: {{ done: finish, error: failed }}\n  finish: {{ final: true, output: out }}\n  failed: {{ final: true, error: event }}\n"
            );
            let behaviour = Behaviour::parse(SourceFile::new(format!("{service}.yaml"), yaml))?;
            b = b
                .behaviour(behaviour)
                .service(Service::new(service, OfferModes::CAN_DO));
        }
        let (s, st, sp) = (self.clone(), self.clone(), self.clone());
        Ok(b.ability("deploy_status", move |_| {
            let s = s.clone();
            async move { Ok::<_, BoxError>(s.status()) }
        })
        .ability("deploy_start", move |_| {
            let s = st.clone();
            async move { s.start_member().await.map(Value::from) }
        })
        .ability("deploy_stop", move |v: Value| {
            let s = sp.clone();
            async move {
                let member = v
                    .get("input")
                    .and_then(|i| i.get("member"))
                    .and_then(Value::as_str)
                    .ok_or("`deploy-stop` takes `{member}`")?
                    .to_owned();
                s.stop_member(&member).await?;
                Ok(Value::Bool(true))
            }
        }))
    }

    /// Starts a member here; returns its name (`<host>-m<n>`).
    pub async fn start_member(&self) -> Result<String, BoxError> {
        let s = &self.inner;
        let name = format!("{}-m{}", s.name, s.next.fetch_add(1, Ordering::Relaxed));
        let agent = (s.spawn)(name.clone()).await?;
        lock(&s.members).insert(name.clone(), agent);
        Ok(name)
    }

    /// Stops a member of this host: it leaves the books and stops offering at once, then
    /// finishes its work and leaves, in the background.
    pub async fn stop_member(&self, member: &str) -> Result<(), HostError> {
        let agent = lock(&self.inner.members)
            .remove(member)
            .ok_or_else(|| HostError::UnknownMember(member.to_owned()))?;
        super::hosts::retire(agent).await;
        Ok(())
    }

    /// The running members (a member that stopped by itself leaves the books).
    pub fn members(&self) -> Vec<AgentHandle> {
        let mut members = lock(&self.inner.members);
        members.retain(|_, a| a.lifecycle() != crate::agent::Lifecycle::Stopped);
        members.values().cloned().collect()
    }

    fn status(&self) -> Value {
        let s = &self.inner;
        let members = self.members();
        let busy: f64 = members.iter().map(|a| a.load_counters().busy_seconds).sum();
        let [load] = s.load.measure([busy]);
        let status = HostStatus {
            name: s.name.clone(),
            up: true,
            capacity: s.capacity,
            load,
            metrics: BTreeMap::from([("members".to_owned(), members.len() as f64)]),
            attributes: s.attributes.clone(),
            members: members.iter().map(|a| a.name().to_owned()).collect(),
        };
        status.to_value()
    }
}

impl HostStatus {
    /// The status as it travels.
    pub fn to_value(&self) -> Value {
        let floats = |m: &BTreeMap<String, f64>| {
            Value::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::Float(*v)))
                    .collect(),
            )
        };
        Value::map([
            ("name", Value::from(self.name.as_str())),
            ("up", Value::Bool(self.up)),
            ("capacity", Value::Float(self.capacity)),
            ("load", Value::Float(self.load)),
            ("metrics", floats(&self.metrics)),
            ("attributes", Value::from(self.attributes.clone())),
            (
                "members",
                Value::List(
                    self.members
                        .iter()
                        .map(|m| Value::from(m.as_str()))
                        .collect(),
                ),
            ),
        ])
    }

    /// A status as a peer sent it, checked: valid names, finite numbers, bounded lists — and
    /// the host's own name, so that a host cannot speak for another.
    pub fn from_value(v: &Value, host: &str) -> Result<HostStatus, String> {
        let num = |k: &str| {
            v.get(k)
                .and_then(Value::as_f64)
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or(format!("`{k}` is not a finite, non-negative number"))
        };
        if v.get("name").and_then(Value::as_str) != Some(host) {
            return Err(format!("the status does not name `{host}`"));
        }
        let map = |k: &str| match v.get(k) {
            Some(Value::Map(m)) if m.len() <= MAX_HOST_FIELDS => Ok(m.clone()),
            _ => Err(format!(
                "`{k}` is not a map of at most {MAX_HOST_FIELDS} entries"
            )),
        };
        let metrics = map("metrics")?
            .into_iter()
            .map(|(k, x)| match x.as_f64().filter(|x| x.is_finite()) {
                Some(x) => Ok((k, x)),
                None => Err(format!("metric `{k}` is not a finite number")),
            })
            .collect::<Result<_, _>>()?;
        let members = match v.get("members") {
            Some(Value::List(l)) if l.len() <= MAX_MEMBERS_PER_HOST => l
                .iter()
                .map(|m| match m.as_str() {
                    Some(n) if is_valid_name(n) => Ok(n.to_owned()),
                    _ => Err("a member is not a valid name".to_owned()),
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(format!(
                    "`members` is not a list of at most {MAX_MEMBERS_PER_HOST} names"
                ));
            }
        };
        Ok(HostStatus {
            name: host.to_owned(),
            up: v.get("up").and_then(Value::as_bool).unwrap_or(false),
            capacity: num("capacity")?,
            load: num("load")?,
            metrics,
            attributes: map("attributes")?.into_iter().collect(),
            members,
        })
    }
}

/// Every host that offers [`STATUS`], reached through a member's own agent.
pub struct RemoteHosts {
    agent: AgentHandle,
    // Which host each member was last seen on, to know whom to ask to stop it.
    seen: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for RemoteHosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteHosts")
            .field("agent", &self.agent.name())
            .finish_non_exhaustive()
    }
}

impl RemoteHosts {
    /// The hosts `agent` knows of (those it heard offer [`STATUS`]).
    pub fn new(agent: &AgentHandle) -> RemoteHosts {
        RemoteHosts {
            agent: agent.clone(),
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    async fn host_names(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .agent
            .providers_of(STATUS)
            .await
            .into_iter()
            .map(String::from)
            .collect();
        hosts.sort();
        hosts
    }

    async fn ask(&self, host: &str, service: &str, input: Value) -> Result<Value, HostError> {
        self.agent
            .call_at(host, service, input)
            .await
            .map_err(|e| HostError::Unreachable {
                host: host.to_owned(),
                why: e.to_string(),
            })
    }
}

impl Hosts for RemoteHosts {
    fn members(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, HostError>> {
        Box::pin(async move {
            let status = self.status().await?;
            Ok(status
                .into_iter()
                .flat_map(|h| h.members.into_iter().map(move |m| (m, h.name.clone())))
                .collect())
        })
    }

    /// Hosts that do not answer, or answer with a malformed status, are left out: to the
    /// coordinator they are down, and their members gone.
    fn status(&self) -> BoxFuture<'_, Result<Vec<HostStatus>, HostError>> {
        Box::pin(async move {
            let hosts = self.host_names().await;
            let answers = futures_util::future::join_all(
                hosts.iter().map(|h| self.ask(h, STATUS, Value::Null)),
            )
            .await;
            let mut out = Vec::new();
            for (h, answer) in hosts.iter().zip(answers) {
                match answer.map(|v| HostStatus::from_value(&v, h)) {
                    Ok(Ok(s)) => out.push(s),
                    Ok(Err(why)) => {
                        tracing::warn!(agent = %self.agent.name(), host = %h, %why, "malformed host status")
                    }
                    Err(e) => {
                        tracing::debug!(agent = %self.agent.name(), host = %h, error = %e, "host did not answer")
                    }
                }
            }
            let mut seen = lock(&self.seen);
            seen.clear();
            for s in &out {
                seen.extend(s.members.iter().map(|m| (m.clone(), s.name.clone())));
            }
            Ok(out)
        })
    }

    fn start<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<String, HostError>> {
        Box::pin(async move {
            let v = self.ask(host, START, Value::Null).await?;
            match v.as_str() {
                Some(name) if is_valid_name(name) => Ok(name.to_owned()),
                _ => Err(HostError::Unreachable {
                    host: host.to_owned(),
                    why: "it did not answer with a member's name".into(),
                }),
            }
        })
    }

    fn stop<'a>(&'a self, member: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        Box::pin(async move {
            let host = lock(&self.seen)
                .get(member)
                .cloned()
                .ok_or_else(|| HostError::UnknownMember(member.to_owned()))?;
            let input = Value::map([("member", Value::from(member))]);
            self.ask(&host, STOP, input).await.map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(members: usize, metrics: usize, capacity: f64) -> Value {
        HostStatus {
            name: "h1".into(),
            up: true,
            capacity,
            load: 0.0,
            metrics: (0..metrics).map(|i| (format!("m{i}"), 1.0)).collect(),
            attributes: BTreeMap::new(),
            members: (0..members).map(|i| format!("h1-m{i}")).collect(),
        }
        .to_value()
    }

    #[test]
    fn a_host_status_round_trips_and_its_limits_hold() {
        let ok = status(MAX_MEMBERS_PER_HOST, MAX_HOST_FIELDS, 2.0);
        let back = HostStatus::from_value(&ok, "h1").unwrap();
        assert_eq!(back.members.len(), MAX_MEMBERS_PER_HOST);
        assert!(
            HostStatus::from_value(&ok, "h2").is_err(),
            "a host speaks for itself only"
        );
        for bad in [
            status(MAX_MEMBERS_PER_HOST + 1, 0, 2.0),
            status(0, MAX_HOST_FIELDS + 1, 2.0),
            status(0, 0, f64::NAN),
            status(0, 0, -1.0),
            Value::from("h1"),
        ] {
            assert!(HostStatus::from_value(&bad, "h1").is_err(), "{bad:?}");
        }
    }
}
