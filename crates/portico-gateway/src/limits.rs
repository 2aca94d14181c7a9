//! Limits on the request path: the product limits of the caller's
//! subscription are added to the batch the traffic policies built, the
//! whole batch goes to the node's counters once, and the outcome becomes
//! either a 429 or the RateLimit fields of the response
//! (draft-ietf-httpapi-ratelimit-headers-11).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use portico_model::ErrorCode;
use portico_model::limits::{
    Acquire, Algorithm, Counters, Decision, LimitPolicy, Limits, Outcome, Permit, ceil_secs,
};
use portico_model::policy::{Rejection, RequestContext};

use crate::metrics::{ApiMetrics, LimitOutcome};
use crate::text::push_u64;

/// A request refused by a limit: what the 429 says.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub detail: String,
    /// Identifiers of the limits without room, for `violated-policies`.
    pub violated: Vec<Arc<str>>,
    /// Whole seconds, at least 1 and never less than a violated limit's `t`.
    pub retry_after: u64,
}

/// How the batch ended, when it did not admit the request.
#[derive(Debug)]
pub(crate) enum Refused {
    Limited(Refusal),
    Unavailable(Rejection),
}

/// Adds the caller's product limits to the batch: a product's `rate_limit`
/// (a window per app) and `quota` (epoch-aligned windows per app).
pub(crate) fn add_product_limits(cx: &mut RequestContext<'_>) {
    let Some(id) = cx.identity.as_ref() else {
        return;
    };
    let Some(access) = id.app.access(cx.api_index) else {
        return;
    };
    if access.limits.is_empty() {
        return;
    }
    let now_ms = unix_ms();
    let limits = &mut cx.limits;
    for pl in &access.limits {
        let window_ms = u64::try_from(pl.limit.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let (policy, algorithm, start) = if pl.quota {
            let start = now_ms - now_ms % window_ms;
            let ends_in = Duration::from_millis(start.saturating_add(window_ms) - now_ms);
            (
                LimitPolicy::ProductQuota,
                Algorithm::Period {
                    limit: pl.limit.limit,
                    period: pl.limit.window,
                    ends_in,
                },
                Some(start),
            )
        } else {
            (
                LimitPolicy::ProductRateLimit,
                Algorithm::Window {
                    limit: pl.limit.limit,
                    window: pl.limit.window,
                },
                None,
            )
        };
        limits.push(&pl.name, policy, algorithm, |k| {
            k.push_str(if pl.quota { "pq:" } else { "prl:" });
            k.push_str(&pl.product);
            let _ = write!(k, ":{}:{window_ms}:", pl.limit.limit);
            if let Some(start) = start {
                let _ = write!(k, "{start}:");
            }
            k.push_str(&id.app.name);
        });
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Decides the batch in `cx.limits` (one backend call). On admission the
/// outcomes stay in `cx.limits` for the RateLimit fields and the permit
/// (concurrency slots) is returned.
pub(crate) async fn decide(
    counters: Option<&Arc<dyn Counters>>,
    cx: &mut RequestContext<'_>,
    metrics: &ApiMetrics,
) -> Result<Option<Permit>, Refused> {
    let Some(counters) = counters else {
        tracing::error!(api = %cx.api.name, "The API has limits but the node has no counters; refusing.");
        for c in cx.limits.checks() {
            metrics.limit(c.policy, LimitOutcome::Unavailable);
        }
        return Err(Refused::Unavailable(Rejection::new(
            ErrorCode::LimitsUnavailable,
            "This node cannot count limits.",
        )));
    };
    let decision = match counters.acquire(&cx.limits) {
        Acquire::Ready(d) => d,
        Acquire::Pending(wait) => wait.await,
    };
    let limits = &mut cx.limits;
    match decision {
        Decision::Admitted { outcomes, permit } => {
            for c in limits.checks() {
                metrics.limit(c.policy, LimitOutcome::Allowed);
            }
            limits.outcomes = outcomes;
            Ok(permit)
        }
        Decision::Limited { outcomes } => {
            limits.outcomes = outcomes;
            Err(Refused::Limited(refusal(limits, metrics)))
        }
        Decision::Unavailable => {
            for c in limits.checks() {
                metrics.limit(c.policy, LimitOutcome::Unavailable);
            }
            Err(Refused::Unavailable(Rejection::new(
                ErrorCode::LimitsUnavailable,
                "The shared counters are unreachable, and this node refuses requests under a limit until they are back.",
            )))
        }
        Decision::Unmetered => {
            for c in limits.checks() {
                metrics.limit(c.policy, LimitOutcome::Unmetered);
            }
            Ok(None)
        }
    }
}

fn refusal(limits: &Limits, metrics: &ApiMetrics) -> Refusal {
    let mut violated = Vec::new();
    let mut retry_after = 1;
    let mut detail = String::new();
    for (check, o) in limits.checks().iter().zip(&limits.outcomes) {
        if o.allowed {
            continue;
        }
        metrics.limit(check.policy, LimitOutcome::Limited);
        let t = ceil_secs(o.reset);
        retry_after = retry_after.max(t);
        if violated.is_empty() {
            detail = describe(&check.name, check.algorithm, t);
        }
        violated.push(check.name.clone());
    }
    Refusal {
        detail,
        violated,
        retry_after,
    }
}

fn describe(name: &str, algorithm: Algorithm, t: u64) -> String {
    let again = if t > 0 {
        format!("; try again in {t} s")
    } else {
        String::new()
    };
    match algorithm {
        Algorithm::Window { limit, window } => format!(
            "The limit `{name}` allows {limit} requests per {} s{again}.",
            window.as_secs()
        ),
        Algorithm::Period { limit, period, .. } => format!(
            "The quota `{name}` of {limit} requests per {} s is used up{again}.",
            period.as_secs()
        ),
        Algorithm::Gcra { rate, per, .. } => format!(
            "The limit `{name}` admits {rate} requests per {} s, evenly spaced{again}.",
            per.as_secs()
        ),
        Algorithm::Concurrency { limit } => format!(
            "The limit `{name}` allows {limit} requests in flight at once; try again shortly."
        ),
    }
}

/// `RateLimit-Policy` and `RateLimit` for the outcomes of `limits`: one
/// list member per limit, in batch order.
pub(crate) fn fields(limits: &Limits) -> Option<(HeaderValue, HeaderValue)> {
    if limits.outcomes.len() != limits.len() || limits.is_empty() {
        return None;
    }
    let mut state = Vec::with_capacity(32 * limits.len());
    for (check, o) in limits.checks().iter().zip(&limits.outcomes) {
        if !state.is_empty() {
            state.extend_from_slice(b", ");
        }
        write_state(&mut state, &check.name, check.algorithm, o);
    }
    Some((policy_field(limits)?, HeaderValue::try_from(state).ok()?))
}

/// The last `RateLimit-Policy` written on a thread, and the limits it was
/// written for. It depends only on those, and consecutive requests mostly
/// come under the same ones.
struct LastPolicy {
    limits: Vec<(Arc<str>, Algorithm)>,
    value: Option<HeaderValue>,
}

thread_local! {
    static LAST_POLICY: RefCell<LastPolicy> = const {
        RefCell::new(LastPolicy {
            limits: Vec::new(),
            value: None,
        })
    };
}

/// `RateLimit-Policy` for the limits of `limits`: the last one again where
/// they are the same limits, written anew otherwise.
fn policy_field(limits: &Limits) -> Option<HeaderValue> {
    let same = |cached: &[(Arc<str>, Algorithm)]| {
        cached.len() == limits.len()
            && cached
                .iter()
                .zip(limits.checks())
                .all(|((name, a), check)| Arc::ptr_eq(name, &check.name) && *a == check.algorithm)
    };
    let hit = LAST_POLICY
        .try_with(|last| {
            let last = last.try_borrow().ok()?;
            if same(&last.limits) {
                last.value.clone()
            } else {
                None
            }
        })
        .ok()
        .flatten();
    if hit.is_some() {
        return hit;
    }
    let mut policy = Vec::with_capacity(32 * limits.len());
    for check in limits.checks() {
        if !policy.is_empty() {
            policy.extend_from_slice(b", ");
        }
        write_policy(&mut policy, &check.name, check.algorithm);
    }
    let value = HeaderValue::try_from(policy).ok()?;
    let _ = LAST_POLICY.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            last.limits.clear();
            last.limits.extend(
                limits
                    .checks()
                    .iter()
                    .map(|check| (check.name.clone(), check.algorithm)),
            );
            last.value = Some(value.clone());
        }
    });
    Some(value)
}

