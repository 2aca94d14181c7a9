//! The `validate` policy against two specs: a pet store in OpenAPI 3.0
//! and a library in 3.1. Valid requests reach the upstream; invalid ones
//! are answered 400/413/415 with every error listed, and the upstream
//! never sees them. Responses are checked when asked (`true`: counted and
//! logged; `enforce`: 502).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use portico_test::{RecordedRequest, TestNode, Upstream, UpstreamHandle, full_body};
use serde_json::{Value, json};

use crate::support::{client, problem};

/// The pet store in the shape of the classic OpenAPI example, 3.0
/// dialect: `nullable`, boolean `exclusiveMinimum`, `readOnly`, shared
/// parameters and request bodies, enums, formats.
const PETSTORE_30: &str = r##"
openapi: 3.0.3
info: { title: Pet store, version: "1.0.0" }
servers: [{ url: "http://petstore.example/store/v1" }]
paths:
  /pets:
    get:
      operationId: listPets
      parameters:
        - { name: limit, in: query, schema: { type: integer, minimum: 0, exclusiveMinimum: true, maximum: 100 } }
        - name: status
          in: query
          style: form
          explode: true
          schema: { type: array, items: { type: string, enum: [available, pending, sold] } }
        - { name: x-trace, in: header, schema: { type: string, pattern: "^[a-f0-9]{8}$" } }
      responses:
        "200":
          description: pets
          content:
            application/json:
              schema: { type: array, items: { $ref: "#/components/schemas/Pet" } }
    post:
      operationId: addPet
      requestBody: { $ref: "#/components/requestBodies/Pet" }
      responses:
        "201":
          description: created
          content:
            application/json: { schema: { $ref: "#/components/schemas/Pet" } }
        default:
          description: error
          content:
            application/json: { schema: { $ref: "#/components/schemas/Error" } }
  /pets/{petId}:
    parameters:
      - { name: petId, in: path, required: true, schema: { type: integer, format: int64, minimum: 1 } }
    get:
      operationId: getPet
      parameters:
        - { name: session, in: cookie, schema: { type: string, minLength: 4 } }
      responses:
        "200":
          description: a pet
          content:
            application/json: { schema: { $ref: "#/components/schemas/Pet" } }
    put:
      operationId: updatePet
      requestBody: { $ref: "#/components/requestBodies/Pet" }
      responses: { "200": { description: updated } }
  /pets/{petId}/photo:
    put:
      operationId: uploadPhoto
      parameters:
        - { name: petId, in: path, required: true, schema: { type: integer } }
      requestBody:
        required: true
        content:
          image/png: {}
          image/jpeg: {}
      responses: { "204": { description: stored } }
components:
  requestBodies:
    Pet:
      required: true
      content:
        application/json: { schema: { $ref: "#/components/schemas/Pet" } }
        application/merge-patch+json: { schema: { $ref: "#/components/schemas/Pet" } }
  schemas:
    Category:
      type: object
      properties:
        id: { type: integer, format: int64 }
        name: { type: string }
    Pet:
      type: object
      required: [id, name, photoUrls]
      properties:
        id: { type: integer, format: int64, readOnly: true }
        name: { type: string, example: doggie, minLength: 1 }
        category: { $ref: "#/components/schemas/Category" }
        photoUrls: { type: array, items: { type: string, format: uri } }
        tag: { type: string, nullable: true }
        status: { type: string, enum: [available, pending, sold] }
        born: { type: string, format: date }
    Error:
      type: object
      required: [code, message]
      properties:
        code: { type: integer }
        message: { type: string }
"##;

/// A library in 3.1 (JSON Schema 2020-12): type lists with `null`,
/// numeric `exclusiveMinimum`, `$ref` with siblings, `const`,
/// `prefixItems`, deepObject and label/matrix path styles.
const LIBRARY_31: &str = r##"
openapi: 3.1.0
info: { title: Library, version: "2025-01" }
servers: [{ url: /library }]
paths:
  /books:
    get:
      operationId: listBooks
      parameters:
        - name: filter
          in: query
          style: deepObject
          explode: true
          schema:
            type: object
            properties: { year: { type: integer, minimum: 1450 }, lang: { type: string, maxLength: 2 } }
            additionalProperties: false
      responses: { "200": { description: books } }
    post:
      operationId: addBook
      requestBody:
        required: true
        content:
          application/json: { schema: { $ref: "#/components/schemas/Book" } }
      responses: { "201": { description: added } }
  /books/{isbn}/copies/{ids}:
    get:
      operationId: copies
      parameters:
        - { name: isbn, in: path, required: true, schema: { type: string, pattern: "^[0-9-]{10,17}$" } }
        - { name: ids, in: path, required: true, style: label, explode: true, schema: { type: array, items: { type: integer, exclusiveMinimum: 0 } } }
      responses: { "200": { description: copies } }
