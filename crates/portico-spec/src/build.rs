//! The walk from the parsed documents to the [`Spec`] model. Every problem
//! is collected (up to [`MAX_ERRORS`]) with its file and pointer.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use http::Method;
use serde_json::{Map, Value};

use crate::error::{SpecError, push_token};
use crate::model::*;
use crate::source::{Doc, Docs, Target};

/// Errors reported before the walk stops collecting.
const MAX_ERRORS: usize = 100;
/// Nesting of schemas inside schemas that is followed.
const MAX_SCHEMA_DEPTH: usize = 128;

/// Keywords whose values are data, never schemas: their `$ref` keys are
/// not references.
const DATA_KEYWORDS: &[&str] = &[
    "example",
    "examples",
    "enum",
    "const",
    "default",
    "discriminator",
    "xml",
    "externalDocs",
];

/// Keywords whose values map names to schemas.
const SCHEMA_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

pub(crate) struct Builder {
    pub docs: Docs,
    pub errors: Vec<SpecError>,
    /// Schema keys reached and not yet copied into `schemas`.
    pending: Vec<Target>,
    seen: HashSet<String>,
    schemas: BTreeMap<String, Schema>,
}

impl Builder {
    pub fn new(docs: Docs) -> Self {
        Self {
            docs,
            errors: Vec::new(),
            pending: Vec::new(),
            seen: HashSet::new(),
            schemas: BTreeMap::new(),
        }
    }

