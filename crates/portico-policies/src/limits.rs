//! What the traffic policies share: the `by` setting (whose counter a
//! request counts against), limit names, and the calendar.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, request};
use portico_model::limits::{Algorithm, KeyWriter, LimitPolicy};
use portico_model::policy::{Flow, Identity, Phase, Policy, RequestContext};

use crate::net::TrustedProxies;

/// Header values longer than this count by their first bytes only, which
/// bounds the size of a key a client can make.
const MAX_HEADER_KEY: usize = 256;

/// Whose counter a request counts against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum By {
    /// One counter for the whole API.
    Api,
    App,
    Developer,
    /// The credential that authenticated the request (an API key's id).
    Credential,
    /// The client's address: the TCP peer, or what the trusted proxies
    /// report in `X-Forwarded-For`.
    Ip(TrustedProxies),
    /// The value of a request header; requests without it share a counter.
    Header(HeaderName),
}

impl By {
    pub(crate) fn parse(s: &str) -> Result<By, String> {
        Ok(match s {
            "api" => By::Api,
            "app" => By::App,
            "developer" => By::Developer,
            "credential" => By::Credential,
            "ip" => By::Ip(TrustedProxies::default()),
            _ => match s.strip_prefix("header:") {
                Some(h) => By::Header(
                    HeaderName::try_from(h.trim().to_ascii_lowercase())
                        .map_err(|_| format!("invalid header name `{h}` in `by`"))?,
                ),
                None => {
                    return Err(format!(
                        "invalid `by: {s}`: expected api, app, developer, credential, ip or header:NAME"
                    ));
                }
            },
        })
    }

    /// The name shown when the policy has none of its own.
    pub(crate) fn label(&self) -> String {
        match self {
            By::Api => "api".into(),
            By::App => "app".into(),
            By::Developer => "developer".into(),
            By::Credential => "credential".into(),
            By::Ip(_) => "ip".into(),
            By::Header(h) => format!("header:{h}"),
        }
    }

    /// `by` with the policy's `trusted_proxies`, which only `by: ip` reads.
    pub(crate) fn trusting(self, list: &[String]) -> Result<By, String> {
        if list.is_empty() {
            return Ok(self);
        }
        match self {
            By::Ip(_) => Ok(By::Ip(TrustedProxies::parse(list)?)),
            other => Err(format!(
                "`trusted_proxies` applies to `by: ip` only, not `by: {}`",
                other.label()
            )),
        }
    }

    pub(crate) fn needs_identity(&self) -> bool {
        matches!(self, By::App | By::Developer | By::Credential)
    }

    /// Appends this request's discriminator to `key`, without allocating.
    pub(crate) fn write(
        &self,
        key: &mut KeyWriter<'_>,
        req: &request::Parts,
        identity: Option<&Identity>,
        client: SocketAddr,
    ) {
        match (self, identity) {
            (By::Api, _) => {}
            (By::App, Some(id)) => key.push_str(&id.app.name),
            (By::Developer, Some(id)) => key.push_str(&id.app.developer),
            (By::Credential, Some(id)) => key.push_str(&id.credential),
            // The compiler refuses identity keys on APIs without
            // authentication, so this is the client address by design only
            // if that check is bypassed.
            (By::Ip(trusted), _) => {
                // A trusted proxy that sent garbage counts as one client.
                let peer = client.ip();
                let _ = write!(key, "{}", trusted.client(req, peer).unwrap_or(peer));
            }
            (By::App | By::Developer | By::Credential, _) => {
                let _ = write!(key, "{}", client.ip());
            }
            (By::Header(h), _) => {
                if let Some(v) = req.headers.get(h) {
                    let v = v.as_bytes();
                    let v = &v[..v.len().min(MAX_HEADER_KEY)];
                    key.push('=');
                    key.push_str(&String::from_utf8_lossy(v));
                }
            }
        }
    }
}

/// A limit's identifier in the RateLimit fields: an sf-string, so visible
/// ASCII without `"` or `\`.
pub(crate) fn name<E: serde::de::Error>(
    name: Option<String>,
    default: String,
) -> Result<Arc<str>, E> {
    let name = name.unwrap_or(default);
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(E::custom(format!(
            "invalid limit name `{name}`: 1 to 64 visible ASCII characters without quotes or backslashes"
        )));
    }
    Ok(name.into())
}