components:
  schemas:
    Book:
      type: object
      required: [isbn, title, kind]
      properties:
        isbn: { type: string }
        title: { type: string }
        kind: { const: book }
        subtitle: { type: [string, "null"] }
        price: { type: number, exclusiveMinimum: 0 }
        shelf:
          type: array
          prefixItems: [{ type: string }, { type: integer }]
          items: false
        sequel:
          $ref: "#/components/schemas/Book"
          description: 3.1 keeps siblings of $ref
      additionalProperties: false
"##;

async fn node(spec: &str, base: &str, up: &UpstreamHandle, settings: &str) -> TestNode {
    let yaml = format!(
        "apis:\n  - name: shop\n    base_path: {base}\n    spec: |\n{}\n    upstream: {{ targets: [\"{}\"] }}\n    policies:\n      - validate: {settings}\n",
        indent(spec, 6),
        up.url()
    );
    TestNode::new().config(&yaml).run().await
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `(in[:name], pointer, keyword)` of every listed error, sorted.
fn errors(doc: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = doc["errors"]
        .as_array()
        .expect("an errors array")
        .iter()
        .map(|e| {
            let place = match e["name"].as_str() {
                Some(n) => format!("{}:{n}", e["in"].as_str().unwrap()),
                None => e["in"].as_str().unwrap().to_owned(),
            };
            assert!(e["detail"].as_str().is_some_and(|d| !d.is_empty()), "{e}");
            (
                place,
                e["pointer"].as_str().unwrap().to_owned(),
                e["keyword"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn e(place: &str, pointer: &str, keyword: &str) -> (String, String, String) {
    (place.into(), pointer.into(), keyword.into())
}

fn pet() -> Value {
    json!({ "name": "Rex", "photoUrls": ["https://img.example/rex.png"], "tag": null, "status": "available" })
}

#[tokio::test]
async fn petstore_3_0_valid_requests_pass_invalid_ones_never_reach_the_upstream() {
    let up = Upstream::echo().run().await;
    let node = node(PETSTORE_30, "/store/v1", &up, "{}").await;
    let c = client();

    // Valid: parameters of every kind, and JSON bodies (readOnly `id` not
    // required in a request; `nullable` tag; a +json media type).
    let ok = [
        c.get(node.proxy_url("/store/v1/pets?limit=100&status=available&status=sold"))
            .header("x-trace", "deadbeef"),
        c.get(node.proxy_url("/store/v1/pets/7"))
            .header("cookie", "lang=en; session=abcdef"),
        c.post(node.proxy_url("/store/v1/pets")).json(&pet()),
        c.put(node.proxy_url("/store/v1/pets/7"))
            .header("content-type", "application/merge-patch+json")
            .body(pet().to_string()),
        c.put(node.proxy_url("/store/v1/pets/7/photo"))
            .header("content-type", "image/png")
            .body(vec![0x89u8, b'P', b'N', b'G']),
    ];
    for req in ok {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.url());
    }
    assert_eq!(up.requests(), 5);
    // The body the upstream got is the one sent, whole.
    let resp = c
        .post(node.proxy_url("/store/v1/pets"))
        .json(&pet())
        .send()
        .await
        .unwrap();
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.body_len, pet().to_string().len());
    assert_eq!(up.requests(), 6);

    // Invalid parameters: every error listed, with place and keyword.
    let resp = c
        .get(node.proxy_url("/store/v1/pets?limit=0&status=lost&status=sold"))
        .header("x-trace", "XYZ")
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 400, "validation-failed").await;
    assert_eq!(
        errors(&doc),
        vec![
            e("header:x-trace", "", "pattern"),
            e("query:limit", "", "exclusiveMinimum"),
            e("query:status", "/0", "enum"),
        ]
    );
    let resp = c
        .get(node.proxy_url("/store/v1/pets/abc"))
        .header("cookie", "session=ab")
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 400, "validation-failed").await;
    assert_eq!(
        errors(&doc),
        vec![
            e("cookie:session", "", "minLength"),
            e("path:petId", "", "type")
        ]
    );

    // Invalid bodies.
    let bad = json!({ "name": "", "photoUrls": "none", "status": "lost", "born": "yesterday" });
    let resp = c
        .post(node.proxy_url("/store/v1/pets"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 400, "validation-failed").await;
    assert_eq!(
        errors(&doc),
        vec![
            e("body", "/born", "format"),
            e("body", "/name", "minLength"),
            e("body", "/photoUrls", "type"),
            e("body", "/status", "enum"),
        ]
    );
    assert!(
        doc["detail"].as_str().unwrap().contains("4 places"),
        "{doc}"
    );
    let resp = c
        .post(node.proxy_url("/store/v1/pets"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 400, "validation-failed").await;
    assert_eq!(errors(&doc), vec![e("body", "", "json")]);
    // A required body that is missing.
    let resp = c
        .post(node.proxy_url("/store/v1/pets"))
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 400, "validation-failed").await;
    assert_eq!(errors(&doc), vec![e("body", "", "required")]);
    // Media types the operation does not declare.
    let resp = c
        .post(node.proxy_url("/store/v1/pets"))
        .header("content-type", "text/plain")
        .body("Rex")
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 415, "unsupported-media-type").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("application/json"),
        "{doc}"
    );
    let resp = c
        .put(node.proxy_url("/store/v1/pets/7/photo"))
        .header("content-type", "image/gif")
        .body("GIF89a")
        .send()
        .await
        .unwrap();
    problem(resp, 415, "unsupported-media-type").await;

    assert_eq!(up.requests(), 6, "no invalid request reached the upstream");

    let metrics = node.metrics_text().await;
    for line in [
        "portico_validate_requests_total{api=\"shop\",outcome=\"passed\"} 6",
        "portico_validate_requests_total{api=\"shop\",outcome=\"refused\"} 5",
        "portico_validate_requests_total{api=\"shop\",outcome=\"unsupported_media_type\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[tokio::test]
async fn library_3_1_schemas_are_json_schema_2020_12() {
    let up = Upstream::echo().run().await;
    let node = node(LIBRARY_31, "/library", &up, "{ request: true }").await;
    let c = client();
    let book = json!({
        "isbn": "978-0-441-01340", "title": "The Left Hand of Darkness", "kind": "book",
        "subtitle": null, "price": 9.5, "shelf": ["B", 4],
        "sequel": { "isbn": "978-0-441", "title": "-", "kind": "book" }
    });
    for req in [
        c.get(node.proxy_url("/library/books?filter[year]=1969&filter[lang]=en")),
        c.get(node.proxy_url("/library/books/978-0-441-01340/copies/.1.2.3")),
        c.post(node.proxy_url("/library/books")).json(&book),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.url());
    }
    assert_eq!(up.requests(), 3);

    let resp = c
        .get(node.proxy_url("/library/books?filter[year]=1200&filter[lang]=eng&filter[x]=1"))
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 400, "validation-failed").await;
    assert_eq!(
        errors(&doc),
        vec![
            e("query:filter", "", "additionalProperties"),
            e("query:filter", "/lang", "maxLength"),
            e("query:filter", "/year", "minimum"),
        ]
    );
    let resp = c
        .get(node.proxy_url("/library/books/12/copies/.1.0.x"))
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 400, "validation-failed").await;
    assert_eq!(
        errors(&doc),
        vec![
            e("path:ids", "/1", "exclusiveMinimum"),
            e("path:ids", "/2", "type"),
            e("path:isbn", "", "pattern"),
        ]
    );
    let bad = json!({
        "isbn": 978, "title": "T", "kind": "film", "price": 0, "shelf": ["B", 4, 5],
        "sequel": { "title": "S", "kind": "book" }, "extra": true
    });
    let resp = c
        .post(node.proxy_url("/library/books"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 400, "validation-failed").await;
    assert_eq!(
        errors(&doc),
        vec![
            e("body", "", "additionalProperties"),
            e("body", "/isbn", "type"),
            e("body", "/kind", "const"),
            e("body", "/price", "exclusiveMinimum"),
            e("body", "/sequel", "required"),
            e("body", "/shelf/2", "items"),
        ]
    );
    assert_eq!(up.requests(), 3, "no invalid request reached the upstream");
}

#[tokio::test]
async fn bodies_over_max_body_are_413_and_never_read_past_it() {
    let up = Upstream::echo().run().await;
    let node = node(PETSTORE_30, "/store/v1", &up, "{ max_body: 1KiB }").await;
    let c = client();
    let mut big = pet();
    big["name"] = Value::String("x".repeat(2000));
    // Declared length over the cap.
    let resp = c
        .post(node.proxy_url("/store/v1/pets"))
        .json(&big)
        .send()
        .await
        .unwrap();
    problem(resp, 413, "payload-too-large").await;
    // No declared length (chunked): refused once the cap is passed.
    let chunks: Vec<Result<Bytes, std::io::Error>> = big
        .to_string()
        .into_bytes()
        .chunks(256)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let resp = c
        .post(node.proxy_url("/store/v1/pets"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    problem(resp, 413, "payload-too-large").await;
    // A valid body without a declared length is read, checked and sent
    // upstream whole.
    let text = pet().to_string();
    let chunks: Vec<Result<Bytes, std::io::Error>> = text
        .as_bytes()
        .chunks(16)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let resp = c
        .post(node.proxy_url("/store/v1/pets"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.body_len, text.len());
    assert_eq!(
        seen.header("content-length"),
        Some(text.len().to_string().as_str())
    );
    // A body that needs no check streams through whatever its size.
    let resp = c
        .put(node.proxy_url("/store/v1/pets/7/photo"))
        .header("content-type", "image/jpeg")
        .body(vec![0u8; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert_eq!(seen.body_len, 64 * 1024);
    assert_eq!(up.requests(), 2);
}

/// An upstream answering `GET /pets/{id}` with a pet for odd ids and with
/// a pet lacking `name` for even ones; `/pets` with a too large list.
async fn pet_origin(answered: Arc<AtomicUsize>) -> UpstreamHandle {
    Upstream::from_fn(move |req| {
        answered.fetch_add(1, Ordering::SeqCst);
        async move {
            let path = req.uri().path().to_owned();
            let body = if path == "/pets" {
                let many: Vec<Value> = (1..200)
                    .map(|i| json!({ "id": i, "name": "pet", "photoUrls": [] }))
                    .collect();
                Value::Array(many)
            } else {
                let id: i64 = path.rsplit('/').next().unwrap().parse().unwrap();
                if id % 2 == 1 {
                    json!({ "id": id, "name": "Rex", "photoUrls": [] })
                } else {
                    json!({ "id": id, "photoUrls": [] })
                }
            };
            let mut resp = http::Response::new(full_body(Bytes::from(body.to_string())));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            resp
        }
    })
    .run()
    .await
}

#[tokio::test]
async fn response_true_counts_mismatches_and_lets_them_through() {
    let answered = Arc::new(AtomicUsize::new(0));
    let up = pet_origin(answered.clone()).await;
    let node = node(
        PETSTORE_30,
        "/store/v1",
        &up,
        "{ request: false, response: true }",
    )
    .await;
    let c = client();
    for id in [1, 2, 3, 4, 6] {
        let resp = c
            .get(node.proxy_url(&format!("/store/v1/pets/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["id"], id);
    }
    portico_test::assert_eventually!({
        let metrics = node.metrics_text().await;
        metrics.contains("portico_validate_responses_total{api=\"shop\",outcome=\"passed\"} 2")
            && metrics
                .contains("portico_validate_responses_total{api=\"shop\",outcome=\"mismatch\"} 3")
            // Requests are not checked, so not counted either.
            && !metrics.contains("portico_validate_requests_total{")
    });
}

#[tokio::test]
async fn response_enforce_answers_502_for_mismatches() {
    let answered = Arc::new(AtomicUsize::new(0));
    let up = pet_origin(answered.clone()).await;
    let node = node(
        PETSTORE_30,
        "/store/v1",
        &up,
        "{ response: enforce, max_body: 4KiB }",
    )
    .await;
    let c = client();
    let resp = c
        .get(node.proxy_url("/store/v1/pets/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["name"], "Rex");
    let resp = c
        .get(node.proxy_url("/store/v1/pets/2"))
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 502, "response-validation-failed").await;
    assert!(
        doc.get("errors").is_none(),
        "the upstream's data stays in the log"
    );
    // Too large to check (over 4 KiB): refused, not passed unchecked.
    let resp = c
        .get(node.proxy_url("/store/v1/pets"))
        .send()
        .await
        .unwrap();
    let doc = problem(resp, 502, "response-validation-failed").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("too large"),
        "{doc}"
    );
    // HEAD answers carry no body and are not checked.
    let resp = c
        .head(node.proxy_url("/store/v1/pets/2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(answered.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn validate_needs_a_spec_and_names_the_key_and_line() {
    let yaml = "apis:\n  - name: plain\n    base_path: /p\n    upstream: { targets: [\"http://127.0.0.1:9\"] }\n    policies:\n      - validate: {}\n";
    let err = TestNode::new().config(yaml).try_run().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("has no `spec`")
            && text.contains("apis[0].policies[0]")
            && text.contains("line 6"),
        "{text}"
    );
    let yaml = "apis:\n  - name: plain\n    base_path: /p\n    upstream: { targets: [\"http://127.0.0.1:9\"] }\n    policies:\n      - validate: { response: maybe }\n";
    let err = TestNode::new().config(yaml).try_run().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`enforce`") && text.contains("validate"),
        "{text}"
    );
}
