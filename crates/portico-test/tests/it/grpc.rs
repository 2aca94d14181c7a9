//! gRPC through the gateway: a tonic client speaking h2c to Portico, which
//! speaks h2c to a tonic-served upstream. Messages are written by hand with
//! prost's derive, so no `protoc` is needed.

use std::future::{Ready, ready};

use bytes::{BufMut, Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portico_test::{TestBody, TestNode, Upstream};
use prost::Message as _;
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

/// `SayHello`: greets, and says what the upstream saw (HTTP version and
/// `te`); an empty name is refused with `INVALID_ARGUMENT`.
struct SayHello {
    seen: String,
}

impl tonic::server::UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = Ready<Result<tonic::Response<HelloReply>, Status>>;

    fn call(&mut self, req: tonic::Request<HelloRequest>) -> Self::Future {
        let name = req.into_inner().name;
        ready(if name.is_empty() {
            Err(Status::invalid_argument("name is required"))
        } else {
            Ok(tonic::Response::new(HelloReply {
                message: format!("hello {name} ({})", self.seen),
            }))
        })
    }
}

/// The upstream: `SayHello` through tonic's server, and `Flaky`, which
/// answers one message and then a failure status in the trailers.
async fn greeter(req: Request<Incoming>) -> Response<TestBody> {
    let te = req
        .headers()
        .get("te")
        .map_or("none", |v| v.to_str().unwrap_or("?"))
        .to_owned();
    let seen = format!("{:?}, te: {te}", req.version());
    match req.uri().path() {
        "/test.Greeter/SayHello" => {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default());
            let (head, body) = grpc.unary(SayHello { seen }, req).await.into_parts();
            // tonic's body is not `Sync`; the reply is small, so collect it
            // and send it on as the same frames.
            let collected = body.collect().await.expect("a complete reply");
            let trailers = collected.trailers().cloned();
            let mut frames = vec![Frame::data(collected.to_bytes())];
            frames.extend(trailers.map(Frame::trailers));
            Response::from_parts(head, frames_body(frames))
        }
        "/test.Greeter/Flaky" => {
            let reply = HelloReply {
                message: "partial".into(),
            };
            let mut framed = BytesMut::new();
            framed.put_u8(0);
            framed.put_u32(reply.encoded_len() as u32);
            reply.encode(&mut framed).unwrap();
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("9"));
            trailers.insert("grpc-message", HeaderValue::from_static("not%20ready"));
            let frames = vec![Frame::data(framed.freeze()), Frame::trailers(trailers)];
            Response::builder()
                .header("content-type", "application/grpc")
                .body(frames_body(frames))
                .unwrap()
        }
        _ => portico_test::text_response(404, "no such method"),
    }
}

/// A body of these frames, in order.
fn frames_body(frames: Vec<Frame<Bytes>>) -> TestBody {
    let frames = frames
        .into_iter()
        .map(Ok::<_, Box<dyn std::error::Error + Send + Sync>>);
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

/// A gRPC client for `origin` over h2c.
fn grpc_client(origin: &str) -> tonic::client::Grpc<Client<HttpConnector, tonic::body::Body>> {
    let http = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());
    tonic::client::Grpc::with_origin(http, origin.parse::<Uri>().unwrap())
}

async fn call(
    grpc: &mut tonic::client::Grpc<Client<HttpConnector, tonic::body::Body>>,
    method: &'static str,
    name: &str,
) -> Result<HelloReply, Status> {
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(HelloRequest { name: name.into() }),
        PathAndQuery::from_static(method),
        ProstCodec::<HelloRequest, HelloReply>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

async fn node(up: &portico_test::UpstreamHandle) -> TestNode {
    TestNode::new()
        .config(&format!(
            "apis:\n  - name: greeter\n    base_path: /grpc\n    upstream:\n      targets: [\"{}\"]\n      protocol: h2c\n",
            up.url()
        ))
        .run()
        .await
}

#[tokio::test]
async fn a_unary_call_succeeds_through_the_gateway() {
    let up = Upstream::from_fn(greeter).run().await;
    let node = node(&up).await;
    let mut grpc = grpc_client(&node.proxy_url("/grpc"));
    let reply = call(&mut grpc, "/test.Greeter/SayHello", "portico")
        .await
        .expect("the call succeeds");
    // The upstream was spoken to in HTTP/2, with `te: trailers` kept.
    assert_eq!(reply.message, "hello portico (HTTP/2.0, te: trailers)");
}

#[tokio::test]
async fn error_statuses_arrive_intact() {
    let up = Upstream::from_fn(greeter).run().await;
    let node = node(&up).await;
    let mut grpc = grpc_client(&node.proxy_url("/grpc"));
    // A handler error: tonic answers with the status alone.
    let status = call(&mut grpc, "/test.Greeter/SayHello", "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(status.message(), "name is required");
    // A status in the trailers, after a message: only the trailers say
    // the call failed.
    let status = call(&mut grpc, "/test.Greeter/Flaky", "x")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), "not ready");
}

#[tokio::test]
async fn trailers_reach_an_http2_client_frame_by_frame() {
    let up = Upstream::from_fn(greeter).run().await;
    let node = node(&up).await;
    let http = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build::<_, http_body_util::Full<Bytes>>(HttpConnector::new());
    let req = Request::post(node.proxy_url("/grpc/test.Greeter/Flaky"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(Bytes::from_static(&[
            0, 0, 0, 0, 0,
        ])))
        .unwrap();
    let resp = http.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "9");
    assert_eq!(trailers["grpc-message"], "not%20ready");
    assert!(!collected.to_bytes().is_empty());
}
