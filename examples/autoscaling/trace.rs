//! Request traces: a CSV with a `timestamp` column in Unix milliseconds (other columns
//! ignored, rows in any order) becomes arrival times in seconds from the first request.

use std::path::Path;

/// A trace's arrivals.
#[derive(Debug, Clone)]
pub(crate) struct Trace {
    pub(crate) name: String,
    /// Seconds from the first arrival, sorted.
    pub(crate) arrivals: Vec<f64>,
}

impl Trace {
    /// Reads a trace, compressing time by `speedup` (2 replays it twice as fast).
    pub(crate) fn load(path: &Path, speedup: f64) -> Result<Trace, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        let mut lines = text.lines().enumerate();
        let (_, header) = lines.next().ok_or(format!("{shown}: empty file"))?;
        let column = header
            .split(',')
            .position(|c| c.trim() == "timestamp")
            .ok_or(format!("{shown}:1: no `timestamp` column in `{header}`"))?;
        let mut ms = Vec::new();
        for (i, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let cell = line.split(',').nth(column).unwrap_or("").trim();
            let t: u64 = cell.parse().map_err(|_| {
                format!(
                    "{shown}:{}: `{cell}` is not a timestamp in Unix milliseconds",
                    i + 1
                )
            })?;
            ms.push(t);
        }
        if ms.is_empty() {
            return Err(format!("{shown}: no requests"));
        }
        if !(speedup.is_finite() && speedup > 0.0) {
            return Err(format!(
                "the speed-up must be a positive number, not {speedup}"
            ));
        }
        ms.sort_unstable();
        let first = ms[0];
        let name = path
            .file_stem()
            .map_or("trace".into(), |s| s.to_string_lossy().into_owned());
        Ok(Trace {
            name,
            arrivals: ms
                .iter()
                .map(|t| (t - first) as f64 / 1000.0 / speedup)
                .collect(),
        })
    }

    /// Every `k`-th request, `k` times faster: the same rates and shape in `1/k` of the time
    /// and requests (for quick runs).
    pub(crate) fn thinned(&self, k: usize) -> Trace {
        let k = k.max(1);
        Trace {
            name: self.name.clone(),
            arrivals: self
                .arrivals
                .iter()
                .step_by(k)
                .map(|t| t / k as f64)
                .collect(),
        }
    }

    /// Seconds from the first arrival to the last.
    pub(crate) fn span(&self) -> f64 {
        self.arrivals.last().copied().unwrap_or(0.0)
    }

    /// Mean arrivals per second.
    pub(crate) fn mean_rate(&self) -> f64 {
        self.arrivals.len() as f64 / self.span().max(1.0)
    }

    /// The highest arrivals per second over any `window` seconds (aligned windows).
    pub(crate) fn peak_rate(&self, window: f64) -> f64 {
        let mut counts = vec![0usize; (self.span() / window) as usize + 1];
        for t in &self.arrivals {
            counts[(t / window) as usize] += 1;
        }
        counts.into_iter().max().unwrap_or(0) as f64 / window
    }
}
