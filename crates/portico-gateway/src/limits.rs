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

/// The `RateLimit-Policy` and `RateLimit` values of one answer, written
/// as text once per request: Portico's HTTP/1.1 server copies them into
/// the head it encodes, and only answers that go through a field map
/// (HTTP/2, HTTP/1.0, hand-offs) make `HeaderValue`s of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RateLimitFields {
    /// `RateLimit-Policy`'s value, then `RateLimit`'s.
    text: Vec<u8>,
    /// Where `RateLimit`'s value starts in `text`.
    split: usize,
}

impl RateLimitFields {
    pub(crate) fn policy(&self) -> &[u8] {
        self.text.get(..self.split).unwrap_or_default()
    }

    pub(crate) fn state(&self) -> &[u8] {
        self.text.get(self.split..).unwrap_or_default()
    }

    /// Both values as field values, for an answer's field map.
    pub(crate) fn values(&self) -> Option<(HeaderValue, HeaderValue)> {
        Some((
            HeaderValue::from_bytes(self.policy()).ok()?,
            HeaderValue::from_bytes(self.state()).ok()?,
        ))
    }
}

/// The RateLimit fields for the outcomes of `limits`: one list member per
/// limit, in batch order. `None` before the batch ran, and for a name
/// that is not an sf-string's visible ASCII (the configuration refuses
/// such names; this keeps the values safe to copy into a head as they are).
pub(crate) fn fields(limits: &Limits) -> Option<RateLimitFields> {
    if limits.outcomes.len() != limits.len() || limits.is_empty() {
        return None;
    }
    let mut text = Vec::with_capacity(64 * limits.len());
    if !write_policies(&mut text, limits) {
        return None;
    }
    let split = text.len();
    for (check, o) in limits.checks().iter().zip(&limits.outcomes) {
        if text.len() > split {
            text.extend_from_slice(b", ");
        }
        write_state(&mut text, &check.name, check.algorithm, o);
    }
    Some(RateLimitFields { text, split })
}

/// The last `RateLimit-Policy` value written on a thread, and the limits
/// it was written for: it depends only on their names, quotas and
/// windows, and consecutive requests mostly come under the same limits.
struct LastPolicy {
    /// Name, `q` and `w` of each limit, in batch order.
    limits: Vec<(Arc<str>, u64, Option<u64>)>,
    text: Vec<u8>,
}

thread_local! {
    static LAST_POLICY: RefCell<LastPolicy> = const {
        RefCell::new(LastPolicy {
            limits: Vec::new(),
            text: Vec::new(),
        })
    };
}

/// Appends `RateLimit-Policy`'s value for the limits of `limits`: the
/// thread's last one again where the limits are the same, written anew
/// (and kept) otherwise. False, and nothing written, where a name is not
/// an sf-string's text.
fn write_policies(out: &mut Vec<u8>, limits: &Limits) -> bool {
    let same = |kept: &[(Arc<str>, u64, Option<u64>)]| {
        kept.len() == limits.len()
            && kept.iter().zip(limits.checks()).all(|((name, q, w), c)| {
                Arc::ptr_eq(name, &c.name)
                    && *q == c.algorithm.quota()
                    && *w == c.algorithm.window_secs()
            })
    };
    let kept = LAST_POLICY.try_with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return None;
        };
        if !same(&last.limits) {
            // Names are checked when a value is written, not when it is
            // used again.
            if !names_fit(limits) {
                return Some(false);
            }
            let last = &mut *last;
            last.text.clear();
            write_policy_list(&mut last.text, limits);
            last.limits.clear();
            last.limits.extend(limits.checks().iter().map(|c| {
                (
                    c.name.clone(),
                    c.algorithm.quota(),
                    c.algorithm.window_secs(),
                )
            }));
        }
        out.extend_from_slice(&last.text);
        Some(true)
    });
    match kept {
        Ok(Some(written)) => written,
        // Without the thread's value (its thread is ending, or a value is
        // being written): written here alone.
        _ => {
            let fit = names_fit(limits);
            if fit {
                write_policy_list(out, limits);
            }
            fit
        }
    }
}

fn write_policy_list(out: &mut Vec<u8>, limits: &Limits) {
    for (i, check) in limits.checks().iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        write_policy(out, &check.name, check.algorithm);
    }
}

/// Whether every limit's name can stand between the quotes of an
/// sf-string: visible ASCII and space, without `"` or `\`.
fn names_fit(limits: &Limits) -> bool {
    limits.checks().iter().all(|c| {
        c.name
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    })
}

// Written piece by piece rather than with `write!`, as bytes: the fields
// go on every response of an API under a limit.
fn write_policy(out: &mut Vec<u8>, name: &str, a: Algorithm) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\";q=");
    push_u64(out, a.quota());
    if let Some(w) = a.window_secs() {
        out.extend_from_slice(b";w=");
        push_u64(out, w);
    }
}

