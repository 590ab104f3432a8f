//! The provider's side: answering requests in the requester's modes.

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use futures_util::FutureExt;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::call::Origin;
use super::requester::mode_names;
use super::{MAX_IN_FLIGHT_PER_PEER, MAX_REFERRAL, Negotiator};
use crate::knowledge::Service;
use crate::name::Name;
use crate::offer::{OfferMode, OfferModes};
use crate::sync::lock;
use crate::topic;
use crate::trace::{self, TraceId};
use crate::transport::{Message, Refusal, Reply};
use crate::value::Value;

/// How many senders' entries are kept once none of their requests is in flight, so that
/// the next request of an agent that keeps calling does not make its entry again; beyond
/// these an entry goes when its last request is answered, which bounds the table by what
/// is in flight.
const KEPT_SENDERS: usize = 4;

/// Requests being served, per requester, by id.
#[derive(Debug, Default)]
pub(super) struct InFlight(BTreeMap<Name, Vec<u64>>);

impl InFlight {
    /// Takes request `id` of `from` in, unless it is in flight already or `from` has
    /// [`MAX_IN_FLIGHT_PER_PEER`] requests in flight.
    fn admit(&mut self, from: &str, id: u64) -> Result<(), Refusal> {
        if !self.0.contains_key(from) {
            self.0.insert(from.into(), Vec::new());
        }
        let Some(ids) = self.0.get_mut(from) else {
            return Err(Refusal::TooManyInFlight);
        };
        if ids.contains(&id) {
            return Err(Refusal::DuplicateRequest);
        }
        if ids.len() >= MAX_IN_FLIGHT_PER_PEER {
            return Err(Refusal::TooManyInFlight);
        }
        ids.push(id);
        Ok(())
    }

    /// Request `id` of `from` is answered.
    fn done(&mut self, from: &str, id: u64) {
        let kept = self.0.len() <= KEPT_SENDERS;
        if let Some(ids) = self.0.get_mut(from) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                if kept {
                    // What a burst took is given back.
                    ids.shrink_to(KEPT_SENDERS);
                } else {
                    self.0.remove(from);
                }
            }
        }
    }

    /// Forgets a requester that left.
    pub(super) fn forget(&mut self, from: &str) {
        self.0.remove(from);
    }
}

/// How deep answers given at once may nest on one thread: a provider answering at once may
/// call a service whose provider answers at once too, on the same stack (within a process,
/// on the caller's). Deeper answers go on as tasks, so that a chain or a cycle of agents
/// calling each other cannot overflow the stack.
const MAX_NESTED_ANSWERS: u8 = 4;