    fn push(&mut self, e: SpecError) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(e);
        }
    }

    pub fn spec(&mut self) -> Option<Spec> {
        let root = self.docs.root();
        let Some(obj) = root.value.as_object() else {
            self.push(root.error("", "an OpenAPI document must be a mapping"));
            return None;
        };
        let openapi = match obj.get("openapi") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                self.push(root.error("/openapi", "`openapi` must be a string such as \"3.1.0\""));
                return None;
            }
            None if obj.contains_key("swagger") => {
                self.push(root.error(
                    "/swagger",
                    "Swagger 2.0 is not supported; convert the document to OpenAPI 3",
                ));
                return None;
            }
            None => {
                self.push(root.error("", "missing `openapi` version field"));
                return None;
            }
        };
        let version = if openapi.starts_with("3.0.") || openapi == "3.0" {
            OpenApiVersion::V3_0
        } else if openapi.starts_with("3.1.") || openapi == "3.1" {
            OpenApiVersion::V3_1
        } else {
            self.push(root.error(
                "/openapi",
                format!("OpenAPI version `{openapi}` is not supported; 3.0.x and 3.1.x are"),
            ));
            return None;
        };
        let info = obj.get("info").and_then(Value::as_object);
        let title = info
            .and_then(|i| i.get("title"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let api_version = info
            .and_then(|i| i.get("version"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let servers = self.servers(&root, obj.get("servers"));
        let security_schemes = self.security_schemes(&root);
        let security = match obj.get("security") {
            None => Vec::new(),
            Some(v) => self.security(&root, "/security", v, &security_schemes),
        };
        let operations = match obj.get("paths") {
            None if version == OpenApiVersion::V3_0 => {
                self.push(root.error("", "missing `paths`"));
                Vec::new()
            }
            None => Vec::new(),
            Some(paths) => self.paths(&root, paths, &security_schemes),
        };
        if let Some(Value::Object(schemas)) = obj.get("components").and_then(|c| c.get("schemas")) {
            for name in schemas.keys() {
                let pointer = push_token("/components/schemas", name);
                self.reach(Target {
                    doc: root.clone(),
                    pointer,
                });
            }
        }
        self.drain_schemas();
        let mut ids: HashSet<&str> = HashSet::new();
        for op in &operations {
            if let Some(id) = op.operation_id.as_deref()
                && !ids.insert(id)
            {
                let e = root.error(
                    &format!("{}/operationId", op.pointer),
                    format!("operationId `{id}` is used by another operation"),
                );
                self.errors.push(e);
            }
        }
        Some(Spec {
            version,
            openapi,
            title,
            api_version,
            servers,
            operations,
            security,
            security_schemes,
            schemas: std::mem::take(&mut self.schemas),
        })
    }

    fn servers(&mut self, root: &Rc<Doc>, v: Option<&Value>) -> Vec<Server> {
        let Some(v) = v else { return Vec::new() };
        let Some(list) = v.as_array() else {
            self.push(root.error("/servers", "`servers` must be a sequence"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let at = format!("/servers/{i}");
            let Some(url) = s.get("url").and_then(Value::as_str) else {
                self.push(root.error(&at, "a server needs a `url` string"));
                continue;
            };
            let mut url = url.to_owned();
            if let Some(Value::Object(vars)) = s.get("variables") {
                for (name, var) in vars {
                    match var.get("default").and_then(Value::as_str) {
                        Some(d) => url = url.replace(&format!("{{{name}}}"), d),
                        None => self.push(root.error(
                            &push_token(&format!("{at}/variables"), name),
                            "a server variable needs a `default` string",
                        )),
                    }
                }
            }
            if url.contains('{') {
                self.push(root.error(
                    &format!("{at}/url"),
                    format!("server URL `{url}` uses a variable that `variables` does not define"),
                ));
                continue;
            }
            out.push(Server {
                base_path: base_path_of(&url),
                url,
            });
        }
        out
    }

    fn security_schemes(&mut self, root: &Rc<Doc>) -> BTreeMap<String, SecurityScheme> {
        let mut out = BTreeMap::new();
        let Some(Value::Object(schemes)) = root
            .value
            .get("components")
            .and_then(|c| c.get("securitySchemes"))
        else {
            return out;
        };
        for name in schemes.keys() {
            let at = push_token("/components/securitySchemes", name);
            let target = match self.docs.deref(root, &at) {
                Ok(t) => t,
                Err(e) => {
                    self.push(e);
                    continue;
                }
            };
            match security_scheme(&target) {
                Ok(s) => {
                    out.insert(name.clone(), s);
                }
                Err(e) => self.push(e),
            }
        }
        out
    }

    fn security(
        &mut self,
        doc: &Rc<Doc>,
        at: &str,
        v: &Value,
        schemes: &BTreeMap<String, SecurityScheme>,
    ) -> Vec<SecurityRequirement> {
        let Some(list) = v.as_array() else {
            self.push(doc.error(at, "`security` must be a sequence"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, req) in list.iter().enumerate() {
            let at = format!("{at}/{i}");
            let Some(req) = req.as_object() else {
                self.push(doc.error(&at, "a security requirement must be a mapping"));
                continue;
            };
            let mut r = SecurityRequirement::default();
            for (name, scopes) in req {
                if !schemes.contains_key(name) {
                    self.push(doc.error(
                        &push_token(&at, name),
                        format!(
                            "security scheme `{name}` is not defined in components.securitySchemes"
                        ),
                    ));
                    continue;
                }
                let scopes = scopes
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                r.schemes.push((name.clone(), scopes));
            }
            out.push(r);
        }
        out
    }

    fn paths(
        &mut self,
        root: &Rc<Doc>,
        paths: &Value,
        schemes: &BTreeMap<String, SecurityScheme>,
    ) -> Vec<Operation> {
        let Some(paths) = paths.as_object() else {
            self.push(root.error("/paths", "`paths` must be a mapping"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for template in paths.keys() {
            let at = push_token("/paths", template);
            if template.starts_with("x-") {
                continue;
            }
            if let Err(m) = check_template(template) {
                self.push(root.error(&at, m));
                continue;
            }
            let item = match self.docs.deref(root, &at) {
                Ok(t) => t,
                Err(e) => {
                    self.push(e);
                    continue;
                }
            };
            let Some(Value::Object(obj)) = item.value() else {
                self.push(
                    item.doc
                        .error(&item.pointer, "a path item must be a mapping"),
                );
                continue;
            };
            let obj = obj.clone();
            let shared = self.parameters(&item, &obj);
            for method in METHODS {
                let key = method.as_str().to_ascii_lowercase();
                if !obj.contains_key(&key) {
                    continue;
                }
                let op_at = Target {
                    doc: item.doc.clone(),
                    pointer: push_token(&item.pointer, &key),
                };
                if let Some(op) = self.operation(template, method, &op_at, &shared, schemes) {
                    out.push(op);
                }
            }
        }
        out
    }

    /// The `parameters` list of a path item or an operation.
    fn parameters(&mut self, at: &Target, obj: &Map<String, Value>) -> Vec<Parameter> {
        let mut out: Vec<Parameter> = Vec::new();
        let Some(list) = obj.get("parameters") else {
            return out;
        };
        let list_at = format!("{}/parameters", at.pointer);
        let Some(list) = list.as_array() else {
            self.push(at.doc.error(&list_at, "`parameters` must be a sequence"));
            return out;
        };
        for i in 0..list.len() {
            let p_at = format!("{list_at}/{i}");
            let target = match self.docs.deref(&at.doc, &p_at) {
                Ok(t) => t,
                Err(e) => {
                    self.push(e);
                    continue;
                }
            };
            if let Some(p) = self.parameter(&target) {
                if out
                    .iter()
                    .any(|o| o.name == p.name && o.location == p.location)
                {
                    self.push(at.doc.error(
                        &p_at,
                        format!(
                            "parameter `{}` in {} is listed twice",
                            p.name,
                            p.location.as_str()
                        ),
                    ));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    fn parameter(&mut self, t: &Target) -> Option<Parameter> {
        let doc = t.doc.clone();
        let at = t.pointer.as_str();
        let Some(Value::Object(obj)) = t.value() else {
            self.push(doc.error(at, "a parameter must be a mapping"));
            return None;
        };
        let Some(name) = obj.get("name").and_then(Value::as_str) else {
            self.push(doc.error(at, "a parameter needs a `name` string"));
            return None;
        };
        let location = match obj.get("in").and_then(Value::as_str) {
            Some("path") => ParameterIn::Path,
            Some("query") => ParameterIn::Query,
            Some("header") => ParameterIn::Header,
            Some("cookie") => ParameterIn::Cookie,
            _ => {
                self.push(doc.error(
                    &format!("{at}/in"),
                    "`in` must be `path`, `query`, `header` or `cookie`",
                ));
                return None;
            }
        };
        let style = match obj.get("style").and_then(Value::as_str) {
            None => match location {
                ParameterIn::Query | ParameterIn::Cookie => Style::Form,
                ParameterIn::Path | ParameterIn::Header => Style::Simple,
            },
            Some(s) => match (s, location) {
                ("matrix", ParameterIn::Path) => Style::Matrix,
                ("label", ParameterIn::Path) => Style::Label,
                ("simple", ParameterIn::Path | ParameterIn::Header) => Style::Simple,
                ("form", ParameterIn::Query | ParameterIn::Cookie) => Style::Form,
                ("spaceDelimited", ParameterIn::Query) => Style::SpaceDelimited,
                ("pipeDelimited", ParameterIn::Query) => Style::PipeDelimited,
                ("deepObject", ParameterIn::Query) => Style::DeepObject,
                _ => {
                    self.push(doc.error(
                        &format!("{at}/style"),
                        format!(
                            "style `{s}` does not apply to {} parameters",
                            location.as_str()
                        ),
                    ));
                    return None;
                }
            },
        };
        let flag = |k: &str| obj.get(k).and_then(Value::as_bool);
        let required = flag("required").unwrap_or(false) || location == ParameterIn::Path;
        let explode = flag("explode").unwrap_or(style == Style::Form);
        let (schema, content_type) = match (obj.get("schema"), obj.get("content")) {
            (Some(_), Some(_)) => {
                self.push(doc.error(at, "a parameter has either `schema` or `content`, not both"));
                return None;
            }
            (Some(_), None) => (Some(self.schema(&doc, &format!("{at}/schema"))), None),
            (None, Some(Value::Object(c))) if c.len() == 1 => {
                let (ct, media) = c.iter().next().expect("one entry");
                let schema = media.get("schema").map(|_| {
                    self.schema(
                        &doc,
                        &format!("{}/schema", push_token(&format!("{at}/content"), ct)),
                    )
                });
                (schema, Some(ct.clone()))
            }
            (None, Some(_)) => {
                self.push(doc.error(
                    &format!("{at}/content"),
                    "a parameter's `content` must have exactly one media type",
                ));
                return None;
            }
            (None, None) => (None, None),
        };
        Some(Parameter {
            name: name.to_owned(),
            location,
            required,
            style,
            explode,
            allow_empty_value: flag("allowEmptyValue").unwrap_or(false),
            deprecated: flag("deprecated").unwrap_or(false),
            schema,
            content_type,
        })
    }

    fn operation(
        &mut self,
        template: &str,
        method: Method,
        t: &Target,
        shared: &[Parameter],
        schemes: &BTreeMap<String, SecurityScheme>,
    ) -> Option<Operation> {
        let t = match self.docs.deref(&t.doc, &t.pointer) {
            Ok(t) => t,
            Err(e) => {
                self.push(e);
                return None;
            }
        };
        let Some(Value::Object(obj)) = t.value().cloned() else {
            self.push(t.doc.error(&t.pointer, "an operation must be a mapping"));
            return None;
        };
        let str_field = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut parameters: Vec<Parameter> = self.parameters(&t, &obj);
        for p in shared {
            if !parameters
                .iter()
                .any(|o| o.name == p.name && o.location == p.location)
            {
                parameters.push(p.clone());
            }
        }
        for name in template_names(template) {
            if !parameters
                .iter()
                .any(|p| p.location == ParameterIn::Path && p.name == name)
            {
                self.push(t.doc.error(
                    &t.pointer,
                    format!("path parameter `{name}` of `{template}` is not declared"),
                ));
            }
        }
        let request_body = obj.get("requestBody").and_then(|_| {
            let at = format!("{}/requestBody", t.pointer);
            match self.docs.deref(&t.doc, &at) {
                Ok(body) => self.request_body(&body),
                Err(e) => {
                    self.push(e);
                    None
                }
            }
        });
        let mut responses = Vec::new();
        match obj.get("responses") {
            None => {}
            Some(Value::Object(r)) => {
                for status in r.keys() {
                    if status.starts_with("x-") {
                        continue;
                    }
                    let at = push_token(&format!("{}/responses", t.pointer), status);
                    if !valid_status(status) {
                        self.push(t.doc.error(
                            &at,
                            format!("`{status}` is not a status code, a range such as `2XX`, or `default`"),
                        ));
                        continue;
                    }
                    match self.docs.deref(&t.doc, &at) {
                        Ok(target) => {
                            if let Some(resp) = self.response(status, &target) {
                                responses.push(resp);
                            }
                        }
                        Err(e) => self.push(e),
                    }
                }
            }
            Some(_) => self.push(t.doc.error(
                &format!("{}/responses", t.pointer),
                "`responses` must be a mapping",
            )),
        }
        let security = obj
            .get("security")
            .map(|s| self.security(&t.doc, &format!("{}/security", t.pointer), s, schemes));
        Some(Operation {
            path: template.to_owned(),
            method,
            operation_id: str_field("operationId"),
            summary: str_field("summary"),
            parameters,
            request_body,
            responses,
            security,
            deprecated: obj
                .get("deprecated")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            pointer: t.pointer.clone(),
        })
    }

    fn request_body(&mut self, t: &Target) -> Option<RequestBody> {
        let Some(Value::Object(obj)) = t.value().cloned() else {
            self.push(t.doc.error(&t.pointer, "a request body must be a mapping"));
            return None;
        };
        let content = self.content(t, &obj);
        Some(RequestBody {
            required: obj
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            content,
        })
    }

    fn response(&mut self, status: &str, t: &Target) -> Option<Response> {
        let Some(Value::Object(obj)) = t.value().cloned() else {
            self.push(t.doc.error(&t.pointer, "a response must be a mapping"));
            return None;
        };
        let content = self.content(t, &obj);
        Some(Response {
            status: status.to_owned(),
            description: obj
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            content,
        })
    }

    fn content(&mut self, t: &Target, obj: &Map<String, Value>) -> Vec<MediaType> {
        let mut out = Vec::new();
        let Some(content) = obj.get("content") else {
            return out;
        };
        let at = format!("{}/content", t.pointer);
        let Some(content) = content.as_object() else {
            self.push(t.doc.error(&at, "`content` must be a mapping"));
            return out;
        };
        for (ct, media) in content {
            let m_at = push_token(&at, ct);
            let Some(media) = media.as_object() else {
                self.push(t.doc.error(&m_at, "a media type must be a mapping"));
                continue;
            };
            let schema = media
                .get("schema")
                .map(|_| self.schema(&t.doc, &format!("{m_at}/schema")));
            let mut examples = Vec::new();
            if let Some(Value::Object(named)) = media.get("examples") {
                for name in named.keys() {
                    let e_at = push_token(&format!("{m_at}/examples"), name);
                    match self.docs.deref(&t.doc, &e_at) {
                        Ok(e) => {
                            if let Some(v) = e.value().and_then(|v| v.get("value")) {
                                examples.push((name.clone(), v.clone()));
                            }
                        }
                        Err(e) => self.push(e),
                    }
                }
            }
            out.push(MediaType {
                content_type: ct.clone(),
                schema,
                example: media.get("example").cloned(),
                examples,
            });
        }
        out
    }

    /// The schema at `at` in `doc`, its references rewritten to keys and
    /// their targets queued.
    fn schema(&mut self, doc: &Rc<Doc>, at: &str) -> Schema {
        let value = doc.value.pointer(at).cloned().unwrap_or(Value::Null);
        let mut value = value;
        self.rewrite(doc, at, &mut value, 0);
        Schema(value)
    }

    /// Queues a schema for copying into `schemas`, once.
    fn reach(&mut self, target: Target) -> String {
        let key = target.key();
        if self.seen.insert(key.clone()) {
            self.pending.push(target);
        }
        key
    }

    fn drain_schemas(&mut self) {
        while let Some(t) = self.pending.pop() {
            let mut value = t.value().cloned().unwrap_or(Value::Null);
            self.rewrite(&t.doc, &t.pointer, &mut value, 0);
            self.schemas.insert(t.key(), Schema(value));
        }
    }

    fn rewrite(&mut self, doc: &Rc<Doc>, at: &str, v: &mut Value, depth: usize) {
        if depth > MAX_SCHEMA_DEPTH {
            self.push(doc.error(at, "schema nested too deeply"));
            return;
        }
        match v {
            Value::Object(obj) => {
                if let Some(r) = obj.get_mut("$ref") {
                    match r {
                        Value::String(s) => {
                            let ref_at = format!("{at}/$ref");
                            match self.docs.target(doc, &ref_at, s) {
                                Ok(t) => *s = self.reach(t),
                                Err(e) => self.push(e),
                            }
                        }
                        _ => self.push(doc.error(&format!("{at}/$ref"), "`$ref` must be a string")),
                    }
                }
                for (k, child) in obj.iter_mut() {
                    if k == "$ref" || DATA_KEYWORDS.contains(&k.as_str()) || k.starts_with("x-") {
                        continue;
                    }
                    let child_at = push_token(at, k);
                    if SCHEMA_MAPS.contains(&k.as_str()) {
                        if let Value::Object(m) = child {
                            for (name, s) in m.iter_mut() {
                                let s_at = push_token(&child_at, name);
                                self.rewrite(doc, &s_at, s, depth + 1);
                            }
                        }
                    } else {
                        self.rewrite(doc, &child_at, child, depth + 1);
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.rewrite(doc, &format!("{at}/{i}"), item, depth + 1);
                }
            }
            _ => {}
        }
    }
}

fn security_scheme(t: &Target) -> Result<SecurityScheme, SpecError> {
    let at = t.pointer.as_str();
    let Some(obj) = t.value().and_then(Value::as_object) else {
        return Err(t.doc.error(at, "a security scheme must be a mapping"));
    };
    let s = |k: &str| obj.get(k).and_then(Value::as_str);
    let missing = |k: &str| t.doc.error(at, format!("this security scheme needs `{k}`"));
    Ok(match s("type") {
        Some("apiKey") => SecurityScheme::ApiKey {
            name: s("name").ok_or_else(|| missing("name"))?.to_owned(),
            location: match s("in") {
                Some("query") => ParameterIn::Query,
                Some("header") => ParameterIn::Header,
                Some("cookie") => ParameterIn::Cookie,
                _ => {
                    return Err(t.doc.error(
                        &format!("{at}/in"),
                        "`in` must be `query`, `header` or `cookie`",
                    ));
                }
            },
        },
        Some("http") => SecurityScheme::Http {
            scheme: s("scheme")
                .ok_or_else(|| missing("scheme"))?
                .to_ascii_lowercase(),
            bearer_format: s("bearerFormat").map(str::to_owned),
        },
        Some("oauth2") => {
            let Some(Value::Object(flows)) = obj.get("flows") else {
                return Err(missing("flows"));
            };
            let flows = flows
                .iter()
                .filter(|(k, _)| !k.starts_with("x-"))
                .map(|(kind, f)| {
                    let fs = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_owned);
                    let mut scopes: Vec<String> = f
                        .get("scopes")
                        .and_then(Value::as_object)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    scopes.sort();
                    OAuthFlow {
                        kind: kind.clone(),
                        authorization_url: fs("authorizationUrl"),
                        token_url: fs("tokenUrl"),
                        scopes,
                    }
                })
                .collect();
            SecurityScheme::OAuth2 { flows }
        }
        Some("openIdConnect") => SecurityScheme::OpenIdConnect {
            url: s("openIdConnectUrl")
                .ok_or_else(|| missing("openIdConnectUrl"))?
                .to_owned(),
        },
        Some("mutualTLS") => SecurityScheme::MutualTls,
        _ => {
            return Err(t.doc.error(
                &format!("{at}/type"),
                "`type` must be `apiKey`, `http`, `oauth2`, `openIdConnect` or `mutualTLS`",
            ));
        }
    })
}

/// The path of a server URL: `https://h/v1/` → `/v1`, `/v1` → `/v1`,
/// `https://h` → `/`.
fn base_path_of(url: &str) -> String {
    let after_authority = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None if url.starts_with("//") => url[2..].find('/').map_or("", |i| &url[2 + i..]),
        None => url,
    };
    let path = after_authority
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    if path.is_empty() {
        "/".to_owned()
    } else if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// A path template: starts with `/`, braces balanced and non-empty.
fn check_template(t: &str) -> Result<(), String> {
    if !t.starts_with('/') {
        return Err(format!("path `{t}` must start with `/`"));
    }
    let mut open = false;
    let mut name_len = 0;
    for c in t.chars() {
        match c {
            '{' if open => return Err(format!("path `{t}` nests `{{`")),
            '{' => {
                open = true;
                name_len = 0;
            }
            '}' if !open => return Err(format!("path `{t}` has a `}}` without `{{`")),
            '}' if name_len == 0 => return Err(format!("path `{t}` has an empty `{{}}`")),
            '}' => open = false,
            '/' if open => return Err(format!("path `{t}` has a `{{` without `}}`")),
            _ if open => name_len += 1,
            _ => {}
        }
    }
    if open {
        return Err(format!("path `{t}` has a `{{` without `}}`"));
    }
    Ok(())
}

/// The variable names of a checked template, in order.
pub fn template_names(t: &str) -> impl Iterator<Item = &str> {
    t.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(n, _)| n))
}

fn valid_status(s: &str) -> bool {
    s == "default"
        || (s.len() == 3
            && s.as_bytes()[0].is_ascii_digit()
            && (s[1..].bytes().all(|b| b.is_ascii_digit()) || &s[1..] == "XX" || &s[1..] == "xx"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths() {
        assert_eq!(base_path_of("https://api.example.com/v1/"), "/v1");
        assert_eq!(base_path_of("https://api.example.com"), "/");
        assert_eq!(base_path_of("/v2"), "/v2");
        assert_eq!(base_path_of("v2/x"), "/v2/x");
        assert_eq!(base_path_of("//h/a/b?x"), "/a/b");
        assert_eq!(base_path_of(""), "/");
    }

    #[test]
    fn templates() {
        assert!(check_template("/pets/{petId}").is_ok());
        assert!(check_template("/a/{x}.{y}").is_ok());
        assert!(check_template("pets").is_err());
        assert!(check_template("/a/{}").is_err());
        assert!(check_template("/a/{x").is_err());
        assert!(check_template("/a/x}").is_err());
        assert!(check_template("/a/{x/y}").is_err());
        assert_eq!(
            template_names("/a/{x}/b/{y}.{z}").collect::<Vec<_>>(),
            ["x", "y", "z"]
        );
    }

    #[test]
    fn statuses() {
        for ok in ["200", "2XX", "default", "404", "5xx"] {
            assert!(valid_status(ok), "{ok}");
        }
        for bad in ["20", "2000", "abc", "2X0"] {
            assert!(!valid_status(bad), "{bad}");
        }
    }
}
