//! States certain to loop for ever without waiting: refused before anything runs.

use super::super::model::{Action, State, Transition};

/// The states that, once entered, are certain to move on without waiting (no event, no
/// timer, no call or ability to wait for), and only to one another: an instance that enters
/// one of them never ends. Empty when there is none.
///
/// A state is certain to move on when one of its `always` transitions has no guard, or when
/// it has no `do` that waits (or none at all) and one of its `done` transitions has no guard.
/// The transitions it may take are those up to the first unguarded one, plus its `error`
/// transitions, since a failing action would take them. The looping states are then the
/// largest set of such states whose possible transitions all stay inside the set.
pub(super) fn certain_loop(states: &[State]) -> Vec<usize> {
    let successors: Vec<Option<Vec<usize>>> = states.iter().map(certain_successors).collect();
    let mut looping: Vec<bool> = successors.iter().map(Option::is_some).collect();
    loop {
        let mut changed = false;
        for (i, next) in successors.iter().enumerate() {
            if looping[i] && next.iter().flatten().any(|&t| !looping[t]) {
                looping[i] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    (0..states.len()).filter(|&i| looping[i]).collect()
}

/// Where a state may go without waiting, if it is certain to go somewhere at once.
fn certain_successors(s: &State) -> Option<Vec<usize>> {
    if s.final_.is_some() {
        return None;
    }
    let up_to_unguarded = |ts: &[Transition]| -> Option<Vec<usize>> {
        let k = ts.iter().position(|t| t.guard.is_none())?;
        Some(ts[..=k].iter().map(|t| t.target).collect())
    };
    let errors = s.on_error.iter().map(|t| t.target);
    if let Some(mut next) = up_to_unguarded(&s.always) {
        next.extend(errors);
        return Some(next);
    }
    let waits = matches!(
        s.activity,
        Some(Action::Call { .. } | Action::Ability { .. })
    );
    if waits {
        return None;
    }
    let mut next = up_to_unguarded(&s.on_done)?;
    next.extend(s.always.iter().map(|t| t.target));
    next.extend(errors);
    Some(next)
}
