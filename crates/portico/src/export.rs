//! `portico export`: the running node's entities (`GET /admin/v1/export`)
//! as YAML that `portico apply` accepts. API keys appear as
//! `api_key_hashes` (their digests); an API's spec is written inline.

use std::process::ExitCode;

use serde_json::Value;

use crate::admin_client::{self, Target};

pub(crate) fn run(admin: Option<String>, token: Option<String>) -> ExitCode {
    let target = match Target::resolve(admin, token) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let runtime = match admin_client::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let resp = reqwest::Client::new()
            .get(target.url("/admin/v1/export"))
            .bearer_auth(&target.token)
            .send()
            .await;
        let mut doc = match resp {
            Ok(r) => match admin_client::read(r).await {
                Ok(d) => d,
                Err(code) => return code,
            },
            Err(e) => return admin_client::unreachable(&target, &e),
        };
        inline_specs(&mut doc);
        match serde_saphyr::to_string(&doc) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write the entities as YAML: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The store keeps a spec as its text; in a configuration file a string is
/// a file path, so the text is written as the mapping it holds.
fn inline_specs(doc: &mut Value) {
    let Some(apis) = doc.get_mut("apis").and_then(Value::as_array_mut) else {
        return;
    };
    for api in apis {
        let Some(Value::String(text)) = api.get("spec") else {
            continue;
        };
        match serde_saphyr::from_str::<Value>(text) {
            Ok(mapping @ Value::Object(_)) => api["spec"] = mapping,
            _ => {
                let name = api["name"].as_str().unwrap_or("?").to_owned();
                eprintln!(
                    "warning: the spec of API `{name}` is not a YAML or JSON mapping; it is left as text"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_written_inline() {
        let mut doc = serde_json::json!({ "apis": [
            { "name": "a", "spec": "openapi: 3.1.0\ninfo: { title: A, version: '1' }\npaths: {}\n" }
        ]});
        inline_specs(&mut doc);
        assert_eq!(doc["apis"][0]["spec"]["openapi"], "3.1.0");
        assert_eq!(doc["apis"][0]["spec"]["info"]["title"], "A");
    }
}
