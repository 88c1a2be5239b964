//! What every Graph API request goes through before its route, in this order:
//!
//! 1. **Ids.** The request gets a `request-id` (a GUID); its `client-request-id` header
//!    is kept (or the request id used in its place). Both go back as headers of the
//!    answer and into the `innerError` of an error body.
//! 2. **Count.** The request is counted under its route's operation name
//!    ([`crate::GraphCounters::calls`]), whatever happens next.
//! 3. **Authentication.** `Authorization: Bearer <token>` must hold a live access
//!    token of the identity platform; otherwise 401 `InvalidAuthenticationToken`
//!    (missing, unknown, expired or revoked token). The token's user is the mailbox
//!    the request is about (`/me`).
//! 4. **Throttle** ([`crate::throttle`]): the mailbox's concurrency limit, then its
//!    rate budget; 429 with `Retry-After` when over. An admitted request stays in
//!    flight until its answer is computed.
//! 5. **Latency**, when configured ([`crate::GraphHandle::set_latency`]).
//! 6. **Faults** ([`crate::faults`]): the first queued fault whose fragment occurs in
//!    the path and query answers instead of the route.
//! 7. **Route.** The handler finds a [`Caller`] in the request's extensions
//!    (`Extension<Caller>`, or [`GraphRequest`] with the route's state and query): the
//!    user, the token's scopes, the `Prefer` header and the Graph root URL to build
//!    links with. The [`crate::GraphHandle::gate`] may hold its answer (the request is
//!    still in flight while held).

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::GraphError;
use crate::odata::QueryOptions;
use crate::prefer::Prefer;
use crate::{GraphHandle, GraphUser};

/// Who is calling, as the pipeline established it; in every routed request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's user: `/me`.
    pub user: GraphUser,
    /// The token's scopes (`Mail.Read`...), without `offline_access`.
    pub scopes: Vec<String>,
    /// The request's `Prefer` header.
    pub prefer: Prefer,
    /// `http://HOST/v1.0`, from the request's `Host`: the root of every link the
    /// answer carries (`@odata.nextLink`, `@odata.deltaLink`, `Location`).
    pub graph_root: String,
    /// The request's `request-id`.
    pub request_id: String,
}

impl Caller {
    /// Whether the token holds one of `scopes` (case-insensitive).
    pub fn has_any_scope(&self, scopes: &[&str]) -> bool {
        self.scopes
            .iter()
            .any(|held| scopes.iter().any(|s| s.eq_ignore_ascii_case(held)))
    }

    /// 403 `ErrorAccessDenied` unless the token holds one of `scopes`.
    pub fn require_any_scope(&self, scopes: &[&str]) -> Result<(), GraphError> {
        if self.has_any_scope(scopes) {
            Ok(())
        } else {
            Err(GraphError::access_denied())
        }
    }

    /// `graph_root` + `path` (`/me/mailFolders`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.graph_root)
    }
}

/// What a route's handler starts from, in one extractor: the route's state (the fake's
/// handle), the [`Caller`] the pipeline established and the request's query options.
///
/// ```no_run
/// use axum::Json;
/// use axum::response::{IntoResponse, Response};
/// use tributary_msgraph_fake::{GraphError, pipeline::GraphRequest};
///
/// # #[derive(Clone)] struct Handle;
/// // `GET /me`: who the token belongs to.
/// async fn handler(
///     GraphRequest(_handle, caller, _query): GraphRequest<Handle>,
/// ) -> Result<Response, GraphError> {
///     Ok(Json(serde_json::json!({"id": caller.user.id})).into_response())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct GraphRequest<S>(
    /// The route's state.
    pub S,
    /// Who is calling.
    pub Caller,
    /// The query string.
    pub QueryOptions,
);

impl<S> FromRequestParts<S> for GraphRequest<S>
where
    S: Clone + Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Extension(caller) = Extension::<Caller>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let query = QueryOptions::parse(parts.uri.query());
        Ok(GraphRequest(state.clone(), caller, query))
    }
}

