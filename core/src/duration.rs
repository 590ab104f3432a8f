//! Durations as users write them (`250ms`, `2s`, `1.5m`, `1h`), and time arithmetic that
//! cannot overflow.
//!
//! Every duration selflet reads — timers in behaviours, time-outs and limits in manifests,
//! periods in predictor parameters — goes through [`parse`], which accepts
//! `0` up to [`MAX`] (a year). Adding a duration to an instant goes through `deadline`,
//! which saturates instead of panicking, so no input can make a time computation panic.

use std::time::Duration;

use tokio::time::Instant;

/// The longest duration accepted anywhere: 365 days.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a text is not an accepted duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not written as a number and a unit.
    #[error("`{0}` is not a duration (such as 250ms, 2s, 1.5m, 1h)")]
    Syntax(String),
    /// Longer than [`MAX`].
    #[error("`{0}` is longer than the longest duration accepted, 365 days (8760h)")]
    TooLong(String),
}

/// Parses `<number><unit>` with unit `ms`, `s`, `m` (or `min`) or `h`; the number may have a
/// fraction. Accepts 0 up to [`MAX`].
///
/// ```
/// use std::time::Duration;
/// use selflet_core::duration::parse;
///
/// assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
/// assert!(parse("10000000000000000000s").is_err());
/// ```
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(text.to_owned());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(syntax)?;
    let (num, unit) = trimmed.split_at(split);
    let n: f64 = num.parse().map_err(|_| syntax())?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(syntax()),
    };
    if !(0.0..=MAX.as_secs_f64()).contains(&secs) {
        return Err(DurationError::TooLong(text.to_owned()));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| syntax())
}

/// `now + d`, or a time so far ahead that it never comes when that would overflow.
pub(crate) fn deadline(d: Duration) -> Instant {
    after(Instant::now(), d)
}

/// `t + d`, saturating at a far-away instant instead of panicking.
pub(crate) fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(MAX))
        .or_else(|| t.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_the_usual_units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("8760h"), Ok(MAX));
        for bad in ["2", "s", "2 weeks", "1.2.3s", "-1s", ""] {
            assert!(matches!(parse(bad), Err(DurationError::Syntax(_))), "{bad}");
        }
        assert!(matches!(parse("8761h"), Err(DurationError::TooLong(_))));
        assert!(matches!(
            parse("10000000000000000000s"),
            Err(DurationError::TooLong(_))
        ));
    }

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now);
        assert_eq!(
            after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }
}
