//! Exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015;
//! the DynamoDB developer guide asks for it when retrying `UnprocessedItems`).

use std::time::Duration;

/// Retry pacing: attempt `k` sleeps a random time in `[0, min(cap, base · 2^k))`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    max_attempts: u32,
    attempts: u32,
    seed: u64,
}

impl Backoff {
    /// 50 ms base, 5 s cap, 10 attempts: about 20 s of retrying at most.
    pub fn new() -> Backoff {
        Backoff::with(Duration::from_millis(50), Duration::from_secs(5), 10)
    }

    pub fn with(base: Duration, cap: Duration, max_attempts: u32) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Backoff {
            base,
            cap,
            max_attempts,
            attempts: 0,
            seed: seed | 1,
        }
    }

    /// Retries made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay before the next retry, or `None` when the retries are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempts >= self.max_attempts {
            return None;
        }
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempts.min(20))
            .min(self.cap);
        self.attempts += 1;
        // xorshift64*: jitter needs spread, not cryptographic quality.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        let random = self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
        Some(ceiling.mul_f64(fraction))
    }

    /// Sleeps before the next retry; `false` when the retries are used up.
    pub async fn wait(&mut self) -> bool {
        match self.next_delay() {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                true
            }
            None => false,
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_a_doubling_ceiling_and_stop() {
        let mut backoff = Backoff::with(Duration::from_millis(10), Duration::from_millis(50), 5);
        let ceilings = [10, 20, 40, 50, 50];
        for ceiling in ceilings {
            let delay = backoff.next_delay().expect("within the budget");
            assert!(
                delay < Duration::from_millis(ceiling),
                "{delay:?} >= {ceiling} ms"
            );
        }
        assert_eq!(backoff.next_delay(), None);
        assert_eq!(backoff.attempts(), 5);
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut backoff = Backoff::with(Duration::from_secs(1), Duration::from_secs(1), 50);
        let delays: Vec<Duration> = (0..50).filter_map(|_| backoff.next_delay()).collect();
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 40, "{delays:?}");
    }
}
