//! HTTP/1.1 protocol upgrades (WebSocket) passed through to the upstream.
//!
//! `Connection` and `Upgrade` are hop-by-hop fields, so the header rules
//! remove them like any other. For a request that asks to upgrade, this
//! module keeps what is needed to ask the upstream the same thing, and when
//! the upstream answers `101 Switching Protocols`, it joins the client's and
//! the upstream's upgraded connections byte for byte. Policies have run by
//! then: an upgrade that authentication refuses never reaches the upstream.
//!
//! HTTP/1.1 only, on both sides. An HTTP/2 client cannot ask (RFC 8441's
//! extended CONNECT is not supported), and an API whose `protocol` is
//! `http2` or `h2c` forwards the request without the upgrade fields.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode, Version, request};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::body::UpstreamBody;
use crate::server::ConnectionScope;
use crate::shutdown::Stage;

/// A client's request to switch protocols, taken before hop-by-hop removal.
pub(crate) struct Upgrade {
    client: OnUpgrade,
    /// The `Upgrade` field the client sent (`websocket`).
    protocol: HeaderValue,
}

/// The upgrade an HTTP/1.1 request asks for (`Connection: upgrade` and an
/// `Upgrade` field), taken from the request. Requests without an `Upgrade`
/// field cost one header lookup.
#[inline]
pub(crate) fn take(parts: &mut request::Parts) -> Option<Upgrade> {
    let protocol = asks_to_upgrade(parts)?.clone();
    // hyper's server puts it on every HTTP/1.1 request.
    let client = parts.extensions.remove::<OnUpgrade>()?;
    Some(Upgrade { client, protocol })
}

/// The `Upgrade` field of a request that asks to switch protocols.
fn asks_to_upgrade(parts: &request::Parts) -> Option<&HeaderValue> {
    let protocol = parts.headers.get(header::UPGRADE)?;
    (parts.version == Version::HTTP_11 && connection_has_upgrade(&parts.headers))
        .then_some(protocol)
}

pub(crate) fn connection_has_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Sets `Connection: upgrade` and `Upgrade: protocol`.
fn set_upgrade_fields(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// The upstream's agreement to switch, between hop-by-hop removal on the
/// response and the answer to the client.
pub(crate) struct Switched {
    protocol: HeaderValue,
}

impl Switched {
    /// Puts back the fields the client needs to see the switch.
    pub fn restore(self, headers: &mut HeaderMap) {
        set_upgrade_fields(headers, self.protocol);
    }
}

impl Upgrade {
    /// Asks the upstream for the same upgrade (after hop-by-hop removal).
    pub fn restore(&self, headers: &mut HeaderMap) {
        set_upgrade_fields(headers, self.protocol.clone());
    }

    /// If the upstream switched protocols, starts the task that joins the
    /// two connections once the client has the `101`, and returns what the
    /// response needs back after hop-by-hop removal. Any other answer is
    /// passed on as it is, and the client's connection stays HTTP.
    ///
    /// The joined connection still counts against `server.max_connections`
    /// (it holds the client connection's slot) and is closed when a
    /// shutdown's drain ends.
    pub fn switch(
        self,
        resp: &mut Response<UpstreamBody>,
        scope: &ConnectionScope,
    ) -> Option<Switched> {
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return None;
        }
        let protocol = resp
            .headers()
            .get(header::UPGRADE)
            .cloned()
            .unwrap_or(self.protocol);
        // Upgrade requests are sent by hyper's client (`pool.rs`), which
        // leaves the socket's hand-over in the answer's extensions.
        let upstream = resp.extensions_mut().remove::<OnUpgrade>()?;
        let client = self.client;
        let slot = scope.slot.clone();
        let shutdown = scope.shutdown.listener();
        tokio::spawn(async move {
            let _slot = slot;
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(both) => both,
                Err(e) => {
                    tracing::debug!(error = %e, "Protocol upgrade did not complete.");
                    return;
                }
            };
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            tokio::select! {
                joined = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match joined {
                    Ok((up, down)) => {
                        tracing::debug!(up, down, "Upgraded connection closed.");
                    }
                    Err(e) => tracing::debug!(error = %e, "Upgraded connection ended with an error."),
                },
                // Shutdown: the drain is over, so both sides are dropped.
                _ = shutdown.reached(Stage::Closing) => {
                    tracing::debug!("Upgraded connection closed by shutdown.");
                }
            }
        });
        Some(Switched { protocol })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asks(version: Version, fields: &[(&str, &str)]) -> bool {
        let mut b = http::Request::builder().version(version).uri("/");
        for (k, v) in fields {
            b = b.header(*k, *v);
        }
        let (parts, ()) = b.body(()).unwrap().into_parts();
        asks_to_upgrade(&parts).is_some()
    }

    #[test]
    fn only_http11_with_connection_upgrade_is_an_upgrade() {
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ];
        assert!(asks(Version::HTTP_11, &ws));
        assert!(!asks(Version::HTTP_2, &ws));
        assert!(!asks(Version::HTTP_10, &ws));
        assert!(!asks(Version::HTTP_11, &[("upgrade", "websocket")]));
        assert!(!asks(Version::HTTP_11, &[("connection", "upgrade")]));
        assert!(!asks(
            Version::HTTP_11,
            &[("connection", "upgraded"), ("upgrade", "websocket")]
        ));
    }
}
