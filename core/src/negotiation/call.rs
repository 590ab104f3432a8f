//! The one call path: where a call runs, decided once for application code, behaviours and
//! peers alike.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::Either;
use tokio::time::Instant;

use super::{CallError, CallOptions, Negotiator, Outcome};
use crate::behaviour::{BoxFuture, ErrorKind, InstanceLimits, ServiceCaller};
use crate::error::BoxError;
use crate::knowledge::Service;
use crate::offer::OfferMode;
use crate::topic;
use crate::trace;
use crate::transport::{Message, Reply};
use crate::value::Value;

/// Where a call comes from, as far as redirection cares.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin<'a> {
    /// The peer whose request this is, if any: never redirected back to it.
    pub(super) requester: Option<&'a str>,
    /// How many agents forwarded it already: a forwarded request is not forwarded again.
    pub(super) hops: u8,
}

impl Origin<'_> {
    pub(super) const HERE: Origin<'static> = Origin {
        requester: None,
        hops: 0,
    };
}

impl Negotiator {
    /// Calls `service`: here if the agent runs it, otherwise at a provider; a service taught
    /// on the way runs here. `depth` counts the calls of behaviours this one is nested in.
    pub(crate) async fn call(
        &self,
        service: &str,
        input: Value,
        depth: u32,
        options: CallOptions,
    ) -> Result<Value, CallError> {
        // A call made outside any trace starts one: everything it causes, here and at the
        // providers, carries its id.
        trace::continue_or_start(async move {
            let limit = options
                .timeout
                .map(|after| (crate::duration::deadline(after), after));
            // Boxed, each way apart: running here and asking a provider are each over a
            // kilobyte of future, which every wrapper the call passes through would copy
            // otherwise; a call carries only the one it takes.
            let work = match self.runnable(service) {
                Some(offer) => Either::Left(Box::pin(async move {
                    self.run_here(&offer, input, Origin::HERE, depth).await
                })),
                None => {
                    let deadline = limit.map(|(deadline, _)| deadline);
                    Either::Right(Box::pin(self.call_remote(service, input, depth, deadline)))
                }
            };
            let Some((deadline, after)) = limit else {
                return work.await;
            };
            tokio::time::timeout_at(deadline, work)
                .await
                .unwrap_or_else(|_| {
                    Err(CallError::TimedOut {
                        service: service.to_owned(),
                        after,
                    })
                })
        })
        .await
    }

