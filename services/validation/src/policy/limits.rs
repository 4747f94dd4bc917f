//! Limits on policy evaluation: a wall-clock budget per object and per run, enforced by
//! regorus' cooperative execution timer, and bounded replacements for the builtins that
//! build a whole array in one step before the timer can look (`numbers.range`,
//! `numbers.range_step`).

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, LimitError, Value};

/// How long policies may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyLimits {
    /// Wall-clock budget for all rules on one object.
    pub per_object: Duration,
    /// Wall-clock budget for the whole run; objects after it is spent are not evaluated.
    pub total: Duration,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        Self {
            per_object: Duration::from_secs(2),
            total: Duration::from_secs(60),
        }
    }
}

/// Interpreter work units between two clock reads. Measured: 64 costs no visible throughput
/// on the baseline and bounds the overshoot past a deadline to a few microseconds of work.
const CHECK_INTERVAL: NonZeroU32 = NonZeroU32::new(64).unwrap();

/// Most elements `numbers.range` may build. regorus' own builtin allocates the whole array
/// up front without a timer check: `numbers.range(1, 1e11)` asks for terabytes and aborts
/// the process. A million integers is a few tens of MiB, far above what a manifest policy
/// needs.
pub const MAX_RANGE_ELEMENTS: u64 = 1_000_000;

/// Text that marks the range limit error. regorus turns an extension's error into a
/// message (the type is lost), so the engine recognises it by this text.
pub(super) const RANGE_LIMIT_MARKER: &str = "elements, over the policy limit of";

/// Sets the timer so the next evaluation stops after `budget`.
pub(super) fn set_budget(engine: &mut Engine, budget: Duration) {
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: budget,
        check_interval: CHECK_INTERVAL,
    });
}

/// Why an evaluation was stopped, when it was stopped by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exceeded {
    Time,
    Memory,
}

/// Classifies an evaluation error as a limit, if it is one.
pub(super) fn exceeded(error: &anyhow::Error) -> Option<Exceeded> {
    match error.downcast_ref::<LimitError>() {
        Some(LimitError::TimeLimitExceeded { .. }) => return Some(Exceeded::Time),
        Some(
            LimitError::MemoryLimitExceeded { .. } | LimitError::RegexSizeLimitExceeded { .. },
        ) => {
            return Some(Exceeded::Memory);
        }
        None => {}
    }
    let text = error.to_string();
    if text.contains("execution exceeded time limit") {
        Some(Exceeded::Time)
    } else if text.contains(RANGE_LIMIT_MARKER) {
        Some(Exceeded::Memory)
    } else {
        None
    }
}

/// Adds `numbers.range` and `numbers.range_step` with a bound on the elements they build;
/// the engine looks extensions up before builtins, so these replace regorus' own.
pub(super) fn add_bounded_builtins(engine: &mut Engine) -> anyhow::Result<()> {
    engine.add_extension(
        "numbers.range".into(),
        2,
        Box::new(|args: Vec<Value>| range(&args[0], &args[1], None)),
    )?;
    engine.add_extension(
        "numbers.range_step".into(),
        3,
        Box::new(|args: Vec<Value>| range(&args[0], &args[1], Some(&args[2]))),
    )
}

/// `numbers.range(a, b)` or `numbers.range_step(a, b, step)` as OPA defines them: from a to
/// b inclusive, counting down when b < a; undefined for non-integers.
fn range(from: &Value, to: &Value, step: Option<&Value>) -> anyhow::Result<Value> {
    let (Ok(from), Ok(to)) = (from.as_i64(), to.as_i64()) else {
        return Ok(Value::Undefined);
    };
    let step = match step {
        None => 1,
        Some(step) => match step.as_i64() {
            Ok(step) if step > 0 => step,
            _ => anyhow::bail!("numbers.range_step: step must be a positive integer"),
        },
    };
    let elements = (to.abs_diff(from) / step.unsigned_abs()).saturating_add(1);
    if elements > MAX_RANGE_ELEMENTS {
        anyhow::bail!("numbers.range of {elements} {RANGE_LIMIT_MARKER} {MAX_RANGE_ELEMENTS}");
    }
    let step = if to < from { -step } else { step };
    // Every element lies between `from` and `to`, so none of these overflows.
    let values = (0..elements as i64)
        .map(|k| Value::from(from + k * step))
        .collect::<Vec<_>>();
    Ok(Value::from(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: anyhow::Result<Value>) -> Vec<i64> {
        let v = v.unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_i64().unwrap())
            .collect()
    }

    #[test]
    fn ranges_follow_opa() {
        let n = |i: i64| Value::from(i);
        assert_eq!(ints(range(&n(1), &n(4), None)), [1, 2, 3, 4]);
        assert_eq!(ints(range(&n(3), &n(1), None)), [3, 2, 1]);
        assert_eq!(ints(range(&n(0), &n(10), Some(&n(4)))), [0, 4, 8]);
        assert_eq!(ints(range(&n(10), &n(0), Some(&n(4)))), [10, 6, 2]);
        assert_eq!(
            range(&Value::from(1.5), &n(3), None).unwrap(),
            Value::Undefined
        );
        assert!(range(&n(0), &n(3), Some(&n(0))).is_err());
    }

    #[test]
    fn huge_ranges_are_refused_before_allocating() {
        let error = range(&Value::from(1), &Value::from(100_000_000_000i64), None).unwrap_err();
        assert_eq!(exceeded(&error), Some(Exceeded::Memory), "{error}");
        assert_eq!(
            ints(range(
                &Value::from(1),
                &Value::from(MAX_RANGE_ELEMENTS as i64),
                None
            ))
            .len() as u64,
            MAX_RANGE_ELEMENTS
        );
    }
}