/// A route's path parameters (as axum's `Path<T>` reads them), whose rejection is
/// Graph's 400 `BadRequest` (`The request path is not valid.`) in the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphPath<T>(pub T);

impl<S, T> FromRequestParts<S> for GraphPath<T>
where
    S: Send + Sync,
    T: Send,
    Path<T>: FromRequestParts<S, Rejection = PathRejection>,
{
    type Rejection = GraphError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, GraphError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(params)) => Ok(GraphPath(params)),
            Err(_) => Err(GraphError::invalid_path()),
        }
    }
}

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Literal(String),
    Param,
}

/// Splits an axum route pattern (`/v1.0/me/messages/{id}`).
pub(crate) fn pattern(path: &str) -> Vec<Segment> {
    path.trim_matches('/')
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                Segment::Param
            } else {
                Segment::Literal(s.to_owned())
            }
        })
        .collect()
}

fn matches(pattern: &[Segment], path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    segments.len() == pattern.len()
        && pattern.iter().zip(&segments).all(|(p, s)| match p {
            Segment::Literal(l) => l == s,
            Segment::Param => !s.is_empty(),
        })
}

/// The pipeline's state: the fake and the operation name of every mounted route.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) graph: GraphHandle,
    pub(crate) operations: Arc<Vec<(String, Vec<Segment>)>>,
}

impl ApiState {
    /// The operation of a path; literal matches win over parameters, as in axum.
    fn operation(&self, path: &str) -> String {
        let literals = |p: &[Segment]| {
            p.iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count()
        };
        self.operations
            .iter()
            .filter(|(_, p)| matches(p, path))
            .max_by_key(|(_, p)| literals(p))
            .map_or_else(|| "unknown".to_owned(), |(name, _)| name.clone())
    }
}

/// The bearer token of `Authorization`, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The request's `client-request-id`, if it is a usable header value.
pub(crate) fn client_request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_owned)
}

/// Renders an error answer with the request's ids and sets the id headers.
pub(crate) fn finish(
    mut response: Response,
    request_id: &str,
    client_request_id: &str,
) -> Response {
    if let Some(error) = response.extensions().get::<GraphError>().cloned() {
        let headers = std::mem::take(response.headers_mut());
        response = error.render(request_id, client_request_id);
        // Keep what the handler added (`Preference-Applied`...), not the old length.
        for (name, value) in &headers {
            if name != header::CONTENT_LENGTH && !response.headers().contains_key(name) {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("request-id", value);
    }
    if let Ok(value) = HeaderValue::from_str(client_request_id) {
        headers.insert("client-request-id", value);
    }
    response
}

/// The middleware in front of every mounted route.
pub(crate) async fn pipeline(
    State(api): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = crate::new_guid();
    let client_id = client_request_id(request.headers()).unwrap_or_else(|| request_id.clone());
    let operation = api.operation(request.uri().path());
    let target = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    let graph = &api.graph;
    graph.count_call(&operation);
    let token = bearer_token(request.headers());
    let (user, scopes) = match graph.authenticate(token.as_deref()) {
        Ok(found) => found,
        Err(error) => return finish(error.into_response(), &request_id, &client_id),
    };
    let in_flight = match graph.admit(&user.id) {
        Ok(in_flight) => in_flight,
        Err(error) => return finish(error.into_response(), &request_id, &client_id),
    };
    let latency = graph.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = graph.take_fault(&target) {
        drop(in_flight);
        return finish(fault.to_error().into_response(), &request_id, &client_id);
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost")
        .to_owned();
    let caller = Caller {
        user,
        scopes,
        prefer: Prefer::from_headers(request.headers()),
        graph_root: format!("http://{host}/v1.0"),
        request_id: request_id.clone(),
    };
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    drop(in_flight);
    finish(response, &request_id, &client_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_by_segment() {
        let p = pattern("/v1.0/me/messages/{id}");
        assert!(matches(&p, "/v1.0/me/messages/AAMk="));
        assert!(!matches(&p, "/v1.0/me/messages"));
        assert!(!matches(&p, "/v1.0/me/messages/a/attachments"));
        assert!(!matches(&p, "/v1.0/me/messages/"));
    }
}
