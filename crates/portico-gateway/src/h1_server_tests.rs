use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

use http::Response;

use super::*;

fn added(id: &'static str) -> AddedFields {
    AddedFields {
        request_id: HeaderValue::from_static(id),
        rate_limit: None,
    }
}

/// Answers each request with its method, target, the names of its fields
/// and its body, and counts the exchanges begun and ended.
#[derive(Default)]
struct Echo {
    begun: AtomicUsize,
    ended: Arc<AtomicUsize>,
    /// Handlers dropped before they answered.
    abandoned: Arc<AtomicUsize>,
}

struct Done(Arc<AtomicUsize>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Exchanges for Echo {
    type Busy = Done;

    fn begin(&self) -> Done {
        self.begun.fetch_add(1, Ordering::SeqCst);
        Done(self.ended.clone())
    }

    async fn handle(&self, parts: Box<Parts>, body: ClientBody) -> Answer {
        if parts.uri.path() == "/never" {
            let _abandoned = Done(self.abandoned.clone());
            std::future::pending::<()>().await;
        }
        if parts.uri.path() == "/slow" {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let body = body.collect().await.expect("a body").to_bytes();
        let names: Vec<&str> = parts.headers.keys().map(HeaderName::as_str).collect();
        let text = format!(
            "{} {} [{}] {}",
            parts.method,
            parts.uri,
            names.join(","),
            String::from_utf8_lossy(&body)
        );
        let status = if parts.uri.path() == "/empty" {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::OK
        };
        let mut resp = Response::new(GatewayBody::full(Bytes::from(text)));
        *resp.status_mut() = status;
        // An answer's own request id gives way to the gateway's.
        resp.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("upstream's"));
        Answer {
            response: resp,
            added: added("id-1"),
        }
    }
}

/// Serves `client`'s other end on a task; the outcome comes back when it
/// ends.
fn start(
    echo: Arc<Echo>,
    draining: Arc<AtomicBool>,
) -> (DuplexStream, tokio::task::JoinHandle<Ended<DuplexStream>>) {
    let (client, server) = duplex(256 * 1024);
    let task = tokio::spawn(async move { serve(server, &*echo, &draining).await });
    (client, task)
}

/// Reads one answer: its head (as text) and its body, framed by
/// `Content-Length`.
async fn answer(client: &mut DuplexStream, pending: &mut Vec<u8>) -> (String, String) {
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(pending[..end + 4].to_vec()).expect("text");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse().expect("a length"));
            while pending.len() < end + 4 + length {
                read_some(client, pending).await;
            }
            let body =
                String::from_utf8(pending[end + 4..end + 4 + length].to_vec()).expect("text");
            pending.drain(..end + 4 + length);
            return (head, body);
        }
        read_some(client, pending).await;
    }
}

