//! Where a write (`PUT …/content`, an upload session) lands, and how it is answered.

use axum::response::Response;

use super::answers::{invalid_name_response, item_not_found};
use super::store::{GraphStore, PutOutcome};
use crate::errors::{GRAPH_JSON, graph_error, json_response};
use crate::state::Shared;

/// Where a write lands: an existing item, or a name under a parent.
pub(crate) enum Target {
    Existing(String),
    New { parent: String, name: String },
}

/// Resolves the target of `PUT …/content` or `createUploadSession`, creating missing parent
/// folders of a path (UNCONFIRMED: the docs do not say whether missing parents are created).
pub(crate) fn resolve_target(graph: &mut GraphStore, base: &str, path: &[String]) -> Result<Target, Response> {
    if let Some(id) = graph.resolve(base, path) {
        return Ok(Target::Existing(id));
    }
    let Some((name, dirs)) = path.split_last() else {
        return Err(item_not_found());
    };
    for segment in path {
        if let Some(resp) = invalid_name_response(segment) {
            return Err(resp);
        }
    }
    if graph.get(base).is_none() {
        return Err(item_not_found());
    }
    let Some(parent) = graph.ensure_folders(base, dirs) else {
        return Err(graph_error(
            409,
            "nameAlreadyExists",
            "A file exists where a folder is needed.",
        ));
    };
    Ok(Target::New {
        parent,
        name: name.clone(),
    })
}

/// Answers a write: 201 Created for a new file, 200 OK for a replaced one (the docs' examples
/// show 201 for both; 200 on replace is UNCONFIRMED), 409 `nameAlreadyExists` on a `fail`
/// conflict (<https://learn.microsoft.com/graph/api/driveitem-put-content>).
pub(crate) fn put_outcome(shared: &Shared, graph: &GraphStore, outcome: PutOutcome) -> Response {
    match outcome {
        PutOutcome::Created(item) => {
            json_response(201, &graph.item_json(&item, shared.content_base.as_str()), GRAPH_JSON)
        }
        PutOutcome::Replaced(item) => {
            json_response(200, &graph.item_json(&item, shared.content_base.as_str()), GRAPH_JSON)
        }
        PutOutcome::NameConflict => graph_error(409, "nameAlreadyExists", "The specified item name already exists."),
        PutOutcome::NotAFile => graph_error(409, "nameAlreadyExists", "A folder with the same name already exists."),
    }
}
