//! Load forecasting: exponential smoothing models, and the `load_forecast` predictor.
//!
//! Three models, each a [`Forecaster`] over one series of evenly spaced samples:
//!
//! * **EWMA** — a level: `l = αx + (1−α)l`; forecasts are flat.
//! * **Holt** — level and trend: `l = αx + (1−α)(l + b)`, `b = β(l − l') + (1−β)b`;
//!   the forecast `h` steps ahead is `l + hb`.
//! * **Holt-Winters, additive** — plus a season of `m` samples:
//!   `l = α(x − s) + (1−α)(l + b)`, `b = β(l − l') + (1−β)b`, `s = γ(x − l) + (1−γ)s`;
//!   the forecast is `l + hb + s` for the season position `h` steps ahead. It starts
//!   forecasting after two seasons: the first gives the level and the seasonal offsets, the
//!   second the trend.
//!
//! The `load_forecast` predictor consumes the agent's `load.sample` events and publishes
//! `prediction.load` with the forecast of `utilization` and of each behaviour's `rates`
//! `horizon` samples ahead. Parameters: `model` (`ewma`, `holt`, `holt_winters`; default
//! `holt`), `alpha` (0.5), `beta` (0.3), `gamma` (0.3), `season` (samples, for Holt-Winters),
//! `horizon` (samples, 1), `sample_period` (how often the agent samples its load, `10s`).

use std::collections::BTreeMap;
use std::time::Duration;

use selflet_core::Value;
use selflet_core::bus::Event;
use selflet_core::error::BoxError;
use selflet_core::prediction::{
    DEFAULT_SAMPLE_PERIOD, Descriptor, Emitter, ParamError, Predictor, param_duration, param_f64,
    param_str, param_usize,
};
use selflet_core::topic::{LoadPrediction, LoadSample, Payload};

/// A forecasting model and its smoothing parameters (each in `(0, 1]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// Exponentially weighted moving average.
    Ewma {
        /// Level smoothing.
        alpha: f64,
    },
    /// Holt's linear trend.
    Holt {
        /// Level smoothing.
        alpha: f64,
        /// Trend smoothing.
        beta: f64,
    },
    /// Holt-Winters with additive seasonality.
    HoltWinters {
        /// Level smoothing.
        alpha: f64,
        /// Trend smoothing.
        beta: f64,
        /// Seasonal smoothing.
        gamma: f64,
        /// Samples per season (at least 2).
        season: usize,
    },
}

impl Model {
    fn name(&self) -> &'static str {
        match self {
            Model::Ewma { .. } => "ewma",
            Model::Holt { .. } => "holt",
            Model::HoltWinters { .. } => "holt_winters",
        }
    }
}

/// Exponential smoothing over one series.
///
/// ```
/// use selflet_plugins::forecast::{Forecaster, Model};
///
/// let mut f = Forecaster::new(Model::Holt { alpha: 0.8, beta: 0.5 });
/// for t in 0..50 {
///     f.observe(10.0 + 2.0 * t as f64);
/// }
/// let next = f.forecast(1).unwrap();
/// assert!((next - 110.0).abs() < 0.5);
/// ```
#[derive(Debug, Clone)]
pub struct Forecaster {
    model: Model,
    level: f64,
    trend: f64,
    seasonal: Vec<f64>,
    // Samples seen; Holt-Winters keeps its first two seasons here until it can start.
    n: usize,
    warmup: Vec<f64>,
}

impl Forecaster {
    /// A forecaster that has seen nothing.
    pub fn new(model: Model) -> Forecaster {
        Forecaster {
            model,
            level: 0.0,
            trend: 0.0,
            seasonal: Vec::new(),
            n: 0,
            warmup: Vec::new(),
        }
    }

    /// Whether enough samples were seen to forecast.
    pub fn ready(&self) -> bool {
        match self.model {
            Model::Ewma { .. } => self.n >= 1,
            Model::Holt { .. } => self.n >= 2,
            Model::HoltWinters { .. } => !self.seasonal.is_empty(),
        }
    }

    /// Takes the next sample.
    pub fn observe(&mut self, x: f64) {
        self.n += 1;
        match self.model {
            Model::Ewma { alpha } => {
                self.level = if self.n == 1 {
                    x
                } else {
                    alpha * x + (1.0 - alpha) * self.level
                };
            }
            Model::Holt { alpha, beta } => match self.n {
                1 => self.level = x,
                2 => {
                    self.trend = x - self.level;
                    self.level = x;
                }
                _ => self.holt_step(alpha, beta, x, 0.0),
            },
            Model::HoltWinters {
                alpha,
                beta,
                gamma,
                season,
            } => {
                if self.seasonal.is_empty() {
                    self.warmup.push(x);
                    if self.warmup.len() == 2 * season {
                        self.start_seasons(season, alpha, beta, gamma);
                    }
                    return;
                }
                let i = (self.n - 1) % season;
                let s = self.seasonal[i];
                self.holt_step(alpha, beta, x, s);
                self.seasonal[i] = gamma * (x - self.level) + (1.0 - gamma) * s;
            }
        }
    }

    fn holt_step(&mut self, alpha: f64, beta: f64, x: f64, seasonal: f64) {
        let previous = self.level;
        self.level = alpha * (x - seasonal) + (1.0 - alpha) * (self.level + self.trend);
        self.trend = beta * (self.level - previous) + (1.0 - beta) * self.trend;
    }

