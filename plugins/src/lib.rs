//! Prediction models and learners for selflet agents.
//!
//! Predictor plugins (Space-Saving frequent-item detection, load forecasting) and the
//! load-balancing model live here; each implements the small traits that `selflet-core`
//! defines, so the runtime never depends on them.