thread_local! {
    // Answers given at once being polled on this thread, one inside another.
    static NESTED: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// The services whose last answer waited, one bit per hash of the name: a collision of two
/// names' bits only costs a poll or a spawn.
#[derive(Debug, Default)]
pub(super) struct WaitMarks(AtomicU64);

impl WaitMarks {
    /// The bit of `service`.
    fn mark(service: &str) -> u64 {
        1 << (foldhash::fast::FixedState::default().hash_one(service) & 63)
    }

    fn waited(&self, mark: u64) -> bool {
        self.0.load(Ordering::Relaxed) & mark != 0
    }

    /// Records whether the last answer under `mark` waited.
    fn record(&self, mark: u64, waited: bool) {
        // Written only on a change: most answers leave the bit as it was.
        if waited == self.waited(mark) {
            return;
        }
        if waited {
            self.0.fetch_or(mark, Ordering::Relaxed);
        } else {
            self.0.fetch_and(!mark, Ordering::Relaxed);
        }
    }
}

/// A request as it arrived.
pub(super) struct Request {
    pub(super) from: Name,
    pub(super) id: u64,
    pub(super) service: Name,
    pub(super) modes: Vec<OfferMode>,
    pub(super) input: Value,
    pub(super) hops: u8,
}

impl Negotiator {
    /// Takes a request in: refused at once if its sender may not make it, otherwise answered
    /// in the requester's trace (`trace`, or a new one for a peer that sent none): here if
    /// the answer needs no waiting, else as in-flight work of its own, so that a slow service
    /// does not hold the inbox up and shutdown answers it or lets it finish.
    pub(super) fn on_request(
        self: &Arc<Self>,
        mut r: Request,
        trace: Option<TraceId>,
        work: &TaskTracker,
    ) {
        if let Err(why) = self.admit_request(&r) {
            self.refuse(why, &r.from, "request");
            let reason = match why {
                Refusal::NotNeighbour => format!("`{}` does not talk to `{}`", self.agent, r.from),
                Refusal::DuplicateRequest => format!("request {} is in flight already", r.id),
                _ => format!(
                    "`{}` has {MAX_IN_FLIGHT_PER_PEER} requests of yours in flight already",
                    self.agent
                ),
            };
            return self.reply(&r.from, r.id, Reply::Refused(reason));
        }
        if work.is_closed() {
            self.done_with(&r.from, r.id);
            return self.reply(&r.from, r.id, Reply::Failed("the agent is stopping".into()));
        }
        let this = Arc::clone(self);
        let mark = WaitMarks::mark(&r.service);
        let id = trace.unwrap_or_default();
        let span = tracing::info_span!("serve", agent = %self.agent, service = %r.service, from = %r.from, trace = %id);
        // Moved into the run, not copied: the request needs it no more. Taken out here, not
        // in the future: rebinding the request there would hold it twice (120 bytes more in
        // every request served).
        let mut input = std::mem::take(&mut r.input);
        let served = async move {
            let event = || topic::RequestIncoming {
                service: r.service.as_str().to_owned(),
                requester: r.from.as_str().to_owned(),
                modes: mode_names(&r.modes),
            };
            let _ = this.bus.emit_with(event).await;
            // A panic while answering must still answer.
            let reply = AssertUnwindSafe(this.answer(&r, &mut input))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Reply::Failed(format!("`{}` panicked", r.service)));
            this.done_with(&r.from, r.id);
            this.reply(&r.from, r.id, reply);
        };
        self.answer_here_or_spawn(trace::scope(id, served).instrument(span), mark, work);
    }

    /// Most answers need no waiting (a behaviour around a native ability): those are given
    /// here — on the thread that delivered the request, or on the serving task — at the cost
    /// of one poll, with no task to make and no hop to another worker. An answer that waits
    /// goes on as a task of its own, so that a slow service holds up neither the deliverer
    /// nor the inbox. Polled with a waker that does nothing: the task polls it again as soon
    /// as it is spawned, and registers its own. Boxed, so that the future stays where it was
    /// polled, and spawning moves a pointer.
    ///
    /// That second poll is wasted work, so a service whose last answer waited (its `mark`)
    /// has its next requests go straight to a task; one answered at its first poll clears
    /// the mark.
    fn answer_here_or_spawn(
        self: &Arc<Self>,
        served: impl Future<Output = ()> + Send + 'static,
        mark: u64,
        work: &TaskTracker,
    ) {
        let mut served = Box::pin(served);
        let (marks, mut polls) = (Arc::clone(self), 0);
        let mut served = std::future::poll_fn(move |cx| {
            polls += 1;
            let answered = served.as_mut().poll(cx);
            if answered.is_ready() {
                marks.waited.record(mark, polls > 1);
            }
            answered
        });
        if self.waited.waited(mark) || NESTED.get() >= MAX_NESTED_ANSWERS {
            work.spawn(served);
            return;
        }
        NESTED.set(NESTED.get() + 1);
        // The answer itself is guarded by the served future; what surrounds it (a transport's
        // `send`, say) must not take the deliverer down either, as it would not a task.
        let mut here = Context::from_waker(Waker::noop());
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut served).poll(&mut here))) {
            Ok(Poll::Ready(())) => {}
            Ok(Poll::Pending) => {
                // Known to wait from now on, not only once answered: the requests that come
                // meanwhile go straight to tasks rather than each being polled in vain.
                self.waited.record(mark, true);
                work.spawn(served);
            }
            Err(_) => tracing::error!(agent = %self.agent, "serving a request panicked"),
        }
        NESTED.set(NESTED.get() - 1);
    }

    /// Whether the sender may make this request now: a neighbour, with this id not in flight
    /// already, and fewer than [`MAX_IN_FLIGHT_PER_PEER`] requests in flight.
    fn admit_request(&self, r: &Request) -> Result<(), Refusal> {
        if !self.talks_to(&r.from) {
            return Err(Refusal::NotNeighbour);
        }
        lock(&self.in_flight).admit(&r.from, r.id)
    }

    fn done_with(&self, from: &str, id: u64) {
        lock(&self.in_flight).done(from, id);
    }

    fn reply(&self, to: &str, id: u64, reply: Reply) {
        let _ = self
            .transport
            .send(self.envelope(to, id, Message::Reply(reply)));
    }

    /// What to answer a request with: the first of the requester's modes this agent offers
    /// and can honour.
    async fn answer(&self, r: &Request, input: &mut Value) -> Reply {
        let Some(offer) = self.knowledge.shared_service(&r.service) else {
            return Reply::Refused(format!("`{}` does not offer `{}`", self.agent, r.service));
        };
        let mut why_not = None;
        for mode in &r.modes {
            if !offer.modes.contains(*mode) {
                continue;
            }
            let answer = match mode {
                OfferMode::CanDo => self.do_it(r, input, &offer).await,
                OfferMode::CanTeach => self.teach_it(r, &offer).await,
                OfferMode::KnowsWhoCanDo => self.refer(r, OfferMode::CanDo),
                OfferMode::KnowsWhoCanTeach => self.refer(r, OfferMode::CanTeach),
            };
            match answer {
                Ok(reply) => return reply,
                Err(reason) => why_not = Some(reason),
            }
        }
        Reply::Refused(why_not.unwrap_or_else(|| {
            format!(
                "`{}` offers `{}` as {} only",
                self.agent, r.service, offer.modes
            )
        }))
    }

    /// Runs the service for the requester (here, or where its load is redirected), on
    /// `input`, which it takes: a run is the last use of a request's input.
    async fn do_it(
        &self,
        r: &Request,
        input: &mut Value,
        offer: &Service,
    ) -> Result<Reply, String> {
        if !self.implements(offer) {
            return Err(format!(
                "`{}` offers `{}` but cannot run it now",
                self.agent, offer.name
            ));
        }
        let origin = Origin {
            requester: Some(&r.from),
            hops: r.hops,
        };
        let started = tokio::time::Instant::now();
        let result = self.run_here(offer, std::mem::take(input), origin, 0).await;
        Ok(match result {
            Ok(v) => {
                let took = started.elapsed();
                if self.gossips() {
                    // What this run was worth is what the agent advertises next.
                    let q = self.config.quality.quality(&v, took);
                    self.knowledge.set_quality(&r.service, q);
                }
                let event = || topic::Executed {
                    service: r.service.as_str().to_owned(),
                    requester: r.from.as_str().to_owned(),
                    seconds: took.as_secs_f64(),
                };
                let _ = self.bus.emit_with(event).await;
                Reply::Done {
                    output: v,
                    advertised: self.advertised(&r.service),
                }
            }
            Err(e) => {
                self.report_failure(&r.service, &self.agent, &e.to_string())
                    .await;
                Reply::Failed(e.to_string())
            }
        })
    }

    /// Teaches the service to the requester.
    async fn teach_it(&self, r: &Request, offer: &Service) -> Result<Reply, String> {
        let pkg = self.package(offer).map_err(|reason| {
            format!("`{}` cannot teach `{}`: {reason}", self.agent, offer.name)
        })?;
        let event = || topic::ServiceTaught {
            service: r.service.as_str().to_owned(),
            learner: r.from.as_str().to_owned(),
        };
        let _ = self.bus.emit_with(event).await;
        tracing::info!(agent = %self.agent, service = %r.service, learner = %r.from, "service taught");
        Ok(Reply::Teach(Box::new(pkg)))
    }

    /// Refers the requester to the providers this agent knows of in `wanted`.
    fn refer(&self, r: &Request, wanted: OfferMode) -> Result<Reply, String> {
        let list: Vec<(Name, OfferModes)> = self
            .knowledge
            .providers()
            .providers(&r.service)
            .into_iter()
            .filter(|p| p.agent != r.from && p.modes.contains(wanted))
            .take(MAX_REFERRAL)
            .map(|p| (p.agent, p.modes))
            .collect();
        if list.is_empty() {
            return Err(format!(
                "`{}` knows no provider that {} `{}`",
                self.agent,
                if wanted == OfferMode::CanDo {
                    "can do"
                } else {
                    "can teach"
                },
                r.service
            ));
        }
        Ok(Reply::Referral(list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_keeps_a_few_idle_requesters_and_is_bounded_by_what_is_in_flight() {
        let mut f = InFlight::default();
        for i in 0..MAX_IN_FLIGHT_PER_PEER as u64 {
            f.admit("a", i).unwrap();
        }
        assert_eq!(f.admit("a", 999), Err(Refusal::TooManyInFlight));
        assert_eq!(f.admit("a", 3), Err(Refusal::DuplicateRequest));
        for i in 0..MAX_IN_FLIGHT_PER_PEER as u64 {
            f.done("a", i);
        }
        // Kept, with what the burst took given back, and open to the next request.
        assert!(f.0["a"].is_empty() && f.0["a"].capacity() <= KEPT_SENDERS);
        f.admit("a", 1000).unwrap();
        f.done("a", 1000);
        // Many requesters, each answered: only a few entries stay, all empty.
        for s in 0..100 {
            let name = format!("s{s}");
            f.admit(&name, 1).unwrap();
            f.admit(&name, 2).unwrap();
        }
        for s in 0..100 {
            let name = format!("s{s}");
            f.done(&name, 2);
            f.done(&name, 1);
        }
        assert!(f.0.len() <= KEPT_SENDERS, "{} entries", f.0.len());
        assert!(f.0.values().all(Vec::is_empty));
        // One still in flight is never dropped.
        f.admit("b", 7).unwrap();
        for s in 0..10 {
            f.admit(&format!("t{s}"), 1).unwrap();
            f.done(&format!("t{s}"), 1);
        }
        assert_eq!(f.admit("b", 7), Err(Refusal::DuplicateRequest));
        f.forget("b");
        f.admit("b", 7).unwrap();
    }
}
