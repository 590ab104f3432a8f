//! Frequent-item detection with Space-Saving: the prediction paper's frequent-service
//! predictor, and the algorithm as a plain library type ([`SpaceSaving`]).
//!
//! The `space_saving` predictor consumes events (by default the agent's outgoing service
//! requests) and publishes `prediction.frequent` when an item is frequent: at least
//! `min_events` events were observed in the window and the item's support (count / events) is
//! at least `min_support`. Parameters:
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `k` | 64 | counters (the error on any count is at most events / k) |
//! | `min_events` | 20 | events to observe before anything is frequent |
//! | `min_support` | 0.2 | support an item needs |
//! | `window` | `none` | `none` (all time), `tumbling` or `sliding` |
//! | `window_size` | `60s` | the window's length |
//! | `panes` | 4 | sub-windows of a sliding window |
//! | `consumes` | `service.request.outgoing` | topic(s) |
//! | `item` | `service` | payload field holding the item |
//! | `produces` | `prediction.frequent` | topic of the forecast |
//!
//! A frequent item is reported once per window (tumbling), once per window length (sliding),
//! or once (no window). The payload is `{item, count, error, support, events, window_s}`.

mod summary;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use selflet_core::Value;
use selflet_core::bus::Event;
use selflet_core::error::BoxError;
use selflet_core::prediction::{
    Descriptor, Emitter, ParamError, Predictor, param_duration, param_f64, param_str, param_topics,
    param_usize,
};
use selflet_core::topic::{Frequent, Payload};
use tokio::time::Instant;

pub use summary::{Estimate, SpaceSaving};

/// How the past is forgotten.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    /// Never.
    None,
    /// Everything is forgotten at the end of each window.
    Tumbling(Duration),
    /// The window slides in `panes` steps.
    Sliding {
        /// The window's length.
        size: Duration,
        /// Sub-windows.
        panes: usize,
    },
}

/// The `space_saving` predictor.
pub struct FrequentItems {
    descriptor: Descriptor,
    k: usize,
    min_events: u64,
    min_support: f64,
    window: Window,
    item_field: String,
    produces: String,
    // Oldest first; each pane covers `pane_len` from its start.
    panes: VecDeque<(Instant, SpaceSaving<Arc<str>>)>,
    reported: HashMap<Arc<str>, Instant, foldhash::fast::RandomState>,
}

impl FrequentItems {
    /// Makes the predictor from manifest parameters.
    pub fn from_params(name: &str, params: &Value) -> Result<FrequentItems, ParamError> {
        let size = param_duration(params, "window_size", Duration::from_secs(60))?;
        if size.is_zero() {
            return Err(ParamError::out_of_range("window_size", "longer than zero"));
        }
        let window = match param_str(params, "window", "none")? {
            "none" => Window::None,
            "tumbling" => Window::Tumbling(size),
            "sliding" => Window::Sliding {
                size,
                panes: param_usize(params, "panes", 4)?.max(1),
            },
            other => {
                return Err(ParamError::out_of_range(
                    "window",
                    format!("none, tumbling or sliding, not `{other}`"),
                ));
            }
        };
        let min_support = param_f64(params, "min_support", 0.2)?;
        if !(0.0..=1.0).contains(&min_support) {
            return Err(ParamError::out_of_range("min_support", "between 0 and 1"));
        }
        let k = param_usize(params, "k", 64)?;
        if k == 0 {
            return Err(ParamError::out_of_range("k", "at least 1"));
        }
        let produces = param_str(params, "produces", Frequent::TOPIC)?.to_owned();
        Ok(FrequentItems {
            descriptor: Descriptor {
                name: name.to_owned(),
                kind: "space_saving".into(),
                consumes: param_topics(params, "consumes", "service.request.outgoing")?,
                produces: vec![produces.clone()],
                params: params.clone(),
            },
            k,
            min_events: param_usize(params, "min_events", 20)? as u64,
            min_support,
            window,
            item_field: param_str(params, "item", "service")?.to_owned(),
            produces,
            panes: VecDeque::new(),
            reported: HashMap::default(),
        })
    }

    fn pane_len(&self) -> Option<Duration> {
        match self.window {
            Window::None => None,
            Window::Tumbling(size) => Some(size),
            Window::Sliding { size, panes } => Some(size / panes as u32),
        }
    }

    fn window_len(&self) -> Option<Duration> {
        match self.window {
            Window::None => None,
            Window::Tumbling(size) | Window::Sliding { size, .. } => Some(size),
        }
    }

    /// Moves the window on to `now`: opens the pane `now` falls in, drops expired ones.
    fn advance(&mut self, now: Instant) {
        let Some(pane) = self.pane_len() else {
            if self.panes.is_empty() {
                self.panes.push_back((now, SpaceSaving::new(self.k)));
            }
            return;
        };
        let keep = match self.window {
            Window::Sliding { panes, .. } => panes,
            _ => 1,
        };
        let current_end = self.panes.back().map(|(start, _)| *start + pane);
        if current_end.is_some_and(|end| now < end) {
            return;
        }
        // Panes start on multiples of the pane length after the first one, so empty stretches
        // of time still expire what they should.
        let start = match self.panes.back() {
            Some((s, _)) => {
                let skipped = (now - *s).as_nanos() / pane.as_nanos();
                *s + pane * skipped as u32
            }
            None => now,
        };
        if let Window::Tumbling(_) = self.window {
            self.reported.clear();
        }
        let recycled = if self.panes.len() >= keep {
            self.panes.pop_front().map(|(_, s)| s)
        } else {
            None
        };
        let mut summary = recycled.unwrap_or_else(|| SpaceSaving::new(self.k));
        summary.clear();
        self.panes.push_back((start, summary));
        while self
            .panes
            .front()
            .is_some_and(|(s, _)| *s + pane * keep as u32 <= now)
        {
            self.panes.pop_front();
        }
    }

    /// Estimated count, error bound and events in the window, for one item.
    fn estimate(&self, item: &str) -> (u64, u64, u64) {
        self.panes.iter().fold((0, 0, 0), |(c, e, n), (_, s)| {
            let est = s.get(item);
            (
                c + est.as_ref().map_or(0, |x| x.count),
                e + est.map_or(0, |x| x.error),
                n + s.n(),
            )
        })
    }
}

impl Predictor for FrequentItems {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn update(&mut self, event: &Event, out: &mut Emitter) -> Result<(), BoxError> {
        let Some(item) = event
            .payload()
            .get(&self.item_field)
            .and_then(Value::as_str)
        else {
            return Err(format!(
                "event `{}` has no string field `{}`",
                event.topic(),
                self.item_field
            )
            .into());
        };
        let now = event.time();
        self.advance(now);
        if let Some((_, s)) = self.panes.back_mut() {
            s.update_ref(item);
        }
        let (count, error, events) = self.estimate(item);
        if events < self.min_events {
            return Ok(());
        }
        let support = count as f64 / events as f64;
        if support < self.min_support {
            return Ok(());
        }
        let fresh = match (self.reported.get(item), self.window) {
            (None, _) => true,
            (Some(at), Window::Sliding { size, .. }) => now.duration_since(*at) >= size,
            (Some(_), _) => false,
        };
        if fresh {
            self.reported.insert(Arc::from(item), now);
            let frequent = Frequent {
                item: item.to_owned(),
                count: count as i64,
                error: error as i64,
                support,
                events: events as i64,
                window_s: self
                    .window_len()
                    .map_or(Value::Null, |w| Value::Float(w.as_secs_f64())),
            };
            out.emit(self.produces.clone(), frequent.to_value());
        }
        Ok(())
    }
}