fn write_state(out: &mut Vec<u8>, name: &str, a: Algorithm, o: &Outcome) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\";r=");
    push_u64(out, o.remaining);
    if !matches!(a, Algorithm::Concurrency { .. }) {
        out.extend_from_slice(b";t=");
        push_u64(out, ceil_secs(o.reset));
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
        let f = fields(&l).unwrap();
        assert_eq!(f.policy(), b"\"app\";q=100;w=60, \"concurrency\";q=4");
        assert_eq!(f.state(), b"\"app\";r=0;t=42, \"concurrency\";r=3");
        let (p, s) = f.values().unwrap();
        assert_eq!(p, "\"app\";q=100;w=60, \"concurrency\";q=4");
        assert_eq!(s, "\"app\";r=0;t=42, \"concurrency\";r=3");
        let r = refusal(&l, &ApiMetrics::default());
        assert_eq!(r.violated, vec![app]);
        assert_eq!(r.retry_after, 42);
        assert!(r.detail.contains("100 requests per 60 s"), "{}", r.detail);
    }

    /// The policy value is kept per thread for the same limits: it must
    /// follow every change of name, quota, window or number of limits,
    /// and a quota's period running down does not change it.
    #[test]
    fn the_kept_policy_value_follows_the_limits() {
        let one = Outcome {
            allowed: true,
            remaining: 1,
            reset: Duration::from_secs(1),
        };
        let policy = |limits: &[(&Arc<str>, Algorithm)]| {
            let mut l = Limits::default();
            for (name, a) in limits {
                l.push(name, LimitPolicy::RateLimit, *a, |k| k.push('k'));
            }
            l.outcomes = Outcomes::from_elem(one, limits.len());
            String::from_utf8(fields(&l).unwrap().policy().to_vec()).unwrap()
        };
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let window = |limit| Algorithm::Window {
            limit,
            window: Duration::from_secs(60),
        };
        let period = |ends_in| Algorithm::Period {
            limit: 7,
            period: Duration::from_secs(3600),
            ends_in: Duration::from_secs(ends_in),
        };
        assert_eq!(policy(&[(&a, window(5))]), "\"a\";q=5;w=60");
        assert_eq!(policy(&[(&a, window(5))]), "\"a\";q=5;w=60");
        assert_eq!(policy(&[(&a, window(6))]), "\"a\";q=6;w=60");
        assert_eq!(policy(&[(&b, window(6))]), "\"b\";q=6;w=60");
        assert_eq!(
            policy(&[(&b, window(6)), (&a, window(5))]),
            "\"b\";q=6;w=60, \"a\";q=5;w=60"
        );
        assert_eq!(policy(&[(&b, window(6))]), "\"b\";q=6;w=60");
        assert_eq!(policy(&[(&b, period(10))]), "\"b\";q=7;w=3600");
        assert_eq!(policy(&[(&b, period(9))]), "\"b\";q=7;w=3600");
        let concurrency = Algorithm::Concurrency { limit: 7 };
        assert_eq!(policy(&[(&b, concurrency)]), "\"b\";q=7");
        // Another name with the same text is written anew, and the same.
        let b2: Arc<str> = "b".into();
        assert_eq!(policy(&[(&b2, window(6))]), "\"b\";q=6;w=60");
        // A name that is not an sf-string's text is refused, kept or not.
        let bad: Arc<str> = "b\"".into();
        let mut l = Limits::default();
        l.push(&bad, LimitPolicy::RateLimit, window(6), |k| k.push('k'));
        l.outcomes = Outcomes::from_elem(one, 1);
        assert!(fields(&l).is_none());
        assert!(fields(&l).is_none());
    }

    /// A name that could end the quoted string or the field is never
    /// written: no fields at all rather than a broken head.
    #[test]
    fn names_outside_an_sf_string_give_no_fields() {
        let one = Outcome {
            allowed: true,
            remaining: 1,
            reset: Duration::from_secs(1),
        };
        let window = Algorithm::Window {
            limit: 5,
            window: Duration::from_secs(60),
        };
        for (name, ok) in [
            ("app", true),
            ("with space.quota", true),
            ("quo\"te", false),
            ("back\\slash", false),
            ("line\r\nx-injected: 1", false),
            ("del\u{7f}", false),
            ("caf\u{e9}", false),
        ] {
            let name: Arc<str> = name.into();
            let mut l = Limits::default();
            l.push(&name, LimitPolicy::RateLimit, window, |k| k.push('k'));
            l.outcomes = Outcomes::from_elem(one, 1);
            assert_eq!(fields(&l).is_some(), ok, "{name:?}");
        }
    }
}
