//! WebSocket upgrades on HTTP/1.1 pass through the gateway: the upstream
//! gets the upgrade, its 101 reaches the client, and frames flow both ways.
//! Authentication runs before the upgrade.

use futures_util::{SinkExt, StreamExt};
use portico_test::TestNode;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A handshake the echo server accepted.
#[derive(Debug)]
struct Handshake {
    path: String,
    /// Its header fields, one `name: value` line each, in order.
    fields: Vec<String>,
}

impl Handshake {
    /// The values of the field `name`.
    fn values(&self, name: &str) -> Vec<&str> {
        let prefix = format!("{name}: ");
        self.fields
            .iter()
            .filter_map(|f| f.strip_prefix(&prefix))
            .collect()
    }
}

/// A WebSocket echo server; reports each handshake it accepts.
// The handshake callback's signature (and its large error) is tungstenite's.
#[allow(clippy::result_large_err)]
async fn ws_echo() -> (String, mpsc::UnboundedReceiver<Handshake>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (record, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let callback = |req: &Request, resp: Response| {
                    let fields = req
                        .headers()
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
                        .collect();
                    let path = req.uri().path().to_owned();
                    let _ = record.send(Handshake { path, fields });
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close()
                        || ((msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err())
                    {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn config(upstream: &str) -> String {
    format!(
        r#"apis:
  - name: chat
    base_path: /chat
    upstream: {{ targets: ["{upstream}"] }}
    policies:
      - api_key: {{}}
products:
  - {{ name: chat, apis: [chat] }}
developers:
  - {{ email: dev@example.com, name: Dev }}
apps:
  - {{ name: chat-app, developer: dev@example.com, products: [chat], api_keys: ["key-chat-00001"] }}
"#
    )
}

fn ws_url(node: &TestNode, path: &str) -> String {
    format!("ws://{}{path}", node.proxy_addr())
}

#[tokio::test]
async fn messages_echo_both_ways_through_the_gateway() {
    let (up, mut seen) = ws_echo().await;
    let node = TestNode::new().config(&config(&up)).run().await;
    let mut req = ws_url(&node, "/chat/room/1").into_client_request().unwrap();
    req.headers_mut()
        .insert("x-api-key", "key-chat-00001".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().contains_key("x-request-id"));
    for i in 0..3 {
        ws.send(Message::text(format!("ping {i}"))).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back, Message::text(format!("ping {i}")));
    }
    let big = vec![7u8; 200_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    ws.close(None).await.unwrap();
    // The upstream got the rewritten path, the resolved identity, its own
    // name as Host, and the forwarding fields, once each.
    let shake = seen.try_recv().unwrap();
    assert_eq!(shake.path, "/room/1");
    assert_eq!(shake.values("x-portico-app"), ["chat-app"]);
    let up_authority = up.strip_prefix("http://").unwrap();
    assert_eq!(shake.values("host"), [up_authority], "{shake:?}");
    assert_eq!(shake.values("x-forwarded-for"), ["127.0.0.1"], "{shake:?}");
    assert_eq!(shake.values("x-forwarded-proto"), ["http"], "{shake:?}");
    let node_authority = node.proxy_addr().to_string();
    assert_eq!(
        shake.values("x-forwarded-host"),
        [node_authority.as_str()],
        "{shake:?}"
    );
    assert_eq!(
        shake.values("x-request-id"),
        [resp.headers()["x-request-id"].to_str().unwrap()],
        "{shake:?}"
    );
    assert_eq!(shake.values("traceparent").len(), 1, "{shake:?}");
    assert_eq!(shake.values("forwarded").len(), 1, "{shake:?}");
    assert_eq!(shake.values("upgrade"), ["websocket"], "{shake:?}");
    assert!(seen.try_recv().is_err(), "one handshake only");
}

#[tokio::test]
async fn an_unauthenticated_upgrade_is_refused_with_401() {
    let (up, mut seen) = ws_echo().await;
    let node = TestNode::new().config(&config(&up)).run().await;
    let err = tokio_tungstenite::connect_async(ws_url(&node, "/chat/room/1"))
        .await
        .unwrap_err();
    let WsError::Http(resp) = err else {
        panic!("expected an HTTP answer, got {err:?}");
    };
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert!(seen.try_recv().is_err(), "the upstream was reached");
}

#[tokio::test]
async fn an_upstream_that_declines_the_upgrade_answers_as_http() {
    // A plain HTTP upstream ignores the upgrade and answers 200: the
    // client's connection stays HTTP, and the answer is passed on.
    let up = portico_test::Upstream::echo().run().await;
    let node = TestNode::new().config(&config(&up.url())).run().await;
    let mut req = ws_url(&node, "/chat/x").into_client_request().unwrap();
    req.headers_mut()
        .insert("x-api-key", "key-chat-00001".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    let WsError::Http(resp) = err else {
        panic!("expected an HTTP answer, got {err:?}");
    };
    assert_eq!(resp.status(), 200);
    // The echo saw the upgrade request with its fields.
    let body: serde_json::Value =
        serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
    assert_eq!(body["headers"]["upgrade"][0], "websocket");
    assert_eq!(body["headers"]["connection"][0], "upgrade");
}

async fn open(node: &TestNode) -> WsStream {
    let mut req = ws_url(node, "/chat/live").into_client_request().unwrap();
    req.headers_mut()
        .insert("x-api-key", "key-chat-00001".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[tokio::test]
async fn an_upgraded_connection_keeps_its_place_in_max_connections() {
    let (up, _seen) = ws_echo().await;
    let yaml = format!("server:\n  max_connections: 1\n{}", config(&up));
    let node = TestNode::new().config(&yaml).run().await;
    let ws = open(&node).await;
    // The one slot is the WebSocket's: another connection is closed at once.
    let refused = reqwest::Client::new()
        .get(node.proxy_url("/chat/x"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a second connection was served: {refused:?}"
    );
    drop(ws);
    portico_test::assert_eventually!(
        reqwest::Client::new()
            .get(node.proxy_url("/chat/x"))
            .header("x-api-key", "key-chat-00001")
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn shutdown_closes_upgraded_connections() {
    let (up, _seen) = ws_echo().await;
    let node = TestNode::new().config(&config(&up)).run().await;
    let mut ws = open(&node).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), node.shutdown())
        .await
        .expect("shutdown waited on the WebSocket");
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .expect("the WebSocket stayed open after shutdown");
    assert!(
        !matches!(end, Some(Ok(Message::Text(_) | Message::Binary(_)))),
        "{end:?}"
    );
}
