use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::body::UpstreamBody;
use crate::pool::{H1Pool, PoolError};

// --- The head parser ---------------------------------------------------

fn head(text: &str) -> Head {
    parse_head(text.as_bytes())
        .expect("valid")
        .expect("complete")
}

fn refused(text: &str) -> &'static str {
    match parse_head(text.as_bytes()) {
        Err(H1Error::Invalid(what)) => what,
        Err(e) => panic!("{text:?}: unexpected error {e}"),
        Ok(Some(_)) => panic!("{text:?}: accepted"),
        Ok(None) => panic!("{text:?}: waiting for more"),
    }
}

#[test]
fn a_head_with_a_length_is_read_and_keeps_the_connection() {
    let text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Two: a\r\nx-two: b\r\n\r\nhello";
    let h = head(text);
    assert_eq!(h.len, text.len() - "hello".len());
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.version, Version::HTTP_11);
    assert_eq!(h.framing, In::Length(5));
    assert!(h.keep_alive);
    let two: Vec<_> = h.headers().get_all("x-two").iter().collect();
    assert_eq!(two, ["a", "b"]);
}

#[test]
fn an_answer_map_has_room_for_the_fields_the_gateway_adds() {
    // nginx's usual five fields, `Connection` among them.
    let h = head(
        "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 07 Dec 2026 07:00:00 GMT\r\n\
         Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n",
    );
    let mut headers = h.into_headers();
    let room = headers.capacity();
    let _ = crate::headers::remove_hop_by_hop(&mut headers);
    for name in ["x-request-id", "ratelimit-policy", "ratelimit"] {
        headers.insert(name, HeaderValue::from_static("x"));
    }
    assert_eq!(headers.len(), 7);
    assert_eq!(headers.capacity(), room, "the map grew");
}

fn raw_head(text: &str) -> Head {
    parse_head_with(text.as_bytes(), &mut FieldNames::default(), true)
        .expect("valid")
        .expect("complete")
}

#[test]
fn answer_fields_kept_raw_are_written_and_mapped_as_the_map_would_hold_them() {
    let text = "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 07 Dec 2026 07:00:00 GMT\r\n\
                Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\
                Keep-Alive: timeout=5\r\nX-Request-Id: upstream\r\nX-Two:a\r\nx-two:  b \r\n\
                RateLimit: \"up\";r=1\r\n\r\nhello";
    let h = raw_head(text);
    assert_eq!(h.framing, In::Length(5));
    assert!(h.keep_alive);
    let Fields::Raw(raw) = h.fields else {
        panic!("the fields went into a map");
    };
    assert_eq!(raw.length(), Some(5));
    assert!(raw.has_date());
    // As sent, names' case included; framing, connection fields and the
    // request id left out; the RateLimit fields only when not replaced.
    let mut out = Vec::new();
    raw.write_to(&mut out, false);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Server: nginx\r\nDate: Mon, 07 Dec 2026 07:00:00 GMT\r\nContent-Type: text/plain\r\n\
         X-Two: a\r\nx-two: b\r\nRateLimit: \"up\";r=1\r\n"
    );
    let mut out = Vec::new();
    raw.write_to(&mut out, true);
    assert!(!String::from_utf8(out).unwrap().contains("RateLimit"));
    // Put into a map, they are what the map path holds once the proxy has
    // removed the hop-by-hop fields (less the request id, which the
    // gateway replaces either way).
    let mut filled = HeaderMap::new();
    raw.fill(&mut filled);
    let mut mapped = head(text).into_headers();
    let _ = crate::headers::remove_hop_by_hop(&mut mapped);
    mapped.remove("x-request-id");
    assert_eq!(filled, mapped);
}

