//! `/v1/openapi.json`: the API described as an OpenAPI 3.1 document, written by hand next
//! to the routes it describes (the routes are few; a generator would be a larger
//! dependency than the document). It describes; it never routes or validates.

use axum::Json;
use serde_json::{json, Value};

fn op(summary: &str, ok: &str) -> Value {
    json!({ "summary": summary, "responses": { ok: { "description": "success" },
        "401": { "description": "missing or wrong token" } } })
}

fn with_body(mut operation: Value, content_type: &str, schema: Value) -> Value {
    operation["requestBody"] =
        json!({ "required": true, "content": { content_type: { "schema": schema } } });
    operation
}

fn path_params(mut operation: Value, names: &[&str]) -> Value {
    operation["parameters"] = names
        .iter()
        .map(|n| json!({ "name": n, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    operation
}

/// The document.
pub fn spec() -> Value {
    let states = json!(crate::report::State::ALL);
    let workflow_request = json!({ "type": "object", "properties": {
        "actions": { "type": "array", "items": { "enum": ["unittest", "build", "push"] } },
        "revision": { "type": "string" } } });
    let tarball = json!({ "type": "string", "format": "binary" });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "solum-build", "version": env!("CARGO_PKG_VERSION"),
            "description": "Builds apps into DU images: (a) from their git URL, (b) on a push to the managed repository /git/{app}.git, (c) from uploaded binaries or a registered image." },
        "components": {
            "securitySchemes": { "token": { "type": "http", "scheme": "bearer" } },
            "schemas": { "State": { "enum": states }, "WorkflowRequest": workflow_request }
        },
        "security": [{ "token": [] }],
        "paths": {
            "/v1/health": { "get": { "summary": "liveness (no token)", "security": [],
                "responses": { "200": { "description": "ok" } } } },
            "/v1/openapi.json": { "get": { "summary": "this document (no token)", "security": [],
                "responses": { "200": { "description": "the OpenAPI 3.1 document" } } } },
            "/v1/apps": {
                "get": op("list apps", "200"),
                "post": with_body(op("create an app from an app file (YAML or JSON)", "201"), "application/yaml", json!({ "type": "string" })),
            },
            "/v1/apps/{app}": {
                "get": path_params(op("show an app, its trigger and git URL", "200"), &["app"]),
                "patch": path_params(with_body(op("replace the app file (same name)", "200"), "application/yaml", json!({ "type": "string" })), &["app"]),
                "delete": path_params(op("soft-delete an app (history is kept)", "204"), &["app"]),
            },
            "/v1/apps/{app}/workflows": {
                "get": path_params(op("list workflows, newest first (?limit=)", "200"), &["app"]),
                "post": path_params(with_body(op("start a workflow", "202"), "application/json", json!({ "$ref": "#/components/schemas/WorkflowRequest" })), &["app"]),
            },
            "/v1/apps/{app}/workflows/{wf}": { "get": path_params(op("a workflow with its timestamped transitions and DU digest", "200"), &["app", "wf"]) },
            "/v1/apps/{app}/workflows/{wf}/logs": { "get": path_params(op("the log as text; ?follow=1 streams until the workflow ends", "200"), &["app", "wf"]) },
            "/v1/apps/{app}/workflows/{wf}/cancel": { "post": path_params(op("cancel a queued or running workflow", "202"), &["app", "wf"]) },
            "/v1/apps/{app}/artifacts": { "post": path_params(with_body(op("upload binaries (a tarball) and build them on the app's badger", "202"), "application/x-tar", tarball.clone()), &["app"]) },
            "/v1/badgers": {
                "get": op("list badgers; ?q= searches names, descriptions and packages", "200"),
                "post": with_body(op("build a badger from a tarball of its folder", "201"), "application/x-tar", tarball),
            },
            "/v1/badgers/{name}": { "get": path_params(op("one badger", "200"), &["name"]) },
            "/v1/dus": {
                "get": op("list DUs", "200"),
                "post": with_body(op("register a ready-made DU by reference", "201"), "application/json",
                    json!({ "type": "object", "required": ["reference", "name"], "properties": {
                        "reference": { "type": "string" }, "name": { "type": "string" }, "push": { "type": "boolean" } } })),
            },
            "/v1/triggers/{trigger_id}": { "post": path_params(json!({
                "summary": "webhook: a push event signed with X-Hub-Signature-256 or X-Gitea-Signature (HMAC-SHA256 with the app's trigger secret), or the secret as X-Solum-Trigger-Token",
                "security": [],
                "responses": { "202": { "description": "workflow queued" }, "200": { "description": "ignored (another branch), or a signed delivery received before: names its workflow" }, "400": { "description": "a body that is not a push event, over 1 MiB, or not whole within --header-timeout" }, "401": { "description": "wrong signature" } } }), &["trigger_id"]) },
            "/git/{app}.git": { "description": "git smart HTTP (clone, fetch, push) with the token as basic-auth password; a push to the watched branch queues a build" },
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(spec())
}

/// `GET /`: a page that says what answers here and where the API is described, so that a
/// browser pointed at the server finds its way (no token: it names nothing of the server's).
pub async fn landing_page() -> axum::response::Html<String> {
    let version = env!("CARGO_PKG_VERSION");
    axum::response::Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>solum-build {version}</title></head>\n\
         <body><h1>solum-build {version}</h1>\n\
         <p>A build server: apps, workflows and DUs over a REST API.</p>\n<ul>\n\
         <li><a href=\"/v1/openapi.json\">/v1/openapi.json</a>: the API (OpenAPI 3.1, no token needed)</li>\n\
         <li><a href=\"/v1/health\">/v1/health</a>: liveness</li>\n\
         <li>Every other <code>/v1/</code> call takes the server's token: <code>Authorization: Bearer TOKEN</code> \
         (the token is in the server's <code>DATA/token</code>; client commands read <code>SOLUM_BUILD_TOKEN</code>).</li>\n\
         <li><code>git push http://HOST/git/APP.git</code> builds a managed app (the token as the password).</li>\n\
         </ul></body></html>\n"
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_described() {
        let spec = super::spec();
        let paths = spec["paths"].as_object().unwrap();
        for path in [
            "/v1/apps/{app}/workflows/{wf}/logs",
            "/v1/triggers/{trigger_id}",
            "/v1/dus",
        ] {
            assert!(paths.contains_key(path), "{path}");
        }
        assert_eq!(
            spec["components"]["schemas"]["State"]["enum"]
                .as_array()
                .unwrap()
                .len(),
            11
        );
    }
}
