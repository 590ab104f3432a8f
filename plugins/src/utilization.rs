//! The utilization model of the load-balancing chapter (Calcavecchia, Ardagna, Di Nitto).
//!
//! A behaviour's states carry the work one visit generates (`demand`, seconds) and its
//! transitions the probability of being taken (`probability`). The routing equations give the
//! expected visits to each state per execution: `v = e + Pᵀv`, with `e` the initial state and
//! `P` the routing matrix, solved here by Gaussian elimination. A service executed at rate `λ`
//! then generates utilization `λ · Σᵢ vᵢ dᵢ`, and a SelfLet's utilization is the sum over its
//! services. Response times use an M/M/1 approximation per SelfLet: a request with demand `D`
//! waits `D / (1 − U)` at utilization `U`.
//!
//! Transition probabilities a state does not annotate share what its annotated ones leave,
//! equally — except `error` transitions, which are exceptional and get 0 unless annotated.

use selflet_core::behaviour::Behaviour;
pub use selflet_core::behaviour::ModelError;

/// A behaviour's expected visits per execution and the demand of one execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceModel {
    /// Expected visits to each state per execution, in document order.
    pub visits: Vec<(String, f64)>,
    /// Seconds of work one execution generates: `Σᵢ vᵢ dᵢ`.
    pub demand: f64,
}

impl ServiceModel {
    /// Solves the routing equations of a behaviour (see [`Behaviour::expected_visits`]).
    pub fn of(b: &Behaviour) -> Result<ServiceModel, ModelError> {
        let v = b.expected_visits()?;
        Ok(ServiceModel {
            visits: b
                .state_names()
                .into_iter()
                .map(str::to_owned)
                .zip(v)
                .collect(),
            demand: b.demand()?,
        })
    }

    /// The utilization this service generates at `rate` executions per second.
    pub fn utilization(&self, rate: f64) -> f64 {
        rate * self.demand
    }

    /// The M/M/1 response time of one execution when the SelfLet's total utilization is
    /// `total`; infinite at or beyond saturation.
    pub fn response_time(&self, total: f64) -> f64 {
        response_time(self.demand, total)
    }
}

/// The M/M/1 response time of a request of `demand` seconds at utilization `total`.
pub fn response_time(demand: f64, total: f64) -> f64 {
    if total >= 1.0 {
        f64::INFINITY
    } else {
        demand / (1.0 - total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use selflet_core::SourceFile;

    fn model(yaml: &str) -> Result<ServiceModel, ModelError> {
        ServiceModel::of(&Behaviour::parse(SourceFile::new("m.yaml", yaml)).unwrap())
    }

    fn visits(m: &ServiceModel) -> Vec<f64> {
        m.visits
            .iter()
            .map(|(_, v)| (v * 1e9).round() / 1e9)
            .collect()
    }

    #[test]
    fn a_chain_visits_each_state_once() {
        let m = model("behaviour: b\ninitial: a\nstates:\n  a: { demand: 0.2, on: { done: b } }\n  b: { demand: 0.3, on: { done: f, error: f } }\n  f: { final: true }\n").unwrap();
        assert_eq!(visits(&m), [1.0, 1.0, 1.0]);
        assert!((m.demand - 0.5).abs() < 1e-12);
        assert!((m.utilization(2.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_loop_taken_half_the_time_is_visited_twice() {
        // v_a = 1 + 0.5 v_a, so v_a = 2.
        let m = model("behaviour: b\ninitial: a\nstates:\n  a:\n    demand: 0.1\n    on: { done: [ { target: a, probability: 0.5, guard: \"true\" }, { target: f, probability: 0.5 } ] }\n  f: { final: true }\n").unwrap();
        assert_eq!(visits(&m), [2.0, 1.0]);
        assert!((m.demand - 0.2).abs() < 1e-12);
    }

    #[test]
    fn branches_split_by_their_probabilities_and_unannotated_ones_share_the_rest() {
        // a → b 0.3 → (c, d share 0.7 equally); b → d; c → f; d → f.
        let m = model(
            "behaviour: b\ninitial: a\nstates:\n  a:\n    on:\n      done: [ { target: b, probability: 0.3, guard: \"true\" }, { target: c, guard: \"true\" }, d ]\n  b: { on: { done: d } }\n  c: { demand: 1.0, on: { done: f } }\n  d: { demand: 2.0, on: { done: f } }\n  f: { final: true }\n",
        )
        .unwrap();
        assert_eq!(visits(&m), [1.0, 0.3, 0.35, 0.65, 1.0]);
        assert!((m.demand - (0.35 + 1.3)).abs() < 1e-12);
    }

    #[test]
    fn the_shipped_services_have_the_demand_of_their_states() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../behaviors/service1.yaml");
        let m = ServiceModel::of(&Behaviour::load(root).unwrap()).unwrap();
        // call_s2 (0.004) then call_s3 (0.003); errors are exceptional.
        assert!((m.demand - 0.007).abs() < 1e-12, "{m:?}");
    }

    #[test]
    fn response_times_grow_with_utilization_and_saturate() {
        let m = ServiceModel {
            visits: vec![],
            demand: 0.1,
        };
        assert!((m.response_time(0.0) - 0.1).abs() < 1e-12);
        assert!((m.response_time(0.5) - 0.2).abs() < 1e-12);
        assert!(m.response_time(1.0).is_infinite());
    }

    #[test]
    fn a_behaviour_that_never_ends_has_no_model() {
        let m = model(
            "behaviour: b\ninitial: a\nstates:\n  a: { on: { done: [ { target: a, probability: 1.0, guard: \"true\" }, { target: f, probability: 0.0 } ] } }\n  f: { final: true }\n",
        );
        assert!(matches!(m, Err(ModelError::NoEnd(_))), "{m:?}");
    }
}
