//! `/v1/apps`: create (POST an app file, YAML or JSON), list, show, replace (PATCH with a
//! whole new app file of the same name) and soft-delete apps.
//!
//! An app file is validated exactly as `solum-build build` validates it. A file without a
//! `source` is accepted too: such an app builds from its managed git repository, which
//! every app gets at creation (`/git/{name}.git`). This module stores apps and makes their
//! repository; it never starts a build.

use super::records::{now, AppRecord};
use super::{git, ApiError, Shared};
use crate::manifest::{AppFile, Overrides};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/apps", get(list).post(create))
        .route("/v1/apps/{app}", get(show).patch(replace).delete(delete))
}

/// Validates an app file; returns it and whether it relies on the managed repository.
pub fn parse_app_file(text: &str) -> Result<(AppFile, bool), ApiError> {
    match AppFile::parse(text, "app file") {
        Ok(app) => Ok((app, false)),
        Err(first) => {
            // Without a source of its own the app builds from its managed repository: when
            // the missing source is the file's only problem, that is what it means.
            let only_source_missing = matches!(
                &first,
                crate::manifest::ManifestError::Invalid { errors, .. }
                    if errors.len() == 1
                        && matches!(errors[0].problem, crate::manifest::Problem::NoSource)
            );
            let managed = Overrides {
                source: Some("managed".into()),
                ..Overrides::default()
            };
            match AppFile::parse_with(text, "app file", &managed) {
                Ok(app) if only_source_missing => Ok((app, true)),
                _ => Err(ApiError::AppFile(first)),
            }
        }
    }
}

/// Refuses an app whose badger names an image of the server's store that is not there
/// (as a build would, but now rather than at its first workflow). `NAME` is also looked
/// for as `badgers/NAME`, and Solum's names as ours, as builds do; `auto` is chosen from
/// the source by each build. Registry badgers are checked when a build pulls them: the
/// request would otherwise wait on a registry.
pub fn check_badgers(shared: &Shared, app: &AppFile) -> Result<(), ApiError> {
    use crate::image::ImageReference;
    let names = crate::store::Layout::open(&shared.store)
        .ok()
        .and_then(|layout| layout.names().ok())
        .unwrap_or_default();
    for (index, badger) in app.all_badgers().enumerate() {
        let Ok(ImageReference::Store { name }) = badger.parse::<ImageReference>() else {
            continue;
        };
        // Exactly as a build looks the name up.
        use crate::pipeline::badger_stack::{closest, store_names, AUTO};
        if name == AUTO || store_names(&name).iter().any(|n| names.contains(n)) {
            continue;
        }
        // Built on another node and shared through the registry: workers fetch it.
        let mut shared_copy = false;
        for candidate in store_names(&name) {
            if shared.records.shared_image(&candidate)?.is_some() {
                shared_copy = true;
                break;
            }
        }
        if shared_copy {
            continue;
        }
        let badgers: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| n.starts_with("badgers/"))
            .collect();
        let field = if index == 0 {
            "badger".to_string()
        } else {
            format!("badgers[{}]", index - 1)
        };
        let has = if badgers.is_empty() {
            "none".to_string()
        } else {
            badgers.join(", ")
        };
        let suggestion = closest(&name, badgers.iter().copied())
            .map(|n| format!("; did you mean {n:?}?"))
            .unwrap_or_default();
        return Err(ApiError::invalid(
            field,
            format!(
                "no badger {name:?} in the server's store (it has: {has}){suggestion}; upload one with POST /v1/badgers, or name a registry image (docker://HOST/REPO:TAG)",
            ),
        ));
    }
    Ok(())
}

/// An app as the API shows it.
pub fn view(app: &AppRecord, base: &str) -> Value {
    let parsed = parse_app_file(&app.app_file).ok().map(|(file, _)| file);
    json!({
        "name": app.name,
        "app_file": app.app_file,
        "badger": parsed.as_ref().map(|f| f.badger.clone()),
        "source": if app.managed_source {
            json!({ "managed": true })
        } else {
            parsed.as_ref().map_or(Value::Null, |f| json!(f.source))
        },
        "managed_source": app.managed_source,
        "git": format!("{base}/git/{}.git", app.name),
        "trigger": {
            "id": app.trigger_id,
            "url": format!("{base}/v1/triggers/{}", app.trigger_id),
            "secret": app.trigger_secret,
        },
        "created_at": app.created_at,
        "updated_at": app.updated_at,
    })
}

fn body_text(body: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|_| ApiError::invalid("body", "the app file is not UTF-8"))
}

async fn create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let text = body_text(&body)?;
    let (app, managed) = parse_app_file(text)?;
    super::policy::check_app(&app, managed, &shared.sources)?;
    check_badgers(&shared, &app)?;
    let stamp = now();
    let record = AppRecord {
        name: app.name.clone(),
        app_file: text.to_string(),
        managed_source: managed,
        trigger_id: super::random_hex(16),
        trigger_secret: super::random_hex(32),
        created_at: stamp.clone(),
        updated_at: stamp,
        deleted_at: None,
    };
    if !shared.records.create_app(&record)? {
        return Err(ApiError::Conflict {
            what: "app",
            id: app.name,
        });
    }
    let repo_shared = shared.clone();
    let name = app.name.clone();
    tokio::task::spawn_blocking(move || git::create_repository(&repo_shared, &name))
        .await
        .map_err(|e| ApiError::Failed {
            what: "creating the git repository".into(),
            reason: e.to_string(),
        })??;
    let stored = shared.records.app(&app.name)?.ok_or(ApiError::NotFound {
        what: "app",
        id: app.name.clone(),
    })?;
    let base = super::public_base(&shared.options, &headers);
    Ok((StatusCode::CREATED, Json(view(&stored, &base))))
}

async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let apps = shared.records.apps()?;
    let base = super::public_base(&shared.options, &headers);
    let views: Vec<Value> = apps.iter().map(|app| view(app, &base)).collect();
    Ok(Json(json!({ "apps": views })))
}

/// A live app, or 404.
pub fn find(shared: &Shared, name: &str) -> Result<AppRecord, ApiError> {
    if !crate::manifest::app::valid_name(name) {
        return Err(ApiError::invalid(
            "app",
            format!("{name:?} is not an app name"),
        ));
    }
    shared.records.app(name)?.ok_or(ApiError::NotFound {
        what: "app",
        id: name.to_string(),
    })
}

async fn show(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let base = super::public_base(&shared.options, &headers);
    Ok(Json(view(&find(&shared, &name)?, &base)))
}

async fn replace(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    find(&shared, &name)?;
    let text = body_text(&body)?;
    let (app, managed) = parse_app_file(text)?;
    super::policy::check_app(&app, managed, &shared.sources)?;
    check_badgers(&shared, &app)?;
    if app.name != name {
        return Err(ApiError::invalid(
            "name",
            format!(
                "the app file names {:?}; an app cannot be renamed",
                app.name
            ),
        ));
    }
    if !shared.records.update_app(&name, text, managed)? {
        return Err(ApiError::NotFound {
            what: "app",
            id: name,
        });
    }
    let base = super::public_base(&shared.options, &headers);
    Ok(Json(view(&find(&shared, &name)?, &base)))
}

async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    find(&shared, &name)?;
    shared.records.delete_app(&name)?;
    Ok(StatusCode::NO_CONTENT)
}
