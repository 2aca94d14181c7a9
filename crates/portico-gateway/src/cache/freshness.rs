//! RFC 9111 for a shared cache: the `Cache-Control` directives of requests
//! and responses, whether a response may be stored, and for how long it
//! stays fresh. Pure functions of headers and a clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{AGE, CACHE_CONTROL, DATE, EXPIRES, PRAGMA, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, StatusCode};

use portico_model::cache::CacheSettings;

/// The `Cache-Control` directives Portico acts on. Unknown directives are
/// ignored (RFC 9111 §5.2.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    /// Request only.
    pub min_fresh: Option<u64>,
}

impl Directives {
    /// The directives of every `Cache-Control` field in `headers`. A
    /// request without `Cache-Control` but with `Pragma: no-cache` is
    /// `no-cache` (RFC 9111 §5.4).
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut d = Directives::default();
        let mut any = false;
        for value in headers.get_all(CACHE_CONTROL) {
            any = true;
            let Ok(text) = value.to_str() else {
                // Unreadable: be conservative.
                d.no_store = true;
                continue;
            };
            for item in split_list(text) {
                let (name, arg) = match item.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (item, None),
                };
                let seconds = || arg.and_then(parse_seconds);
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    // Qualified forms (`no-cache="set-cookie"`) are taken
                    // whole: Portico does not store the response.
                    "no-cache" => d.no_cache = true,
                    "private" => d.private = true,
                    "public" => d.public = true,
                    "must-revalidate" | "proxy-revalidate" => d.must_revalidate = true,
                    // A malformed value makes the response stale at once
                    // (RFC 9111 §4.2.1): 0.
                    "max-age" => d.max_age = Some(seconds().unwrap_or(0)),
                    "s-maxage" => d.s_maxage = Some(seconds().unwrap_or(0)),
                    "min-fresh" => d.min_fresh = seconds(),
                    _ => {}
                }
            }
        }
        if !any
            && headers.get_all(PRAGMA).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|t| t.to_ascii_lowercase().contains("no-cache"))
            })
        {
            d.no_cache = true;
        }
        d
    }
}

/// Items of a comma-separated list, trimmed, without empty ones (quoted
/// commas are not split: `no-cache="a, b"` stays one item).
fn split_list(text: &str) -> impl Iterator<Item = &str> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items.into_iter().map(str::trim).filter(|s| !s.is_empty())
}

/// Delta-seconds (RFC 9111 §1.2.2): digits, capped rather than refused
/// when too large.
fn parse_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::from(u32::MAX)))
}

/// Status codes cacheable by default (RFC 9110 §15.1), less 206 (Portico
/// does not combine partial content).
pub(crate) fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Why a response was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotStored {
    NoStore,
    Private,
    NoCache,
    SetCookie,
    Authorization,
    VaryStar,
    Status,
    NoFreshness,
}

impl NotStored {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::NoCache => "no-cache",
            NotStored::SetCookie => "set-cookie",
            NotStored::Authorization => "authorization",
            NotStored::VaryStar => "vary-star",
            NotStored::Status => "status",
            NotStored::NoFreshness => "stale",
        }
    }
}

/// How long a response to be stored stays fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Freshness {
    /// Freshness lifetime (RFC 9111 §4.2.1).
    pub lifetime: Duration,
    /// Age when received (RFC 9111 §4.2.3 `corrected_initial_age`).
    pub initial_age: Duration,
}

impl Freshness {
    /// Time left to keep it.
    pub(crate) fn ttl(&self) -> Duration {
        self.lifetime.saturating_sub(self.initial_age)
    }
}

/// What a storing decision needs to know about the request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestFacts {
    /// The client's request carried `Authorization`.
    pub authorization: bool,
    /// When the request was sent upstream.
    pub sent: SystemTime,
}

