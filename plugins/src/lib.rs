//! Prediction models and learners for selflet agents.
//!
//! | module | what |
//! |---|---|
//! | [`space_saving`] | Space-Saving frequent items (Metwally et al. 2005): the library type and the `space_saving` predictor |
//! | [`forecast`] | EWMA, Holt and Holt-Winters forecasting, and the `load_forecast` predictor |
//! | [`utilization`] | the load-balancing chapter's model: visits from the routing equations, demand, M/M/1 response times |
//! | [`ucb`] | UCB1, UCB1-Tuned and seed 000's printed bound over a list of actions; the grouped-threshold environment classifier |
//!
//! Each predictor implements `selflet_core::prediction::Predictor`, so the runtime never
//! depends on this crate; [`kinds`] registers them by name for manifests and policies.

pub mod forecast;
pub mod space_saving;
pub mod ucb;
pub mod utilization;

use selflet_core::prediction::{Kinds, factory};

/// The predictor kinds of the core (`rhai`) and of this crate (`space_saving`,
/// `load_forecast`), and the learner kind `ucb`, by name.
pub fn kinds() -> Kinds {
    let k = Kinds::default();
    k.register(
        "space_saving",
        factory(space_saving::FrequentItems::from_params),
    );
    k.register(
        "load_forecast",
        factory(forecast::LoadForecast::from_params),
    );
    k.register_learner(
        "ucb",
        std::sync::Arc::new(|actions, params| {
            ucb::Learner::from_params(actions, params)
                .map(|l| Box::new(l) as Box<dyn selflet_core::prediction::learner::Learner>)
        }),
    );
    k
}