#[test]
fn answer_fields_that_need_the_map_go_into_one() {
    for field in [
        "Connection: X-Secret",
        "Proxy-Authenticate: Basic",
        "Trailer: X-Sum",
        "Upgrade: h2c",
    ] {
        let text =
            format!("HTTP/1.1 200 OK\r\n{field}\r\nX-Secret: 1\r\nContent-Length: 0\r\n\r\n");
        assert!(matches!(raw_head(&text).fields, Fields::Map(_)), "{field}");
    }
    // Chunked: the framing is left out, the fields stay raw.
    let h = raw_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n");
    assert_eq!(h.framing, In::Chunked(Chunk::Size));
    let Fields::Raw(raw) = h.fields else {
        panic!("the fields went into a map");
    };
    assert_eq!(raw.length(), None);
    let mut out = Vec::new();
    raw.write_to(&mut out, false);
    assert_eq!(out, b"X-A: 1\r\n");
}

#[test]
fn an_incomplete_head_asks_for_more() {
    for partial in [
        "",
        "HTTP/1.1 200",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
    ] {
        assert!(
            parse_head(partial.as_bytes()).unwrap().is_none(),
            "{partial:?}"
        );
    }
}

#[test]
fn framing_follows_rfc_9112() {
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.framing, In::Chunked(Chunk::Size));
    assert!(h.keep_alive);
    // `chunked` must be the last coding; anything else reads to the end.
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    assert_eq!(h.framing, In::Close);
    let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
    assert_eq!(h.framing, In::Chunked(Chunk::Size));
    // Neither: to the end of the connection.
    assert_eq!(head("HTTP/1.1 200 OK\r\n\r\n").framing, In::Close);
    // Both: by Transfer-Encoding, and the connection is not reused.
    let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.framing, In::Chunked(Chunk::Size));
    assert!(!h.keep_alive);
}

#[test]
fn content_length_values_must_agree() {
    let h = head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n");
    assert_eq!(h.framing, In::Length(7));
    assert_eq!(
        refused("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n"),
        "conflicting Content-Length values"
    );
    for bad in ["-1", "+7", "7a", "", "0x10", "99999999999999999999"] {
        let text = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
        assert_eq!(refused(&text), "invalid Content-Length", "{bad:?}");
    }
}

#[test]
fn connection_reuse_follows_version_and_connection() {
    assert!(!head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive);
    assert!(!head("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\n\r\n").keep_alive);
    assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
    let h = head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
    assert!(h.keep_alive);
    assert_eq!(h.version, Version::HTTP_10);
}

#[test]
fn connection_options_are_consumed_and_named_fields_kept() {
    let h = head(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\n\r\n",
    );
    assert!(h.headers().get("connection").is_none());
    assert!(h.headers().get("keep-alive").is_none());
    assert_eq!(h.headers()["x-a"], "1");
    // Naming another field: kept, so the proxy removes that field too.
    let h = head("HTTP/1.1 200 OK\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n");
    assert_eq!(h.headers()["connection"], "close, X-A");
    assert!(!h.keep_alive);
}

