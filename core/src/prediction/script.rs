//! Predictors written in Rhai, for models that should not need a recompile.
//!
//! ```yaml
//! predictors:
//!   - kind: rhai
//!     name: burst
//!     params:
//!       consumes: service.request.outgoing
//!       produces: [prediction.burst]
//!       file: burst.rhai          # or `source:` with the script inline
//!       threshold: 5              # any other parameter reaches `init`
//! ```
//!
//! The script defines `update(ev)`, called for every consumed event with `this` bound to the
//! predictor's state, and optionally `init(params)`, which returns the initial state (an empty
//! map otherwise). `emit(topic, payload)` publishes a forecast. `ev` is the event's payload
//! map plus `topic`, `source` and `time_s` (seconds since the predictor was plugged).
//!
//! ```rhai
//! fn init(params) { #{ n: 0, threshold: params.threshold } }
//! fn update(ev) {
//!     this.n += 1;
//!     if this.n == this.threshold { emit("prediction.burst", #{ n: this.n }); }
//! }
//! ```

use std::sync::{Arc, Mutex};

use rhai::{AST, CallFnOptions, Dynamic, Engine, Scope};

use super::{Descriptor, Emitter, ParamError, ParamErrorKind, Predictor, param_topics};
use crate::bus::Event;
use crate::error::BoxError;
use crate::script::{self, Limits};
use crate::sync::lock;
use crate::value::Value;

pub(super) struct ScriptPredictor {
    descriptor: Descriptor,
    engine: Engine,
    ast: AST,
    state: Dynamic,
    emitted: Arc<Mutex<Vec<(String, Value)>>>,
    budget: std::time::Duration,
    start: tokio::time::Instant,
}

impl ScriptPredictor {
    pub(super) fn new(name: &str, params: &Value) -> Result<ScriptPredictor, ParamError> {
        let invalid = |key: &str, m: String| ParamError::new(key, ParamErrorKind::Invalid, m);
        let source = match (params.get("source"), params.get("file")) {
            (Some(Value::Str(s)), None) => s.clone(),
            (None, Some(Value::Str(f))) => std::fs::read_to_string(f)
                .map_err(|e| invalid("file", format!("cannot read `{f}`: {e}")))?,
            _ => {
                return Err(invalid(
                    "source",
                    "a rhai predictor has either `source` (the script) or `file` (its path)".into(),
                ));
            }
        };
        let consumes = param_topics(params, "consumes", "*")?;
        let produces = match params.get("produces") {
            None => Vec::new(),
            Some(Value::Str(s)) => vec![s.clone()],
            Some(Value::List(l)) => l
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(v) => {
                return Err(ParamError::wrong_type(
                    "produces",
                    "a topic or a list of topics",
                    v,
                ));
            }
        };
        let limits = Limits::default();
        let mut engine = script::engine(&limits);
        let emitted: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let sink = Arc::clone(&emitted);
        engine.register_fn(
            "emit",
            move |topic: &str, payload: Dynamic| -> Result<(), Box<rhai::EvalAltResult>> {
                let v = Value::from_dynamic(&payload).map_err(|e| e.to_string())?;
                lock(&sink).push((topic.to_owned(), v));
                Ok(())
            },
        );
        let ast = engine
            .compile(&source)
            .map_err(|e| invalid("source", format!("the script does not compile: {e}")))?;
        if !ast
            .iter_functions()
            .any(|f| f.name == "update" && f.params.len() == 1)
        {
            return Err(invalid(
                "source",
                "the script defines no `fn update(ev)`".into(),
            ));
        }
        let state = if ast
            .iter_functions()
            .any(|f| f.name == "init" && f.params.len() == 1)
        {
            let options = CallFnOptions::new().eval_ast(false);
            script::with_budget(limits.budget, || {
                engine.call_fn_with_options::<Dynamic>(
                    options,
                    &mut Scope::new(),
                    &ast,
                    "init",
                    (params.to_dynamic(),),
                )
            })
            .map_err(|e| invalid("source", format!("init: {}", script::describe(&e))))?
        } else {
            Dynamic::from_map(rhai::Map::new())
        };
        Ok(ScriptPredictor {
            descriptor: Descriptor {
                name: name.to_owned(),
                kind: "rhai".into(),
                consumes,
                produces,
                params: params.clone(),
            },
            engine,
            ast,
            state,
            emitted,
            budget: limits.budget,
            start: tokio::time::Instant::now(),
        })
    }
}

impl Predictor for ScriptPredictor {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn update(&mut self, event: &Event, out: &mut Emitter) -> Result<(), BoxError> {
        let mut map = script::event_map(event);
        let t = event
            .time()
            .saturating_duration_since(self.start)
            .as_secs_f64();
        map.insert("time_s".into(), Dynamic::from_float(t));
        let options = CallFnOptions::new()
            .eval_ast(false)
            .bind_this_ptr(&mut self.state);
        let result = script::with_budget(self.budget, || {
            self.engine.call_fn_with_options::<Dynamic>(
                options,
                &mut Scope::new(),
                &self.ast,
                "update",
                (Dynamic::from_map(map),),
            )
        });
        let emitted = std::mem::take(&mut *lock(&self.emitted));
        let _ = result.map_err(|e| script::describe(&e))?;
        for (topic, payload) in emitted {
            out.emit(topic, payload);
        }
        Ok(())
    }
}
