//! A deterministic Zipf stream for tests and benches: key `i` (0-based) has probability
//! proportional to `1 / (i + 1)^s`.

pub(crate) struct Zipf {
    cdf: Vec<f64>,
    state: u64,
}

impl Zipf {
    pub(crate) fn new(keys: usize, s: f64, seed: u64) -> Zipf {
        let mut cdf = Vec::with_capacity(keys);
        let mut total = 0.0;
        for i in 0..keys {
            total += 1.0 / ((i + 1) as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf, state: seed }
    }

    /// splitmix64: fast, and the same stream for the same seed everywhere.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn sample(&mut self) -> u64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1) as u64
    }

    pub(crate) fn stream(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.sample()).collect()
    }
}
