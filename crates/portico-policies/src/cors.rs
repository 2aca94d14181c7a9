//! `cors`: answers preflights at the edge and adds the CORS response headers
//! (the Fetch standard's CORS protocol) for allowed origins.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode, request, response};
use portico_model::ErrorCode;
use portico_model::policy::{Flow, Phase, Policy, Rejection, RequestContext};
use portico_model::units::parse_duration;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Allowed origins (`https://app.example.com`), or `["*"]` for any.
    origins: Vec<String>,
    /// Allowed methods; `GET`, `HEAD` and `POST` when not given.
    methods: Option<Vec<String>>,
    /// Request headers a cross-origin request may send.
    #[serde(default)]
    headers: Vec<String>,
    /// Response headers a browser may expose to the calling script.
    #[serde(default)]
    expose_headers: Vec<String>,
    /// Whether credentials (cookies, Authorization) may be sent.
    #[serde(default)]
    credentials: bool,
    /// How long a browser may cache a preflight answer.
    max_age: Option<String>,
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {
        origins,
        methods,
        headers,
        expose_headers,
        credentials,
        max_age,
    } = Settings::deserialize(d)?;
    if origins.is_empty() {
        return Err(D::Error::custom("cors needs at least one origin, or `*`"));
    }
    let any_origin = origins.iter().any(|o| o == "*");
    if any_origin && credentials {
        // Reflecting every origin with credentials would let any site read
        // a user's data; the Fetch standard forbids `*` with credentials.
        return Err(D::Error::custom(
            "`origins: [\"*\"]` cannot be combined with `credentials: true`; list the origins",
        ));
    }
    let origins = origins
        .into_iter()
        .filter(|o| o != "*")
        .map(|o| {
            let o = o.trim_end_matches('/').to_ascii_lowercase();
            if o.starts_with("http://") || o.starts_with("https://") {
                Ok(o)
            } else {
                Err(D::Error::custom(format!(
                    "invalid origin `{o}`: expected scheme://host[:port] or `*`"
                )))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let methods = methods
        .unwrap_or_else(|| vec!["GET".into(), "HEAD".into(), "POST".into()])
        .into_iter()
        .map(|m| {
            Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| D::Error::custom(format!("invalid method `{m}`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let names = |list: Vec<String>| {
        list.into_iter()
            .map(|h| {
                HeaderName::try_from(h.to_ascii_lowercase())
                    .map_err(|_| D::Error::custom(format!("invalid header name `{h}`")))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let headers = names(headers)?;
    let expose = names(expose_headers)?;
    let max_age = max_age
        .map(|m| parse_duration(&m))
        .transpose()
        .map_err(D::Error::custom)?;
    let join =
        |items: Vec<&str>| HeaderValue::from_str(&items.join(", ")).map_err(D::Error::custom);
    Ok(Arc::new(Cors {
        any_origin,
        origins,
        allow_methods: join(methods.iter().map(Method::as_str).collect())?,
        allow_headers: (!headers.is_empty())
            .then(|| join(headers.iter().map(HeaderName::as_str).collect()))
            .transpose()?,
        expose_headers: (!expose.is_empty())
            .then(|| join(expose.iter().map(HeaderName::as_str).collect()))
            .transpose()?,
        methods,
        headers,
        credentials,
        max_age: max_age.map(|d: Duration| HeaderValue::from(d.as_secs())),
    }))
}

#[derive(Debug)]
struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    methods: Vec<Method>,
    headers: Vec<HeaderName>,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

/// The allowed origin of this request, kept for the response.
#[derive(Clone)]
struct AllowedOrigin(HeaderValue);

static VARY_PREFLIGHT: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
);

impl Cors {
    fn origin_allowed(&self, origin: &HeaderValue) -> bool {
        self.any_origin
            || origin.to_str().is_ok_and(|o| {
                self.origins
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(o))
            })
    }

    /// `Access-Control-Allow-Origin`: `*` for any origin without
    /// credentials, otherwise the request's own origin.
    fn allow_origin(&self, origin: &HeaderValue) -> HeaderValue {
        if self.any_origin && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    fn preflight(&self, req: &request::Parts, origin: &HeaderValue, method: &HeaderValue) -> Flow {
        let deny = |why: String| Flow::Reject(Rejection::new(ErrorCode::CorsDenied, why));
        if !self.origin_allowed(origin) {
            return deny(format!(
                "Origin {} is not allowed.",
                origin.to_str().unwrap_or("(invalid)")
            ));
        }
        let method_ok =
            Method::from_bytes(method.as_bytes()).is_ok_and(|m| self.methods.contains(&m));
        if !method_ok {
            return deny(format!(
                "Method {} is not allowed.",
                method.to_str().unwrap_or("(invalid)")
            ));
        }
        let requested = req
            .headers
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty());
        for h in requested {
            if !self
                .headers
                .iter()
                .any(|allowed| allowed.as_str().eq_ignore_ascii_case(h))
            {
                return deny(format!("Request header {h} is not allowed."));
            }
        }
        let mut resp = http::Response::new(Bytes::new());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin(origin),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        );
        if let Some(v) = &self.allow_headers {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.max_age {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
        }
        h.insert(header::VARY, VARY_PREFLIGHT.clone());
        Flow::Respond(resp)
    }
}

impl Policy for Cors {
    fn name(&self) -> &'static str {
        "cors"
    }

    fn phase(&self) -> Phase {
        Phase::Access
    }

    fn on_request(&self, req: &mut request::Parts, cx: &mut RequestContext<'_>) -> Flow {
        let Some(origin) = req.headers.get(header::ORIGIN).cloned() else {
            return Flow::Continue;
        };
        if req.method == Method::OPTIONS
            && let Some(method) = req
                .headers
                .get(header::ACCESS_CONTROL_REQUEST_METHOD)
                .cloned()
        {
            return self.preflight(req, &origin, &method);
        }
        if self.origin_allowed(&origin) {
            cx.extensions.insert(AllowedOrigin(origin));
        }
        Flow::Continue
    }

    fn on_response(&self, resp: &mut response::Parts, cx: &RequestContext<'_>) {
        // The answer depends on Origin whether or not it was allowed.
        resp.headers
            .append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(AllowedOrigin(origin)) = cx.extensions.get::<AllowedOrigin>() else {
            return;
        };
        let h = &mut resp.headers;
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin(origin),
        );
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.expose_headers {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
    }
}
