//! Counts over time for the plots, in bounded memory: a run's timeline is kept in at most
//! [`MAX_BUCKETS`] buckets whose width doubles whenever the run outgrows them, so an hour-long
//! run and a ten-second one both plot at a useful resolution and neither holds every change.
//! The figures of `summary.json` are computed exactly elsewhere; these only draw.

/// Buckets kept per series, at most.
pub const MAX_BUCKETS: usize = 1000;

/// Width of a bucket until the run outgrows [`MAX_BUCKETS`] of them: 100 ms.
const FIRST_WIDTH_US: i64 = 100_000;

/// Named counts (one per dimension) as a step function of time.
#[derive(Debug, Clone, Default)]
pub struct Series {
    names: Vec<String>,
    start_us: Option<i64>,
    width_us: i64,
    /// The counts at the end of each bucket.
    buckets: Vec<Vec<i64>>,
    current: Vec<i64>,
}

impl Series {
    /// An empty series with these dimensions.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        let current = vec![0; names.len()];
        Series { names, start_us: None, width_us: FIRST_WIDTH_US, buckets: vec![], current }
    }

    /// The dimensions' names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The index of dimension `name`, added (counting 0 so far) when new.
    pub fn dimension(&mut self, name: &str) -> usize {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return i;
        }
        self.names.push(name.to_string());
        self.current.push(0);
        self.names.len().saturating_sub(1)
    }

    /// The latest counts.
    pub fn current(&self) -> &[i64] {
        &self.current
    }

    /// Adds `delta` to dimension `dim` at time `t_us` (microseconds since the epoch). Times
    /// before the last one seen count as the last one.
    pub fn add(&mut self, t_us: i64, dim: usize, delta: i64) {
        if dim >= self.current.len() {
            return;
        }
        let idx = self.bucket(t_us);
        if let Some(v) = self.current.get_mut(dim) {
            *v = v.saturating_add(delta);
        }
        if let Some(b) = self.buckets.get_mut(idx) {
            b.clone_from(&self.current);
        }
    }

    /// Sets every dimension at `t_us` to `values` (missing ones keep theirs).
    pub fn set(&mut self, t_us: i64, values: &[i64]) {
        let idx = self.bucket(t_us);
        for (c, v) in self.current.iter_mut().zip(values) {
            *c = *v;
        }
        if let Some(b) = self.buckets.get_mut(idx) {
            b.clone_from(&self.current);
        }
    }

    /// The bucket of `t_us`, made to exist (earlier buckets carrying the counts forward).
    fn bucket(&mut self, t_us: i64) -> usize {
        let start = *self.start_us.get_or_insert(t_us);
        let last = self.buckets.len().saturating_sub(1);
        let offset = t_us.saturating_sub(start).max(0);
        let mut idx = usize::try_from(offset / self.width_us.max(1)).unwrap_or(usize::MAX);
        if !self.buckets.is_empty() && idx < last {
            idx = last;
        }
        while idx >= MAX_BUCKETS {
            self.coarsen();
            idx = usize::try_from(offset / self.width_us.max(1)).unwrap_or(usize::MAX);
            let last = self.buckets.len().saturating_sub(1);
            if idx < last {
                idx = last;
            }
        }
        while self.buckets.len() <= idx {
            self.buckets.push(self.current.clone());
        }
        idx
    }

    /// Doubles the bucket width, keeping the later value of each pair.
    fn coarsen(&mut self) {
        self.width_us = self.width_us.saturating_mul(2);
        let old = std::mem::take(&mut self.buckets);
        let mut it = old.into_iter();
        while let Some(first) = it.next() {
            self.buckets.push(it.next().unwrap_or(first));
        }
    }

    /// (time in µs at the end of the bucket, counts) of every bucket, each counts vector as long
    /// as the names; starts with zeros at the first time seen.
    pub fn points(&self) -> Vec<(i64, Vec<i64>)> {
        let Some(start) = self.start_us else { return vec![] };
        let dims = self.names.len();
        let mut out = Vec::with_capacity(self.buckets.len().saturating_add(1));
        out.push((start, vec![0; dims]));
        for (i, b) in self.buckets.iter().enumerate() {
            let n = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
            let t = start.saturating_add(self.width_us.saturating_mul(n));
            let mut values = b.clone();
            values.resize(dims, 0);
            out.push((t, values));
        }
        out
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.start_us.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_function_carried_forward_and_bounded() {
        let mut s = Series::new(["a", "b"]);
        s.add(0, 0, 1);
        s.add(250_000, 1, 2);
        s.add(250_001, 0, 1);
        let p = s.points();
        assert_eq!(p[0], (0, vec![0, 0]));
        assert_eq!(p[1], (100_000, vec![1, 0]));
        assert_eq!(p[2], (200_000, vec![1, 0]));
        assert_eq!(p[3], (300_000, vec![2, 2]));
        // An hour of changes every 10 ms stays within MAX_BUCKETS.
        let mut long = Series::new(["n"]);
        for i in 0..360_000i64 {
            long.add(i * 10_000, 0, 1);
        }
        let p = long.points();
        assert!(p.len() <= MAX_BUCKETS + 1, "{}", p.len());
        assert_eq!(p.last().unwrap().1, vec![360_000]);
        // Out of order: counted at the latest time.
        long.add(0, 0, -1);
        assert_eq!(long.points().last().unwrap().1, vec![359_999]);
        let d = long.dimension("m");
        assert_eq!((d, long.points().last().unwrap().1.len()), (1, 2));
    }
}