/// Whether a response may be stored by a shared cache under `settings`
/// (RFC 9111 §3), and if so its freshness, as seen at `now`.
pub(crate) fn storable(
    settings: &CacheSettings,
    req: RequestFacts,
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<Freshness, NotStored> {
    let cc = Directives::of(headers);
    if cc.no_store {
        return Err(NotStored::NoStore);
    }
    if cc.private {
        return Err(NotStored::Private);
    }
    if cc.no_cache {
        // Would have to be revalidated on every use: no point storing it.
        return Err(NotStored::NoCache);
    }
    if !settings.cookies && headers.contains_key(SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    // RFC 9111 §3.5: a shared cache stores a response to an authorized
    // request only when the response allows it explicitly.
    if req.authorization
        && !settings.authorization
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return Err(NotStored::Authorization);
    }
    if vary_names(headers).is_err() {
        return Err(NotStored::VaryStar);
    }
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStored::Status);
    }
    let date = headers
        .get(DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let explicit = if let Some(s) = cc.s_maxage {
        Some(Duration::from_secs(s))
    } else if let Some(m) = cc.max_age {
        Some(Duration::from_secs(m))
    } else if headers.contains_key(EXPIRES) {
        // An invalid Expires (`0`) means already expired (§5.3).
        let expires = headers
            .get(EXPIRES)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        Some(match expires {
            Some(e) => e
                .duration_since(date.unwrap_or(now))
                .unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        })
    } else {
        None
    };
    let lifetime = match explicit {
        Some(l) => l,
        None if heuristically_cacheable(status) || cc.public => settings.ttl,
        None => return Err(NotStored::Status),
    };
    // §4.2.3: the larger of the age the upstream states and the age its
    // Date implies, plus the time the response took to arrive.
    let age_value = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_seconds)
        .map_or(Duration::ZERO, Duration::from_secs);
    let apparent = date
        .and_then(|d| now.duration_since(d).ok())
        .unwrap_or(Duration::ZERO);
    let delay = now.duration_since(req.sent).unwrap_or(Duration::ZERO);
    let initial_age = apparent.max(age_value + delay);
    let f = Freshness {
        lifetime,
        initial_age,
    };
    if f.ttl().is_zero() {
        return Err(NotStored::NoFreshness);
    }
    Ok(f)
}