    /// Calls `service` at a provider; if it was taught on the way, runs it here.
    // Not an `async fn`: one would hold its arguments twice, in every call.
    #[allow(clippy::manual_async_fn)]
    fn call_remote<'a>(
        &'a self,
        service: &'a str,
        input: Value,
        depth: u32,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<Value, CallError>> + 'a {
        async move {
            let modes = self.knowledge.ask_modes(service);
            // Borrowed: each attempt copies it into its message, and this call keeps it for a
            // service taught on the way, which then runs here with it.
            let outcome = self.request(service, &modes, &input, deadline).await?;
            match outcome {
                Outcome::Done { value, .. } => Ok(value),
                // Taught on the way: from now on it runs here, starting with this call.
                Outcome::Learned { teacher, .. } => match self.runnable(service) {
                    Some(offer) => {
                        Box::pin(self.run_here(&offer, input, Origin::HERE, depth)).await
                    }
                    None => Err(CallError::Unavailable {
                        service: service.to_owned(),
                        attempts: vec![super::Attempt {
                            provider: teacher,
                            error: super::AttemptError::Unexpected(
                                "a service that does not run here",
                            ),
                        }],
                    }),
                },
            }
        }
    }

    /// The service, if the agent has an enabled implementation of it.
    pub(super) fn runnable(&self, service: &str) -> Option<Arc<Service>> {
        self.knowledge
            .shared_service(service)
            .filter(|s| self.implements(s))
    }

    /// Whether the agent has an enabled implementation of `offer`.
    pub(super) fn implements(&self, offer: &Service) -> bool {
        offer
            .behaviour
            .as_ref()
            .is_some_and(|b| self.behaviours.contains(b))
    }

    /// Runs `service` on this agent — or on the neighbour part of its load is redirected to,
    /// falling back to this agent if that fails, so that redirecting never loses a request.
    // Not an `async fn`: most runs are not redirected, and their future is the behaviour's
    // run and nothing around it (an `async fn` would add its arguments twice), in every
    // request served.
    pub(super) fn run_here<'a>(
        &'a self,
        offer: &'a Service,
        input: Value,
        origin: Origin<'a>,
        depth: u32,
    ) -> impl Future<Output = Result<Value, CallError>> + 'a {
        match self.redirect_target(offer, origin) {
            None => Either::Left(self.run_local(offer, input, depth)),
            // Boxed: most calls run here, and would otherwise carry a forward's size.
            Some(to) => Either::Right(Box::pin(self.run_redirected(to, offer, input, depth))),
        }
    }

    /// The neighbour to hand this run to, if part of the load of `offer` is redirected and
    /// it is this run's turn: never back to the requester, and never a request forwarded
    /// already.
    fn redirect_target(&self, offer: &Service, origin: Origin<'_>) -> Option<String> {
        if origin.hops != 0 {
            return None;
        }
        self.knowledge
            .redirect_turn(&offer.name)
            .filter(|to| Some(to.as_str()) != origin.requester && self.talks_to(to))
    }

    /// Runs `offer` on the neighbour `to`, or here if that fails.
    async fn run_redirected(
        &self,
        to: String,
        offer: &Service,
        input: Value,
        depth: u32,
    ) -> Result<Value, CallError> {
        let service = offer.name.as_str();
        match self.forward(&to, service, input.clone()).await {
            Ok(v) => {
                let event = || topic::ServiceRedirected {
                    service: service.to_owned(),
                    to: to.clone(),
                };
                let _ = self.bus.emit_with(event).await;
                return Ok(v);
            }
            Err(e) => {
                tracing::warn!(agent = %self.agent, %service, neighbour = %to, "redirect failed, running here: {e}");
            }
        }
        self.run_local(offer, input, depth).await
    }

    /// Runs `offer`'s behaviour on this agent. Shutdown cancels it after its grace period.
    fn run_local(
        &self,
        offer: &Service,
        input: Value,
        depth: u32,
    ) -> impl Future<Output = Result<Value, CallError>> {
        let behaviour = offer.behaviour.as_deref().unwrap_or(&offer.name);
        let limits = InstanceLimits {
            time: offer.time_limit.or(Some(self.service_time())),
            ..self.runtime.limits()
        };
        self.runtime
            .run_named(behaviour, input, depth, limits)
            .map(|r| {
                r.map_err(|e| match e.kind() {
                    ErrorKind::Cancelled => CallError::Stopped,
                    _ => CallError::Local(e),
                })
            })
    }

    /// The time limit of a service run here that sets none of its own.
    fn service_time(&self) -> std::time::Duration {
        self.runtime
            .limits()
            .time
            .unwrap_or(crate::behaviour::DEFAULT_SERVICE_TIME)
    }

    /// Calls `service` at `agent` and nowhere else (can-do only): for services whose answer
    /// depends on who gives it, such as a host's status.
    pub(crate) async fn call_at(
        &self,
        agent: &str,
        service: &str,
        input: Value,
    ) -> Result<Value, CallError> {
        if !self.talks_to(agent) {
            return Err(CallError::Unavailable {
                service: service.to_owned(),
                attempts: vec![super::Attempt {
                    provider: agent.into(),
                    error: super::AttemptError::Unexpected("an agent this one does not talk to"),
                }],
            });
        }
        trace::continue_or_start(self.forward(agent, service, input)).await
    }

    /// Hands a request on to the neighbour its load is redirected to, can-do only.
    async fn forward(&self, to: &str, service: &str, input: Value) -> Result<Value, CallError> {
        self.announce_outgoing(service, to, &[OfferMode::CanDo])
            .await;
        let body = Message::Request {
            service: service.into(),
            modes: vec![OfferMode::CanDo],
            input,
            hops: 1,
        };
        let fail = |error| CallError::Unavailable {
            service: service.to_owned(),
            attempts: vec![super::Attempt {
                provider: to.into(),
                error,
            }],
        };
        match self.ask(to, body, None).await {
            Ok(Reply::Done { output, .. }) => Ok(output),
            Ok(Reply::Failed(e)) => Err(fail(super::AttemptError::Failed(e))),
            Ok(Reply::Refused(e)) => Err(fail(super::AttemptError::Refused(e))),
            Ok(other) => Err(fail(super::AttemptError::Unexpected(
                Message::Reply(other).kind(),
            ))),
            Err(e) => Err(fail(e)),
        }
    }
}

impl ServiceCaller for Negotiator {
    fn call_service(
        &self,
        service: String,
        input: Value,
        depth: u32,
    ) -> BoxFuture<'static, Result<Value, BoxError>> {
        // The future must own what it uses; the agent keeps the negotiator alive while it runs.
        let this: Option<Arc<Negotiator>> = self.self_ref.get().and_then(std::sync::Weak::upgrade);
        Box::pin(async move {
            let this = this.ok_or(CallError::Stopped)?;
            this.call(&service, input, depth, CallOptions::default())
                .await
                .map_err(BoxError::from)
        })
    }
}