#[test]
fn malformed_heads_are_refused() {
    assert_eq!(refused("HTTP/2 200 OK\r\n\r\n"), "not HTTP/1.x");
    assert_eq!(refused("HTTP/1.1 2000 OK\r\n\r\n"), "invalid status");
    assert_eq!(refused("SSH-2.0-OpenSSH\r\n\r\n"), "not HTTP/1.x");
    assert_eq!(
        refused("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"),
        "malformed head"
    );
    let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
    assert_eq!(
        refused(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")),
        "too many header fields"
    );
}

#[test]
fn chunk_sizes_are_hex_with_optional_extensions() {
    assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
    assert_eq!(parse_chunk_size(b"1A;name=value").unwrap(), 26);
    assert_eq!(parse_chunk_size(b"0 ; x").unwrap(), 0);
    assert_eq!(parse_chunk_size(b"ffffffffffffffff").unwrap(), u64::MAX);
    for bad in [
        &b""[..],
        b"g",
        b";x",
        b"1a x",
        b"1 2",
        b"10000000000000000",
        b"-1",
    ] {
        assert!(
            parse_chunk_size(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

// --- The request head ----------------------------------------------------

fn parts(method: Method, fields: &[(&str, &str)]) -> http::request::Parts {
    let mut b = Request::builder().method(method).uri("/a/b?c=d");
    for (k, v) in fields {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn encoded(method: Method, fields: &[(&str, &str)], framing: Out) -> String {
    let host = HeaderValue::from_static("up");
    let added = Added {
        host: &host,
        forwarding: None,
    };
    let mut out = Vec::new();
    let _ = encode_head(&mut out, &parts(method, fields), added, framing);
    String::from_utf8(out).unwrap()
}

#[test]
fn the_request_head_carries_the_body_framing_it_is_sent_with() {
    assert_eq!(
        encoded(Method::GET, &[("x-a", "1")], Out::None),
        "GET /a/b?c=d HTTP/1.1\r\nhost: up\r\nx-a: 1\r\n\r\n"
    );
    // The request's own framing fields give way to the body's.
    assert_eq!(
        encoded(
            Method::POST,
            &[("content-length", "99"), ("transfer-encoding", "chunked")],
            Out::Length(5)
        ),
        "POST /a/b?c=d HTTP/1.1\r\nhost: up\r\ncontent-length: 5\r\n\r\n"
    );
    assert_eq!(
        encoded(Method::PUT, &[("content-length", "5")], Out::Chunked),
        "PUT /a/b?c=d HTTP/1.1\r\nhost: up\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    // An empty body: announced for methods that carry one, or where the
    // request announced it.
    assert_eq!(
        encoded(Method::POST, &[], Out::None),
        "POST /a/b?c=d HTTP/1.1\r\nhost: up\r\ncontent-length: 0\r\n\r\n"
    );
    assert_eq!(
        encoded(Method::DELETE, &[("content-length", "0")], Out::None),
        "DELETE /a/b?c=d HTTP/1.1\r\nhost: up\r\ncontent-length: 0\r\n\r\n"
    );
    assert_eq!(
        encoded(Method::DELETE, &[], Out::None),
        "DELETE /a/b?c=d HTTP/1.1\r\nhost: up\r\n\r\n"
    );
}

#[test]
fn a_request_that_asks_to_close_is_noticed_while_encoding() {
    let host = HeaderValue::from_static("up");
    let added = Added {
        host: &host,
        forwarding: None,
    };
    let mut out = Vec::new();
    let asks = |fields: &[(&str, &str)], out: &mut Vec<u8>| {
        encode_head(out, &parts(Method::GET, fields), added, Out::None)
    };
    assert!(asks(&[("connection", "keep-alive, Close")], &mut out));
    assert!(asks(
        &[("connection", "x"), ("connection", "close")],
        &mut out
    ));
    assert!(!asks(&[("connection", "closed")], &mut out));
    assert!(!asks(&[("x-a", "close")], &mut out));
}

#[test]
fn the_target_names_itself_and_the_forwarding_fields_replace_the_clients() {
    // The target's name comes first, whatever Host the request had.
    assert_eq!(
        encoded(
            Method::GET,
            &[("host", "client.example"), ("x-a", "1")],
            Out::None
        ),
        "GET /a/b?c=d HTTP/1.1\r\nhost: up\r\nx-a: 1\r\n\r\n"
    );
    let mut request = parts(
        Method::POST,
        &[
            ("host", "client.example"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "spoofed"),
            ("traceparent", "spoofed"),
            ("x-request-id", "spoofed"),
            ("forwarded", "for=192.0.2.1"),
            ("accept", "*/*"),
        ],
    );
    let hop = crate::headers::Hop::new("127.0.0.1:5000".parse().unwrap(), "http");
    let client_host = HeaderValue::from_static("client.example");
    let id = HeaderValue::from_static("id-1");
    let forwarding = Forwarding::new(&mut request.headers, &hop, Some(&client_host), &id);
    let target = HeaderValue::from_static("up");
    let added = Added {
        host: &target,
        forwarding: Some(&forwarding),
    };
    let mut out = Vec::new();
    assert!(!encode_head(&mut out, &request, added, Out::Length(2)));
    let head = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(
        lines[..8],
        [
            "POST /a/b?c=d HTTP/1.1",
            "host: up",
            "forwarded: for=192.0.2.1",
            "accept: */*",
            "forwarded: for=127.0.0.1;proto=http;host=\"client.example\"",
            "x-forwarded-for: 127.0.0.1",
            "x-forwarded-proto: http",
            "x-forwarded-host: client.example",
        ][..],
        "{head}"
    );
    assert!(lines[8].starts_with("traceparent: 00-"), "{head}");
    assert_eq!(
        lines[9..],
        ["x-request-id: id-1", "content-length: 2", "", ""],
        "{head}"
    );
}

#[test]
fn chunk_sizes_are_written_in_hex() {
    for (n, want) in [
        (1, "1\r\n"),
        (26, "1a\r\n"),
        (4096, "1000\r\n"),
        (usize::MAX, "ffffffffffffffff\r\n"),
    ] {
        let mut out = Vec::new();
        push_chunk_size(&mut out, n);
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}

// --- Exchanges with a scripted upstream ---------------------------------

/// An upstream that answers each request it reads (head, and a body of the
/// length it declares) with the next of `answers`, on whichever connection
/// asks; it closes a connection once the answers are used up. `accepted`
/// counts its connections.
struct Scripted {
    authority: String,
    accepted: Arc<AtomicUsize>,
    requests: Arc<tokio::sync::Mutex<Vec<String>>>,
}

async fn scripted(answers: Vec<&'static str>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let answers = Arc::new(tokio::sync::Mutex::new(answers.into_iter()));
    let (count, seen) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let (answers, seen) = (answers.clone(), seen.clone());
            tokio::spawn(async move {
                loop {
                    let Some(request) = read_request(&mut sock).await else {
                        return;
                    };
                    seen.lock().await.push(request);
                    let mut answers = answers.lock().await;
                    let Some(answer) = answers.next() else { return };
                    if sock.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    if answers.as_slice().is_empty() {
                        return;
                    }
                }
            });
        }
    });
    Scripted {
        authority,
        accepted,
        requests,
    }
}

/// One request's text: the head, and a `Content-Length` or chunked body.
async fn read_request(sock: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if sock.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf).to_lowercase();
    if let Some(n) = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        let mut body = vec![0; n];
        sock.read_exact(&mut body).await.ok()?;
        buf.extend_from_slice(&body);
    } else if text.contains("transfer-encoding: chunked") {
        while !buf.ends_with(b"\r\n0\r\n\r\n") && !buf.ends_with(b"\r\n\r\n0\r\n\r\n") {
            if sock.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            buf.push(byte[0]);
            if buf.ends_with(b"\r\n\r\n0\r\n\r\n") {
                break;
            }
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn pool_for(up: &Scripted) -> H1Pool {
    H1Pool::new(
        [up.authority.parse().unwrap()],
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
}

fn get(up: &Scripted, path: &str) -> Request<RequestBody> {
    Request::get(format!("http://{}{path}", up.authority))
        .body(RequestBody::Empty)
        .unwrap()
}

/// The answer's status, body and trailers, read to the end.
async fn read_all(
    resp: Response<UpstreamBody>,
) -> (StatusCode, Result<(Bytes, Option<HeaderMap>), String>) {
    let status = resp.status();
    let collected = resp.into_body().collect().await;
    (
        status,
        collected
            .map(|c| {
                let trailers = c.trailers().cloned();
                (c.to_bytes(), trailers)
            })
            .map_err(|e| e.to_string()),
    )
}

#[tokio::test]
async fn answers_with_a_length_reuse_one_connection() {
    let up = scripted(vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 201 Created\r\nContent-Length: 3\r\nX-N: 2\r\n\r\nbye",
    ])
    .await;
    let pool = pool_for(&up);
    let resp = pool.send(get(&up, "/one?x=1"), None).await.unwrap();
    assert_eq!(resp.headers()["content-length"], "5");
    let (status, body) = read_all(resp).await;
    assert_eq!(
        (status, body.unwrap().0),
        (StatusCode::OK, Bytes::from("hello"))
    );
    let resp = pool.send(get(&up, "/two"), None).await.unwrap();
    assert_eq!(resp.headers()["x-n"], "2");
    let (status, body) = read_all(resp).await;
    assert_eq!(
        (status, body.unwrap().0),
        (StatusCode::CREATED, Bytes::from("bye"))
    );
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    let requests = up.requests.lock().await;
    assert!(
        requests[0].starts_with("GET /one?x=1 HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    assert!(requests[0].contains(&format!("host: {}\r\n", up.authority)));
}

#[tokio::test]
async fn chunked_answers_are_decoded_with_their_trailers() {
    let up = scripted(vec![
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ])
    .await;
    let pool = pool_for(&up);
    let (status, body) = read_all(pool.send(get(&up, "/"), None).await.unwrap()).await;
    let (bytes, trailers) = body.unwrap();
    assert_eq!(
        (status, bytes),
        (StatusCode::OK, Bytes::from("hello, world"))
    );
    assert_eq!(trailers.unwrap()["x-sum"], "12");
    let (_, body) = read_all(pool.send(get(&up, "/"), None).await.unwrap()).await;
    assert_eq!(body.unwrap(), (Bytes::from("abc"), None));
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        1,
        "reused after a chunked answer"
    );
}

#[tokio::test]
async fn an_answer_without_framing_is_read_to_the_close_and_not_reused() {
    let up = scripted(vec!["HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil the end"]).await;
    let pool = pool_for(&up);
    // The upstream closes after its one answer: the body ends there.
    let resp = pool.send(get(&up, "/"), None).await.unwrap();
    let (status, body) = read_all(resp).await;
    assert_eq!(
        (status, body.unwrap().0),
        (StatusCode::OK, Bytes::from("until the end"))
    );
}

#[tokio::test]
async fn interim_answers_are_skipped_and_bodiless_answers_end_at_once() {
    let up = scripted(vec![
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
    ])
    .await;
    let pool = pool_for(&up);
    let (status, body) = read_all(pool.send(get(&up, "/"), None).await.unwrap()).await;
    assert_eq!(
        (status, body.unwrap().0),
        (StatusCode::OK, Bytes::from("ok"))
    );
    for want in [StatusCode::NO_CONTENT, StatusCode::NOT_MODIFIED] {
        let resp = pool.send(get(&up, "/"), None).await.unwrap();
        assert!(resp.body().is_end_stream());
        let (status, body) = read_all(resp).await;
        assert_eq!((status, body.unwrap().0), (want, Bytes::new()));
    }
    // A HEAD answer's length describes a body that is not sent.
    let head = Request::head(format!("http://{}/", up.authority))
        .body(RequestBody::Empty)
        .unwrap();
    let resp = pool.send(head, None).await.unwrap();
    assert_eq!(resp.headers()["content-length"], "10");
    assert!(resp.body().is_end_stream());
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        1,
        "all on one connection"
    );
}

#[tokio::test]
async fn request_bodies_go_with_their_length() {
    let up = scripted(vec!["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
    let pool = pool_for(&up);
    let req = Request::post(format!("http://{}/in", up.authority))
        .header("content-length", "999")
        .body(RequestBody::Full(Some(Bytes::from_static(b"{\"a\":1}"))))
        .unwrap();
    let (status, _) = read_all(pool.send(req, None).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let requests = up.requests.lock().await;
    assert!(
        requests[0].ends_with("content-length: 7\r\n\r\n{\"a\":1}"),
        "{}",
        requests[0]
    );
}

#[tokio::test]
async fn a_connection_the_target_closed_while_idle_is_not_used() {
    // Each connection answers once, then the upstream closes it (without
    // `Connection: close`).
    let listener_closes = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if read_request(&mut sock).await.is_some() {
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
                            .await;
                    }
                });
            }
        });
        (authority, accepted)
    };
    let (authority, accepted) = listener_closes;
    let pool = H1Pool::new(
        [authority.parse().unwrap()],
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    for _ in 0..3 {
        let req = Request::get(format!("http://{authority}/"))
            .body(RequestBody::Empty)
            .unwrap();
        let (status, body) = read_all(pool.send(req, None).await.unwrap()).await;
        assert_eq!(
            (status, body.unwrap().0),
            (StatusCode::OK, Bytes::from("x"))
        );
        // Let the runtime see the close.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_answer_cut_short_is_an_error_and_its_connection_is_dropped() {
    let up = scripted(vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
    let pool = pool_for(&up);
    let (_, body) = read_all(pool.send(get(&up, "/"), None).await.unwrap()).await;
    let err = body.unwrap_err();
    assert!(err.contains("closed before the message completed"), "{err}");

    let up = scripted(vec![
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    ])
    .await;
    let pool = pool_for(&up);
    let (_, body) = read_all(pool.send(get(&up, "/"), None).await.unwrap()).await;
    assert!(body.is_err());

    let up = scripted(vec![
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ])
    .await;
    let pool = pool_for(&up);
    let (_, body) = read_all(pool.send(get(&up, "/"), None).await.unwrap()).await;
    assert!(body.unwrap_err().contains("invalid chunk size"));
}

#[tokio::test]
async fn garbage_and_silence_are_errors() {
    let up = scripted(vec!["HELLO\r\n\r\n"]).await;
    let err = pool_for(&up).send(get(&up, "/"), None).await.unwrap_err();
    assert!(
        matches!(err, PoolError::Exchange(H1Error::Invalid(_))),
        "{err}"
    );
    // No answer at all: the upstream closes after reading the request.
    let up = scripted(vec![]).await;
    let err = pool_for(&up).send(get(&up, "/"), None).await.unwrap_err();
    assert!(matches!(err, PoolError::Exchange(H1Error::Closed)), "{err}");
    assert!(!err.is_connect());
}

#[tokio::test]
async fn bytes_after_an_answer_keep_its_connection_out_of_the_pool() {
    let up = scripted(vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naEXTRA",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb",
    ])
    .await;
    let pool = pool_for(&up);
    let (_, body) = read_all(pool.send(get(&up, "/"), None).await.unwrap()).await;
    assert_eq!(body.unwrap().0, Bytes::from("a"));
    let (_, body) = read_all(pool.send(get(&up, "/"), None).await.unwrap()).await;
    assert_eq!(body.unwrap().0, Bytes::from("b"));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_early_answer_stops_the_upload() {
    // The upstream reads the head only, answers 413 and closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 1024];
        let _ = sock.read(&mut buf).await;
        let _ = sock
            .write_all(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!")
            .await;
        // Keep the socket open a while without reading, as a busy server would.
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let pool = H1Pool::new(
        [authority.parse().unwrap()],
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    let big = Bytes::from(vec![b'x'; 32 * 1024 * 1024]);
    let req = Request::post(format!("http://{authority}/upload"))
        .body(RequestBody::Full(Some(big)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), pool.send(req, None))
        .await
        .expect("answered before the upload ended")
        .unwrap();
    let (status, body) = read_all(resp).await;
    assert_eq!(
        (status, body.unwrap().0),
        (StatusCode::PAYLOAD_TOO_LARGE, Bytes::from("big!"))
    );
}

// --- Arbitrary answers ------------------------------------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever an upstream sends, reading its head and chunk-size lines
        /// answers or refuses; it never panics.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_head(&bytes);
            let _ = parse_chunk_size(&bytes);
            let _ = find_crlf(&bytes);
            let mut text = b"HTTP/1.1 200 OK\r\n".to_vec();
            text.extend_from_slice(&bytes);
            let _ = parse_head(&text);
        }

        /// A head made of valid fields reads back field for field, with
        /// its length, and the framing its `Content-Length` gives.
        #[test]
        fn valid_heads_read_back(
            status in 200u16..600,
            fields in proptest::collection::vec(("x-[a-z0-9-]{1,12}", "[ -~]{0,40}"), 0..20),
            length in proptest::option::of(0u64..1 << 40),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut text = format!("HTTP/1.1 {status} Whatever\r\n");
            for (name, value) in &fields {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
            if let Some(n) = length {
                text.push_str(&format!("Content-Length: {n}\r\n"));
            }
            text.push_str("\r\n");
            let mut bytes = text.clone().into_bytes();
            bytes.extend_from_slice(&tail);
            let head = parse_head(&bytes).unwrap().unwrap();
            prop_assert_eq!(head.len, text.len());
            prop_assert_eq!(head.status.as_u16(), status);
            prop_assert_eq!(head.framing, length.map_or(In::Close, In::Length));
            for (name, value) in &fields {
                // Field values lose their surrounding whitespace.
                let all: Vec<&[u8]> = head.headers().get_all(name.as_str()).iter().map(|v| v.as_bytes()).collect();
                prop_assert!(all.contains(&value.trim_matches(|c| c == ' ' || c == '\t').as_bytes()));
            }
            // Cut anywhere before its end, the head asks for more.
            let cut = text.len() / 2;
            prop_assert!(parse_head(&bytes[..cut]).unwrap().is_none());
        }

        /// Read raw and put into a map, valid fields are what the map
        /// path gives once the hop-by-hop fields are gone.
        #[test]
        fn raw_fields_map_as_the_map_path(
            fields in proptest::collection::vec(
                ("(x-[a-z0-9-]{1,12}|content-type|cache-control|date|connection|keep-alive)", "[ -~]{0,40}"),
                0..20,
            ),
        ) {
            let mut text = String::from("HTTP/1.1 200 OK\r\n");
            for (name, value) in &fields {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
            text.push_str("\r\n");
            let Ok(Some(map_head)) = parse_head(text.as_bytes()) else {
                return Ok(());
            };
            let mut mapped = map_head.into_headers();
            let _ = crate::headers::remove_hop_by_hop(&mut mapped);
            let raw_head = parse_head_with(text.as_bytes(), &mut FieldNames::default(), true)
                .unwrap()
                .unwrap();
            match raw_head.fields {
                Fields::Raw(raw) => {
                    let mut filled = HeaderMap::new();
                    raw.fill(&mut filled);
                    prop_assert_eq!(filled, mapped);
                }
                Fields::Map(map) => {
                    // Only a `Connection` naming other fields needs the map.
                    prop_assert!(map.get_all("connection").iter().any(|v| !only_connection_options(v.as_bytes())));
                }
            }
        }

        /// Chunk sizes read back from their hex form, extensions or not.
        #[test]
        fn chunk_sizes_read_back(n in any::<u64>(), ext in proptest::option::of("[a-z]{1,8}(=[a-z0-9]{1,8})?")) {
            let mut line = format!("{n:x}");
            if let Some(ext) = ext {
                line.push_str(&format!(";{ext}"));
            }
            prop_assert_eq!(parse_chunk_size(line.as_bytes()).unwrap(), n);
        }
    }
}

#[test]
fn field_names_are_remembered_by_position_and_checked_by_their_bytes() {
    let mut names = FieldNames::default();
    let first = ["Host", "X-Api-Key", "accept"];
    for (at, raw) in first.iter().enumerate() {
        let name = names.name(at, raw.as_bytes()).unwrap();
        assert_eq!(name.as_str(), raw.to_ascii_lowercase());
    }
    // The same names again, then others at the same positions: each is the
    // name sent, never the one remembered.
    for round in [
        ["Host", "X-Api-Key", "accept"],
        ["host", "X-Other", "Accept"],
    ] {
        for (at, raw) in round.iter().enumerate() {
            assert_eq!(
                names.name(at, raw.as_bytes()).unwrap().as_str(),
                raw.to_ascii_lowercase()
            );
        }
    }
    // A name seen at another position, and a position never seen.
    assert_eq!(names.name(0, b"X-Other").unwrap().as_str(), "x-other");
    assert_eq!(names.name(7, b"Via").unwrap().as_str(), "via");
    assert!(names.name(1, b"Bad Name").is_err());
    assert_eq!(names.name(1, b"X-Other").unwrap().as_str(), "x-other");
}

#[test]
fn content_lengths_are_digits_only() {
    assert_eq!(content_length(b"0"), Some(0));
    assert_eq!(content_length(b"1024"), Some(1024));
    for bad in [
        &b""[..],
        b"-1",
        b"+1",
        b"1 2",
        b"0x10",
        b"99999999999999999999",
    ] {
        assert_eq!(
            content_length(bad),
            None,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}
