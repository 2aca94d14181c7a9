//! The mock upstream's answer: a choice among the responses prepared with
//! the snapshot (`portico_model::mock`), by `Prefer` and `Accept`. Nothing
//! is parsed or encoded here beyond those two fields.

use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Response, request};
use portico_model::ErrorCode;
use portico_model::mock::{MockMiss, MockOperation, Preferences};

static PREFER: HeaderName = HeaderName::from_static("prefer");
static PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// Why the mock gives no answer, as the gateway reports it.
pub(crate) struct Miss {
    pub code: ErrorCode,
    pub detail: String,
}

/// The answer of `op` to the request `parts`.
pub(crate) fn answer(
    op: &MockOperation,
    parts: &request::Parts,
) -> Result<Response<bytes::Bytes>, Miss> {
    let prefs = Preferences::parse(parts.headers.get_all(&PREFER).iter());
    // Several `Accept` fields are one list (RFC 9110 §5.3); one is usual.
    let mut fields = parts.headers.get_all(ACCEPT).iter();
    let joined;
    let accept = match (fields.next(), fields.next()) {
        (None, _) => None,
        (Some(one), None) => one.to_str().ok(),
        (Some(_), Some(_)) => {
            joined = parts
                .headers
                .get_all(ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            Some(joined.as_str())
        }
    };
    match op.select(&prefs, accept) {
        Ok(a) => {
            let mut resp = Response::new(a.body);
            *resp.status_mut() = a.status;
            if let Some(ct) = a.content_type {
                resp.headers_mut().insert(CONTENT_TYPE, ct.clone());
            }
            if let Some(applied) = applied(&prefs, a.generated) {
                resp.headers_mut().insert(&PREFERENCE_APPLIED, applied);
            }
            Ok(resp)
        }
        Err(miss) => Err(match miss {
            MockMiss::NoResponse { code, declared } => Miss {
                code: ErrorCode::MockNoResponse,
                detail: format!(
                    "The operation declares no response for status {code} (Prefer: code={code}); it declares: {declared}."
                ),
            },
            MockMiss::NoExample { name, available } => Miss {
                code: ErrorCode::MockNoResponse,
                detail: format!(
                    "The response has no example named `{name}` (Prefer: example={name}); its examples: {available}."
                ),
            },
            MockMiss::NotAcceptable { available } => Miss {
                code: ErrorCode::NotAcceptable,
                detail: format!(
                    "No media type of the response is acceptable; it is available as: {available}."
                ),
            },
            MockMiss::Empty => Miss {
                code: ErrorCode::MockNoResponse,
                detail: "The operation declares no response to answer with.".to_owned(),
            },
        }),
    }
}

/// `Preference-Applied` (RFC 7240 §3): the preferences the answer honours.
fn applied(prefs: &Preferences, generated: bool) -> Option<HeaderValue> {
    let mut parts = Vec::new();
    if let Some(code) = prefs.code {
        parts.push(format!("code={code}"));
    }
    if let Some(name) = &prefs.example {
        parts.push(format!("example=\"{}\"", name.replace(['"', '\\'], "")));
    }
    if generated {
        parts.push("dynamic=true".to_owned());
    }
    if parts.is_empty() {
        return None;
    }
    HeaderValue::try_from(parts.join(", ")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_preferences_are_listed() {
        let prefs = Preferences {
            code: Some(404),
            example: Some("not found".into()),
            dynamic: true,
        };
        assert_eq!(
            applied(&prefs, false).unwrap(),
            "code=404, example=\"not found\""
        );
        assert_eq!(applied(&Preferences::default(), false), None);
        let dynamic = Preferences {
            dynamic: true,
            ..Preferences::default()
        };
        assert_eq!(applied(&dynamic, true).unwrap(), "dynamic=true");
        assert_eq!(
            applied(&dynamic, false),
            None,
            "no schema: examples answered"
        );
    }
}