// Written piece by piece rather than with `write!`, as bytes: `RateLimit`
// goes on every response of an API under a limit.
fn write_policy(policy: &mut Vec<u8>, name: &str, a: Algorithm) {
    policy.push(b'"');
    policy.extend_from_slice(name.as_bytes());
    policy.extend_from_slice(b"\";q=");
    push_u64(policy, a.quota());
    if let Some(w) = a.window_secs() {
        policy.extend_from_slice(b";w=");
        push_u64(policy, w);
    }
}

fn write_state(state: &mut Vec<u8>, name: &str, a: Algorithm, o: &Outcome) {
    state.push(b'"');
    state.extend_from_slice(name.as_bytes());
    state.extend_from_slice(b"\";r=");
    push_u64(state, o.remaining);
    if !matches!(a, Algorithm::Concurrency { .. }) {
        state.extend_from_slice(b";t=");
        push_u64(state, ceil_secs(o.reset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_model::limits::Outcomes;

    #[test]
    fn fields_follow_the_draft() {
        let mut l = Limits::default();
        let app: Arc<str> = "app".into();
        let cc: Arc<str> = "concurrency".into();
        l.push(
            &app,
            LimitPolicy::RateLimit,
            Algorithm::Window {
                limit: 100,
                window: Duration::from_secs(60),
            },
            |k| k.push('a'),
        );
        l.push(
            &cc,
            LimitPolicy::Concurrency,
            Algorithm::Concurrency { limit: 4 },
            |k| k.push('b'),
        );
        assert!(fields(&l).is_none(), "no outcomes yet");
        l.outcomes = Outcomes::from_vec(vec![
            Outcome {
                allowed: false,
                remaining: 0,
                reset: Duration::from_millis(41_200),
            },
            Outcome {
                allowed: true,
                remaining: 3,
                reset: Duration::ZERO,
            },
        ]);
        let (p, s) = fields(&l).unwrap();
        assert_eq!(p, "\"app\";q=100;w=60, \"concurrency\";q=4");
        assert_eq!(s, "\"app\";r=0;t=42, \"concurrency\";r=3");
        let r = refusal(&l, &ApiMetrics::default());
        assert_eq!(r.violated, vec![app]);
        assert_eq!(r.retry_after, 42);
        assert!(r.detail.contains("100 requests per 60 s"), "{}", r.detail);
    }

    /// The policy field is kept per thread for the same limits: it must
    /// follow every change of name, algorithm or number of limits.
    #[test]
    fn the_kept_policy_field_follows_the_limits() {
        let one = Outcome {
            allowed: true,
            remaining: 1,
            reset: Duration::from_secs(1),
        };
        let batch = |limits: &[(&Arc<str>, Algorithm)]| {
            let mut l = Limits::default();
            for (name, a) in limits {
                l.push(name, LimitPolicy::RateLimit, *a, |k| k.push('k'));
            }
            l.outcomes = Outcomes::from_elem(one, limits.len());
            fields(&l).unwrap().0
        };
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let window = |limit| Algorithm::Window {
            limit,
            window: Duration::from_secs(60),
        };
        assert_eq!(batch(&[(&a, window(5))]), "\"a\";q=5;w=60");
        assert_eq!(batch(&[(&a, window(5))]), "\"a\";q=5;w=60");
        assert_eq!(batch(&[(&a, window(6))]), "\"a\";q=6;w=60");
        assert_eq!(batch(&[(&b, window(6))]), "\"b\";q=6;w=60");
        assert_eq!(
            batch(&[(&b, window(6)), (&a, window(5))]),
            "\"b\";q=6;w=60, \"a\";q=5;w=60"
        );
        assert_eq!(batch(&[(&b, window(6))]), "\"b\";q=6;w=60");
        // Another name with the same text is written anew, and the same.
        let b2: Arc<str> = "b".into();
        assert_eq!(batch(&[(&b2, window(6))]), "\"b\";q=6;w=60");
    }
}