/// A calendar period of the `quota` policy, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Period {
    Minute,
    Hour,
    Day,
    Month,
}

impl Period {
    pub(crate) fn parse(s: &str) -> Result<Period, String> {
        Ok(match s {
            "minute" => Period::Minute,
            "hour" => Period::Hour,
            "day" => Period::Day,
            "month" => Period::Month,
            _ => {
                return Err(format!(
                    "invalid period `{s}`: expected minute, hour, day or month"
                ));
            }
        })
    }

    /// The nominal length (a month counts as 30 days), for `w`.
    pub(crate) fn nominal(self) -> Duration {
        Duration::from_secs(match self {
            Period::Minute => 60,
            Period::Hour => 3600,
            Period::Day => 86_400,
            Period::Month => 30 * 86_400,
        })
    }

    /// The period that holds `now_ms` (Unix milliseconds): its start in
    /// Unix seconds and the time left until it ends.
    pub(crate) fn at(self, now_ms: u64) -> (u64, Duration) {
        let now_s = now_ms / 1000;
        let (start, end) = match self {
            Period::Month => {
                let (y, m, _) = civil(now_s / 86_400);
                let start = days_from_civil(y, m, 1) * 86_400;
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (start, days_from_civil(ny, nm, 1) * 86_400)
            }
            other => {
                let len = other.nominal().as_secs();
                let start = now_s - now_s % len;
                (start, start + len)
            }
        };
        (
            start,
            Duration::from_millis((end * 1000).saturating_sub(now_ms)),
        )
    }
}

/// Unix milliseconds now.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Year, month, day of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a date (the inverse of [`civil`]).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_months_in_utc() {
        // 2024-02-29T12:00:00Z: February of a leap year.
        let now = 1_709_208_000_000;
        let (start, left) = Period::Month.at(now);
        assert_eq!(start, 1_706_745_600); // 2024-02-01
        assert_eq!(left, Duration::from_secs(12 * 3600)); // until 2024-03-01
        // 2023-12-31T23:59:59Z rolls into January.
        let (start, left) = Period::Month.at(1_704_067_199_000);
        assert_eq!(start, 1_701_388_800); // 2023-12-01
        assert_eq!(left, Duration::from_secs(1));
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn fixed_periods() {
        let (start, left) = Period::Hour.at(7_200_500);
        assert_eq!(start, 7200);
        assert_eq!(left, Duration::from_millis(3_599_500));
        assert_eq!(Period::Day.at(86_399_999).1, Duration::from_millis(1));
    }

    #[test]
    fn by_parsing() {
        assert_eq!(By::parse("app"), Ok(By::App));
        assert_eq!(
            By::parse("header:X-Tenant"),
            Ok(By::Header(HeaderName::from_static("x-tenant")))
        );
        assert!(By::parse("cookie:x").is_err());
        assert!(By::parse("header:bad header").is_err());
    }
}

/// A traffic policy that counts each request against one counter chosen by
/// `by`. `rate_limit`, `spike_arrest` and `concurrency` are this, with
/// their own algorithm and key prefix; each module only reads its settings.
#[derive(Debug)]
pub(crate) struct Counted {
    /// The policy's name in the configuration.
    pub policy: &'static str,
    pub kind: LimitPolicy,
    /// Starts every key, so the policies' counters never meet.
    pub prefix: &'static str,
    /// The identifier in the RateLimit fields.
    pub name: Arc<str>,
    pub by: By,
    pub algorithm: Algorithm,
    /// The part of the key fixed at build time.
    pub tag: String,
}

impl Policy for Counted {
    fn handles_responses(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        self.policy
    }

    fn phase(&self) -> Phase {
        Phase::Traffic
    }

    fn needs_identity(&self) -> bool {
        self.by.needs_identity()
    }

    fn limit_name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn on_request(&self, req: &mut request::Parts, cx: &mut RequestContext<'_>) -> Flow {
        // The batch is written in place (it is large, as it keeps its
        // checks inline); the key reads the context's other fields.
        cx.limits.push(&self.name, self.kind, self.algorithm, |k| {
            k.push_str(self.prefix);
            k.push_str(&cx.api.name);
            k.push(':');
            k.push_str(&self.tag);
            self.by.write(k, req, cx.identity.as_ref(), cx.client);
        });
        Flow::Continue
    }
}
