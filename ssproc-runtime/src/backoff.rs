//! Delay before a retry.

use std::time::Duration;

/// The delay before retrying after the `attempt`-th failed attempt (from 1):
/// `base` doubled per earlier attempt, plus up to half of that at random,
/// capped at `max`.
pub(crate) fn retry_delay(base: Duration, max: Duration, attempt: i32) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(32);
    let delay = base.saturating_mul(1 << doublings.min(31)).min(max);
    let jitter = delay.mul_f64(fastrand::f64() / 2.0);
    delay.saturating_add(jitter).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempt in 1..=5 {
            let floor = base * (1 << (attempt - 1));
            let delay = retry_delay(base, max, attempt);
            assert!(
                delay >= floor && delay <= floor.mul_f64(1.5),
                "{attempt}: {delay:?}"
            );
        }
        assert_eq!(retry_delay(base, max, 40), max);
        assert_eq!(retry_delay(base, max, i32::MAX), max);
    }

    #[test]
    fn odd_attempt_numbers_do_not_panic() {
        let base = Duration::from_millis(100);
        assert!(retry_delay(base, base * 4, 0) >= base);
        assert!(retry_delay(base, base * 4, -3) >= base);
    }
}