/// The request headers a response varies on (its `Vary`), lower case and
/// sorted; `Err` for `Vary: *`.
pub(crate) fn vary_names(headers: &HeaderMap) -> Result<Vec<HeaderName>, ()> {
    let mut names = Vec::new();
    for value in headers.get_all(VARY) {
        let Ok(text) = value.to_str() else {
            return Err(());
        };
        for item in split_list(text) {
            if item == "*" {
                return Err(());
            }
            let name = HeaderName::from_bytes(item.as_bytes()).map_err(|_| ())?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(names)
}

/// Whether a stored response of `age` with `ttl` left may answer a request
/// with directives `req` (RFC 9111 §4.2, §5.2.1).
pub(crate) fn satisfies(req: &Directives, age: Duration, ttl: Duration) -> bool {
    if ttl.is_zero() || req.no_cache {
        return false;
    }
    // `max-age=0` asks for a fresh answer, like `no-cache`.
    if req
        .max_age
        .is_some_and(|m| m == 0 || age > Duration::from_secs(m))
    {
        return false;
    }
    req.min_fresh.is_none_or(|m| ttl >= Duration::from_secs(m))
}

/// Unix milliseconds of `t`.
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use portico_model::cache::CacheBackend;

    fn settings() -> CacheSettings {
        CacheSettings {
            ttl: Duration::from_secs(60),
            max_entry_size: 1 << 20,
            vary: Vec::new().into(),
            authorization: false,
            cookies: false,
            backend: CacheBackend::Memory,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const NOW: u64 = 1_784_000_000;

    fn facts() -> RequestFacts {
        RequestFacts {
            authorization: false,
            sent: at(NOW),
        }
    }

    fn check(status: u16, h: &[(&'static str, &str)]) -> Result<Freshness, NotStored> {
        storable(
            &settings(),
            facts(),
            StatusCode::from_u16(status).unwrap(),
            &headers(h),
            at(NOW),
        )
    }

    fn http_date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    #[test]
    fn s_maxage_wins_over_max_age_and_expires() {
        let e = http_date(NOW + 1000);
        let f = check(
            200,
            &[
                ("cache-control", "max-age=10, s-maxage=30"),
                ("expires", &e),
            ],
        )
        .unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(30));
        let f = check(200, &[("cache-control", "max-age=10"), ("expires", &e)]).unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(10));
    }

    #[test]
    fn expires_counts_from_date() {
        let d = http_date(NOW - 5);
        let e = http_date(NOW + 95);
        let f = check(200, &[("date", &d), ("expires", &e)]).unwrap();
        assert_eq!(f.lifetime, Duration::from_secs(100));
        assert_eq!(f.initial_age, Duration::from_secs(5));
        assert_eq!(f.ttl(), Duration::from_secs(95));
        assert_eq!(check(200, &[("expires", "0")]), Err(NotStored::NoFreshness));
    }

    #[test]
    fn heuristic_ttl_only_for_cacheable_statuses() {
        assert_eq!(check(200, &[]).unwrap().lifetime, Duration::from_secs(60));
        assert_eq!(check(404, &[]).unwrap().lifetime, Duration::from_secs(60));
        assert_eq!(check(302, &[]), Err(NotStored::Status));
        assert_eq!(check(500, &[]), Err(NotStored::Status));
        assert!(check(302, &[("cache-control", "max-age=5")]).is_ok());
        assert_eq!(
            check(206, &[("cache-control", "max-age=5")]),
            Err(NotStored::Status)
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            check(200, &[("cache-control", "no-store")]),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            check(200, &[("cache-control", "private, max-age=60")]),
            Err(NotStored::Private)
        );
        assert_eq!(
            check(200, &[("cache-control", "no-cache=\"set-cookie, x\"")]),
            Err(NotStored::NoCache)
        );
        assert_eq!(
            check(200, &[("set-cookie", "a=b")]),
            Err(NotStored::SetCookie)
        );
        assert_eq!(
            check(200, &[("vary", "accept, *")]),
            Err(NotStored::VaryStar)
        );
        assert_eq!(
            check(200, &[("cache-control", "max-age=abc")]),
            Err(NotStored::NoFreshness)
        );
    }

    #[test]
    fn age_is_the_larger_of_age_and_date() {
        let d = http_date(NOW - 3);
        let f = check(
            200,
            &[("age", "10"), ("date", &d), ("cache-control", "max-age=60")],
        )
        .unwrap();
        assert_eq!(f.initial_age, Duration::from_secs(10));
        assert_eq!(f.ttl(), Duration::from_secs(50));
        let f = check(
            200,
            &[("age", "1"), ("date", &d), ("cache-control", "max-age=60")],
        )
        .unwrap();
        assert_eq!(f.initial_age, Duration::from_secs(3));
        assert_eq!(
            check(200, &[("age", "60"), ("cache-control", "max-age=60")]),
            Err(NotStored::NoFreshness)
        );
    }

    #[test]
    fn authorized_requests_need_explicit_permission() {
        let req = RequestFacts {
            authorization: true,
            sent: at(NOW),
        };
        let go = |s: &CacheSettings, h: &[(&'static str, &str)]| {
            storable(s, req, StatusCode::OK, &headers(h), at(NOW))
        };
        assert_eq!(go(&settings(), &[]), Err(NotStored::Authorization));
        assert!(go(&settings(), &[("cache-control", "public")]).is_ok());
        assert!(go(&settings(), &[("cache-control", "s-maxage=5")]).is_ok());
        let mut allowed = settings();
        allowed.authorization = true;
        assert!(go(&allowed, &[]).is_ok());
    }

    #[test]
    fn request_directives() {
        let d = Directives::of(&headers(&[("cache-control", "max-age=0")]));
        assert!(!satisfies(&d, Duration::ZERO, Duration::from_secs(5)));
        let d = Directives::of(&headers(&[("cache-control", "max-age=10")]));
        assert!(satisfies(
            &d,
            Duration::from_secs(10),
            Duration::from_secs(5)
        ));
        assert!(!satisfies(
            &d,
            Duration::from_secs(11),
            Duration::from_secs(5)
        ));
        let d = Directives::of(&headers(&[("cache-control", "min-fresh=10")]));
        assert!(!satisfies(&d, Duration::ZERO, Duration::from_secs(5)));
        let d = Directives::of(&headers(&[("pragma", "no-cache")]));
        assert!(d.no_cache);
        let d = Directives::of(&headers(&[
            ("pragma", "no-cache"),
            ("cache-control", "max-age=5"),
        ]));
        assert!(!d.no_cache);
        assert!(satisfies(
            &Directives::default(),
            Duration::from_secs(100),
            Duration::from_secs(1)
        ));
        assert!(!satisfies(
            &Directives::default(),
            Duration::from_secs(100),
            Duration::ZERO
        ));
    }

    /// Header values come from clients and upstreams: no input panics.
    #[test]
    fn arbitrary_values_never_panic() {
        let alphabet = b"abcdefghijklmnopqrstuvwxyz-=,\" *0123456789\t";
        let mut rng = fastrand::Rng::with_seed(9111);
        for _ in 0..5000 {
            let len = rng.usize(0..40);
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            let Ok(value) = HeaderValue::from_bytes(&text) else {
                continue;
            };
            let mut h = HeaderMap::new();
            for name in ["cache-control", "vary", "expires", "date", "age", "pragma"] {
                h.insert(name, value.clone());
            }
            let _ = Directives::of(&h);
            let _ = vary_names(&h);
            let _ = storable(&settings(), facts(), StatusCode::OK, &h, at(NOW));
            let _ = crate::cache::key::normalize_query(std::str::from_utf8(&text).unwrap());
        }
    }

    #[test]
    fn vary_lists() {
        assert_eq!(
            vary_names(&headers(&[
                ("vary", "Accept-Language, accept"),
                ("vary", "accept")
            ])),
            Ok(vec![
                HeaderName::from_static("accept"),
                HeaderName::from_static("accept-language")
            ])
        );
        assert_eq!(vary_names(&headers(&[("vary", "*")])), Err(()));
        assert_eq!(vary_names(&HeaderMap::new()), Ok(vec![]));
    }
}
