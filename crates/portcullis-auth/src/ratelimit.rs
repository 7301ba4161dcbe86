//! Per-key attempt limits (login attempts per source address and per user name).
//!
//! A token bucket per key, refilled continuously. The table is bounded: when it is full, keys
//! whose buckets are full again (idle long enough) are dropped; if none are, the new key is
//! refused rather than growing memory without limit.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys tracked at once.
pub const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A limiter allowing `per_minute` attempts per key, with bursts up to the same number.
#[derive(Debug)]
pub struct RateLimiter<K> {
    per_minute: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

/// An attempt over the limit: when the next one is allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limited {
    /// Wait at least this long.
    pub retry_after: Duration,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter with `per_minute` attempts per key.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `key` at `now`.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Limited> {
        let mut map = match self.buckets.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let rate = self.per_minute / 60.0;
        if !map.contains_key(key) && map.len() >= MAX_KEYS {
            let cap = self.per_minute;
            map.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate < cap
            });
            if map.len() >= MAX_KEYS {
                return Err(Limited {
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        let bucket = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.per_minute,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(self.per_minute);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / rate;
            Err(Limited {
                retry_after: Duration::from_secs_f64(wait.max(1.0)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let rl = RateLimiter::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(rl.check(&"a", t0).is_ok());
        }
        let limited = rl.check(&"a", t0).unwrap_err();
        assert!(limited.retry_after >= Duration::from_secs(1));
        assert!(rl.check(&"b", t0).is_ok(), "keys are independent");
        assert!(
            rl.check(&"a", t0 + Duration::from_secs(20)).is_ok(),
            "refilled"
        );
    }
}