async fn read_some(client: &mut DuplexStream, pending: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let n = client.read(&mut chunk).await.expect("read");
    assert!(
        n > 0,
        "the connection closed; had {:?}",
        String::from_utf8_lossy(pending)
    );
    pending.extend_from_slice(&chunk[..n]);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_with_their_bodies() {
    let echo = Arc::new(Echo::default());
    let (mut client, task) = start(echo.clone(), Arc::default());
    client
        .write_all(
            b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Api-Key: k\r\n\r\n\
              POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
              DELETE /c HTTP/1.1\r\nhost: h\r\n\r\n",
        )
        .await
        .expect("write");
    let mut pending = Vec::new();
    let (head, body) = answer(&mut client, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");
    assert!(head.contains("\r\nx-request-id: id-1\r\n"), "{head}");
    assert!(!head.contains("upstream's"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert_eq!(body, "GET /a?x=1 [host,x-api-key] ");
    let (_, body) = answer(&mut client, &mut pending).await;
    assert_eq!(body, "POST /b [host,content-length] hello");
    let (_, body) = answer(&mut client, &mut pending).await;
    assert_eq!(body, "DELETE /c [host] ");
    drop(client);
    assert!(matches!(task.await.expect("served"), Ended::Closed));
    assert_eq!(echo.begun.load(Ordering::SeqCst), 3);
    assert_eq!(echo.ended.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_body_sent_in_pieces_is_read_whole_before_the_handler_runs() {
    let echo = Arc::new(Echo::default());
    let (mut client, _task) = start(echo, Arc::default());
    client
        .write_all(b"PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello")
        .await
        .expect("write");
    tokio::task::yield_now().await;
    client.write_all(b" world").await.expect("write");
    let mut pending = Vec::new();
    let (_, body) = answer(&mut client, &mut pending).await;
    assert_eq!(body, "PUT /p [host,content-length] hello world");
}

#[tokio::test]
async fn a_client_that_asks_to_close_gets_its_answer_and_the_end_of_the_connection() {
    let echo = Arc::new(Echo::default());
    let (mut client, task) = start(echo, Arc::default());
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n")
        .await
        .expect("write");
    let mut all = Vec::new();
    client.read_to_end(&mut all).await.expect("read");
    let text = String::from_utf8(all).expect("text");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(text.ends_with("GET / [host,connection] "), "{text}");
    assert!(matches!(task.await.expect("served"), Ended::Closed));
}

#[tokio::test]
async fn a_draining_server_closes_after_the_answer_in_progress() {
    let echo = Arc::new(Echo::default());
    let draining = Arc::new(AtomicBool::new(false));
    let (mut client, task) = start(echo, draining.clone());
    client
        .write_all(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut pending = Vec::new();
    let (head, _) = answer(&mut client, &mut pending).await;
    assert!(!head.contains("connection: close"), "{head}");
    // Set while the server waits for the next head (in the node, an idle
    // connection is dropped at once instead): the next answer is its last.
    draining.store(true, Ordering::SeqCst);
    client
        .write_all(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let (head, body) = answer(&mut client, &mut pending).await;
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    assert_eq!(body, "GET /2 [host] ");
    assert!(matches!(task.await.expect("served"), Ended::Closed));
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.expect("read");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn a_client_that_goes_away_mid_exchange_ends_it() {
    let echo = Arc::new(Echo::default());
    let (mut client, task) = start(echo.clone(), Arc::default());
    client
        .write_all(b"GET /never HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    while echo.begun.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    drop(client);
    assert!(matches!(task.await.expect("served"), Ended::Closed));
    assert_eq!(echo.abandoned.load(Ordering::SeqCst), 1);
    assert_eq!(echo.ended.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_pipelined_request_that_arrives_during_an_exchange_is_kept() {
    let echo = Arc::new(Echo::default());
    let (mut client, _task) = start(echo.clone(), Arc::default());
    client
        .write_all(b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab")
        .await
        .expect("write");
    while echo.begun.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    client
        .write_all(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut pending = Vec::new();
    let (_, body) = answer(&mut client, &mut pending).await;
    assert_eq!(body, "POST /slow [host,content-length] ab");
    let (_, body) = answer(&mut client, &mut pending).await;
    assert_eq!(body, "GET /next [host] ");
}

#[tokio::test]
async fn a_bodiless_status_gets_neither_body_nor_length() {
    let echo = Arc::new(Echo::default());
    let (mut client, _task) = start(echo, Arc::default());
    client
        .write_all(b"GET /empty HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut pending = Vec::new();
    let (head, body) = answer(&mut client, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 204 No Content\r\n"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert_eq!(body, "");
    // The next answer starts right after the 204's head.
    let (head, body) = answer(&mut client, &mut pending).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, "GET /x [host] ");
}

/// Requests this server leaves to hyper: the connection is handed over
/// with every byte read so far, after the answers to those before.
#[tokio::test]
async fn requests_outside_the_fast_path_hand_the_connection_over_unread() {
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.0\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 65537\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
    ];
    for &case in cases {
        let echo = Arc::new(Echo::default());
        let (mut client, task) = start(echo.clone(), Arc::default());
        let mut sent = b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
        sent.extend_from_slice(case);
        client.write_all(&sent).await.expect("write");
        let mut pending = Vec::new();
        let (_, body) = answer(&mut client, &mut pending).await;
        assert_eq!(body, "GET /first [host] ");
        let Ended::HandOff(mut rewind) = task.await.expect("served") else {
            panic!("{} was served", String::from_utf8_lossy(case));
        };
        let mut replay = vec![0u8; case.len()];
        rewind
            .read_exact(&mut replay)
            .await
            .expect("the bytes read");
        assert_eq!(replay, case);
        assert_eq!(echo.begun.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn a_head_over_the_limit_goes_to_hyper() {
    let echo = Arc::new(Echo::default());
    let (mut client, task) = start(echo, Arc::default());
    let mut sent = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    sent.resize(MAX_HEAD + 10, b'a');
    client.write_all(&sent).await.expect("write");
    let Ended::HandOff(mut rewind) = task.await.expect("served") else {
        panic!("a head over the limit was served");
    };
    let mut replay = vec![0u8; sent.len()];
    rewind
        .read_exact(&mut replay)
        .await
        .expect("the bytes read");
    assert_eq!(replay, sent);
}

#[tokio::test]
async fn rewind_reads_the_prefix_then_the_socket_and_writes_through() {
    let (mut far, near) = duplex(1024);
    let mut rewind = Rewind {
        prefix: Bytes::from_static(b"abc"),
        io: near,
    };
    far.write_all(b"def").await.expect("write");
    let mut got = [0u8; 6];
    rewind.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"abcdef");
    rewind.write_all(b"out").await.expect("write");
    let mut back = [0u8; 3];
    far.read_exact(&mut back).await.expect("read");
    assert_eq!(&back, b"out");
}

#[test]
fn the_length_of_an_answer_comes_from_its_field_or_its_body() {
    let mut out = Vec::new();
    let mut headers = HeaderMap::new();
    let body = GatewayBody::full(Bytes::from_static(b"12345"));
    let framing = encode_head(
        &mut out,
        StatusCode::OK,
        &headers,
        &added("a"),
        &body,
        false,
    );
    assert_eq!(framing, Out::Length(5));
    let head = String::from_utf8(out.clone()).expect("text");
    assert!(head.contains("\r\ncontent-length: 5\r\n"), "{head}");
    // A length the handler set is kept, once; `Transfer-Encoding` is this
    // server's to decide.
    out.clear();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
    headers.insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    headers.insert(
        header::DATE,
        HeaderValue::from_static("Mon, 07 Dec 2026 10:00:00 GMT"),
    );
    headers.insert("ratelimit", HeaderValue::from_static("upstream's"));
    let limited = AddedFields {
        request_id: HeaderValue::from_static("b"),
        rate_limit: crate::limits::fields(&one_limit()),
    };
    let framing = encode_head(&mut out, StatusCode::OK, &headers, &limited, &body, true);
    assert_eq!(framing, Out::Length(5));
    let head = String::from_utf8(out).expect("text");
    assert_eq!(head.matches("content-length").count(), 1, "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(head.matches("date: ").count(), 1, "{head}");
    assert!(
        head.contains(
            "x-request-id: b\r\nratelimit-policy: \"default\";q=10;w=60\r\nratelimit: \"default\";r=9;t=60\r\n"
        ),
        "{head}"
    );
    assert!(!head.contains("upstream's"), "{head}");
    assert!(head.ends_with("connection: close\r\n\r\n"), "{head}");
}

/// A decided batch of one limit, `default` (10 per 60 s, 9 left, 60 s to
/// its reset), for `limits::fields`.
fn one_limit() -> portico_model::limits::Limits {
    use portico_model::limits::{Algorithm, LimitPolicy, Limits, Outcome, Outcomes};
    let name: std::sync::Arc<str> = "default".into();
    let mut limits = Limits::default();
    limits.push(
        &name,
        LimitPolicy::RateLimit,
        Algorithm::Window {
            limit: 10,
            window: std::time::Duration::from_secs(60),
        },
        |k| k.push_str("k"),
    );
    limits.outcomes = Outcomes::from_elem(
        Outcome {
            allowed: true,
            remaining: 9,
            reset: std::time::Duration::from_secs(60),
        },
        1,
    );
    limits
}
