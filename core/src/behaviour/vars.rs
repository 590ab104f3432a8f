//! An instance's variables (`input`, `event` and the behaviour's own).
//!
//! Most instances never run a script: a state calls an ability with `input`, saves the answer
//! and outputs it. So variables are kept as [`Value`]s and put into a rhai [`Scope`] only when
//! an expression needs the engine; converting every input, answer and event to a `Dynamic` and
//! back was a tenth of a service call's cost.

use rhai::{Dynamic, Scope};

use crate::value::Value;

/// The variables of one instance. Names borrow from the behaviour, which outlives it.
pub(super) struct Vars<'a> {
    // Set since the engine last needed the scope; newer than what the scope holds.
    pending: Vec<(&'a str, Value)>,
    // Made for the first expression the engine evaluates.
    scope: Option<Scope<'static>>,
}

impl<'a> Vars<'a> {
    /// `input` (a constant for scripts), `event` (null until a trigger) and the behaviour's
    /// variables with their initial values.
    pub(super) fn new(input: Value, vars: &'a [(String, Value)]) -> Vars<'a> {
        // Room for the variable most behaviours save an answer in.
        let mut pending = Vec::with_capacity(3 + vars.len());
        pending.push(("input", input));
        pending.push(("event", Value::Null));
        pending.extend(vars.iter().map(|(k, v)| (k.as_str(), v.clone())));
        Vars {
            pending,
            scope: None,
        }
    }

    /// Sets a variable (never `input`: validation refuses it as a target).
    pub(super) fn set(&mut self, name: &'a str, value: Value) {
        match self.pending.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.pending.push((name, value)),
        }
    }

    /// Sets a variable to what the engine computed.
    pub(super) fn set_dynamic(&mut self, name: &str, value: Dynamic) {
        self.pending.retain(|(n, _)| *n != name);
        self.scope().set_value(name.to_owned(), value);
    }

    /// A variable's value, if it has one, without running the engine.
    pub(super) fn get(&self, name: &str) -> Option<Value> {
        match self.pending(name) {
            Some(v) => Some(v.clone()),
            None => Value::from_dynamic(self.scope.as_ref()?.get(name)?).ok(),
        }
    }

    /// A variable's value, moved out when it need not stay (the final output of an
    /// instance, which ends with it).
    pub(super) fn take(&mut self, name: &str) -> Option<Value> {
        match self.pending.iter().position(|(n, _)| *n == name) {
            Some(i) => Some(self.pending.swap_remove(i).1),
            None => self.get(name),
        }
    }

    /// A variable as the engine would read it.
    pub(super) fn get_dynamic(&self, name: &str) -> Option<Dynamic> {
        match self.pending(name) {
            Some(v) => Some(v.to_dynamic()),
            None => self.scope.as_ref()?.get(name).cloned(),
        }
    }

    /// A value set since the scope last saw it (one entry per name: `set` replaces).
    fn pending(&self, name: &str) -> Option<&Value> {
        self.pending
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The scope for the engine, with every variable in it.
    pub(super) fn scope(&mut self) -> &mut Scope<'static> {
        let scope = self.scope.get_or_insert_with(Scope::new);
        for (name, value) in self.pending.drain(..) {
            let value = value.to_dynamic();
            if name == "input" && !scope.contains("input") {
                scope.push_constant_dynamic(name, value);
            } else {
                scope.set_value(name.to_owned(), value);
            }
        }
        scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_value_wins_whether_or_not_the_engine_has_seen_the_scope() {
        let own = vec![("n".to_owned(), Value::Int(1))];
        let mut vars = Vars::new(Value::Int(7), &own);
        assert_eq!(vars.get("input"), Some(Value::Int(7)));
        assert_eq!(vars.get("event"), Some(Value::Null));
        assert_eq!(vars.get("n"), Some(Value::Int(1)));
        assert_eq!(vars.get("missing"), None);
        vars.set("n", Value::Int(2));
        assert_eq!(vars.scope().get_value::<i64>("n"), Some(2));
        assert!(vars.scope().is_constant("input").unwrap_or(false));
        vars.set("n", Value::Int(3));
        assert_eq!(vars.get("n"), Some(Value::Int(3)));
        assert_eq!(vars.get_dynamic("n").map(|d| d.as_int()), Some(Ok(3)));
        vars.set_dynamic("n", Dynamic::from_int(4));
        assert_eq!(vars.get("n"), Some(Value::Int(4)));
        assert_eq!(vars.scope().get_value::<i64>("n"), Some(4));
        assert_eq!(vars.scope().get_value::<i64>("input"), Some(7));
    }

    #[test]
    fn taking_gives_the_latest_value_whether_pending_or_in_the_scope() {
        let mut vars = Vars::new(Value::Null, &[]);
        vars.set("a", Value::from("pending"));
        vars.set("b", Value::Int(1));
        assert_eq!(vars.take("a"), Some(Value::from("pending")));
        assert_eq!(vars.get("b"), Some(Value::Int(1)), "the others stay");
        vars.set_dynamic("c", Dynamic::from_int(5));
        assert_eq!(vars.take("c"), Some(Value::Int(5)));
        assert_eq!(vars.take("missing"), None);
    }
}
