//! Forecasting on synthetic series with known level, trend and season.

use selflet_plugins::forecast::{Forecaster, Model};

/// A small deterministic noise in [-amp, amp].
fn noise(t: usize, amp: f64) -> f64 {
    let x = ((t as f64 * 12.9898).sin() * 43_758.545_3).fract();
    (x * 2.0 - 1.0) * amp
}

#[test]
fn ewma_converges_to_a_constant_level() {
    let mut f = Forecaster::new(Model::Ewma { alpha: 0.3 });
    assert_eq!(f.forecast(1), None);
    for t in 0..200 {
        f.observe(0.6 + noise(t, 0.05));
    }
    let p = f.forecast(5).unwrap();
    assert!((p - 0.6).abs() < 0.03, "level 0.6, forecast {p}");
}

#[test]
fn holt_follows_a_linear_trend() {
    let mut f = Forecaster::new(Model::Holt {
        alpha: 0.2,
        beta: 0.05,
    });
    for t in 0..300 {
        f.observe(5.0 + 0.2 * t as f64 + noise(t, 0.5));
    }
    // Smoothing suited to the noise: small enough to average it out. Truth at t = 299 + 10.
    let truth = 5.0 + 0.2 * 309.0;
    let p = f.forecast(10).unwrap();
    assert!(
        (p - truth).abs() < 1.5,
        "truth {truth}, forecast {p} (tolerance 1.5, 2.4%)"
    );
}

#[test]
fn holt_winters_recovers_level_trend_and_season() {
    let season = 24;
    let shape =
        |t: usize| 10.0 * (2.0 * std::f64::consts::PI * (t % season) as f64 / season as f64).sin();
    let series = |t: usize| 50.0 + 0.1 * t as f64 + shape(t);
    let mut f = Forecaster::new(Model::HoltWinters {
        alpha: 0.2,
        beta: 0.05,
        gamma: 0.2,
        season,
    });
    for t in 0..(season * 2 - 1) {
        f.observe(series(t) + noise(t, 1.0));
        assert!(!f.ready(), "no forecast before two seasons");
    }
    for t in (season * 2 - 1)..(season * 10) {
        f.observe(series(t) + noise(t, 1.0));
    }
    let last = season * 10 - 1;
    let mut worst: f64 = 0.0;
    for h in 1..=season {
        let p = f.forecast(h).unwrap();
        worst = worst.max((p - series(last + h)).abs());
    }
    assert!(
        worst < 2.5,
        "worst error over one season ahead: {worst} (amplitude 10, noise ±1)"
    );
    // A seasonless model cannot do that.
    let mut holt = Forecaster::new(Model::Holt {
        alpha: 0.2,
        beta: 0.05,
    });
    for t in 0..(season * 10) {
        holt.observe(series(t) + noise(t, 1.0));
    }
    let holt_worst = (1..=season)
        .map(|h| (holt.forecast(h).unwrap() - series(last + h)).abs())
        .fold(0.0, f64::max);
    assert!(
        holt_worst > 2.0 * worst,
        "Holt-Winters ({worst}) should beat Holt ({holt_worst}) on a seasonal series"
    );
}