    /// Level, trend and offsets from the first season; the trend from the second season's
    /// mean; then the second season's samples are replayed through the update equations.
    fn start_seasons(&mut self, m: usize, alpha: f64, beta: f64, gamma: f64) {
        let first = &self.warmup[..m];
        let second = &self.warmup[m..];
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        let (m1, m2) = (mean(first), mean(second));
        self.trend = (m2 - m1) / m as f64;
        // Detrended offsets: the first season's samples around its own mean, which sits at its
        // middle, (m − 1)/2 samples after its start.
        self.seasonal = first
            .iter()
            .enumerate()
            .map(|(i, x)| x - (m1 + (i as f64 - (m as f64 - 1.0) / 2.0) * self.trend))
            .collect();
        self.level = m1 + (m as f64 - 1.0) / 2.0 * self.trend;
        let replay: Vec<f64> = second.to_vec();
        for (i, x) in replay.into_iter().enumerate() {
            let s = self.seasonal[i];
            self.holt_step(alpha, beta, x, s);
            self.seasonal[i] = gamma * (x - self.level) + (1.0 - gamma) * s;
        }
        self.warmup = Vec::new();
    }

    /// The forecast `h` samples ahead (`h ≥ 1`), once [`ready`](Self::ready).
    pub fn forecast(&self, h: usize) -> Option<f64> {
        if !self.ready() {
            return None;
        }
        let h = h.max(1);
        Some(match self.model {
            Model::Ewma { .. } => self.level,
            Model::Holt { .. } => self.level + h as f64 * self.trend,
            Model::HoltWinters { season, .. } => {
                let i = (self.n + h - 1) % season;
                self.level + h as f64 * self.trend + self.seasonal[i]
            }
        })
    }
}

/// The `load_forecast` predictor.
pub struct LoadForecast {
    descriptor: Descriptor,
    model: Model,
    horizon: usize,
    period: Duration,
    utilization: Forecaster,
    rates: BTreeMap<String, Forecaster>,
}

fn smoothing(params: &Value, key: &str, default: f64) -> Result<f64, ParamError> {
    let v = param_f64(params, key, default)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(ParamError::out_of_range(key, format!("in (0, 1], not {v}")))
    }
}

impl LoadForecast {
    /// Makes the predictor from manifest parameters.
    pub fn from_params(name: &str, params: &Value) -> Result<LoadForecast, ParamError> {
        let alpha = smoothing(params, "alpha", 0.5)?;
        let beta = smoothing(params, "beta", 0.3)?;
        let model = match param_str(params, "model", "holt")? {
            "ewma" => Model::Ewma { alpha },
            "holt" => Model::Holt { alpha, beta },
            "holt_winters" => {
                let season = param_usize(params, "season", 0)?;
                if season < 2 {
                    return Err(ParamError::out_of_range(
                        "season",
                        "the samples per season, at least 2, for holt_winters",
                    ));
                }
                Model::HoltWinters {
                    alpha,
                    beta,
                    gamma: smoothing(params, "gamma", 0.3)?,
                    season,
                }
            }
            other => {
                return Err(ParamError::out_of_range(
                    "model",
                    format!("ewma, holt or holt_winters, not `{other}`"),
                ));
            }
        };
        Ok(LoadForecast {
            descriptor: Descriptor {
                name: name.to_owned(),
                kind: "load_forecast".into(),
                consumes: vec![selflet_core::Pattern::Exact(LoadSample::TOPIC.into())],
                produces: vec![LoadPrediction::TOPIC.into()],
                params: params.clone(),
            },
            model,
            horizon: param_usize(params, "horizon", 1)?.max(1),
            period: param_duration(params, "sample_period", DEFAULT_SAMPLE_PERIOD)?,
            utilization: Forecaster::new(model),
            rates: BTreeMap::new(),
        })
    }
}

impl Predictor for LoadForecast {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn update(&mut self, event: &Event, out: &mut Emitter) -> Result<(), BoxError> {
        let p = event.payload();
        let u = p
            .get("utilization")
            .and_then(Value::as_f64)
            .ok_or("a load sample has a numeric `utilization`")?;
        self.utilization.observe(u);
        if let Some(Value::Map(rates)) = p.get("rates") {
            for (service, r) in rates {
                if let Some(r) = r.as_f64() {
                    self.rates
                        .entry(service.clone())
                        .or_insert_with(|| Forecaster::new(self.model))
                        .observe(r);
                }
            }
        }
        let Some(u) = self.utilization.forecast(self.horizon) else {
            return Ok(());
        };
        let rates = self
            .rates
            .iter()
            .filter_map(|(s, f)| {
                f.forecast(self.horizon)
                    .map(|r| (s.clone(), Value::Float(r.max(0.0))))
            })
            .collect();
        let forecast = LoadPrediction {
            model: self.model.name().to_owned(),
            horizon_samples: self.horizon as i64,
            horizon_s: self.horizon as f64 * self.period.as_secs_f64(),
            utilization: u.max(0.0),
            rates: Value::Map(rates),
        };
        out.emit(LoadPrediction::TOPIC, forecast.to_value());
        Ok(())
    }
}
