//! The data API: `/rest/v1/<table>` with PostgREST's wire contract, as supabase-js
//! (postgrest-js) speaks it.
//!
//! A request is parsed ([`request`]), checked against the schema cache ([`schema`]) and
//! turned into one SQL statement ([`sql`]), which runs in a transaction as the token's
//! role (`anon` or `authenticated`) with its claims in `request.jwt.claims`: the
//! database's row-level security policies decide what each user may see and change,
//! exactly as on Supabase. [`check_permission`] asks the same policies on behalf of the
//! rest of the backend.
//!
//! The gateway's shadow copies (dry runs, see [`crate::shadow`]) run the same statement
//! and roll it back, answering as if it had been committed.

pub mod error;
pub mod request;
pub mod schema;
pub mod sql;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use sqlx::{Postgres, Transaction};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::AppState;
use crate::auth::AuthError;
pub use error::RestError;
use request::{Count, Prefer, Query, Return, wants_object};
pub use schema::SchemaCache;
use schema::{Schema, Table};
use sql::Body as BodyKind;

/// The routes: one per table, and PostgREST's answer for functions (not served here).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rest/v1/rpc/{function}", any(no_function))
        .route("/rest/v1/{table}", any(handle))
        .layer(cors())
}

/// Supabase's API gateway answers CORS for the data API: any origin, the methods
/// PostgREST serves, the request's headers, and the headers supabase-js reads.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            header::CONTENT_RANGE,
            header::CONTENT_TYPE,
            header::LOCATION,
            header::HeaderName::from_static("preference-applied"),
            header::HeaderName::from_static("range-unit"),
        ])
        .allow_credentials(true)
        .max_age(std::time::Duration::from_secs(86_400))
}

async fn no_function(Path(function): Path<String>) -> Response {
    RestError::new(
        StatusCode::NOT_FOUND,
        "PGRST202",
        format!("Could not find the function public.{function} in the schema cache"),
    )
    .into_response()
}

/// Who a request runs as.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The database role: `anon`, `authenticated` or `service_role`.
    pub role: String,
    /// The token's claims, as `request.jwt.claims`.
    pub claims: String,
}

impl Identity {
    pub fn anonymous() -> Self {
        Self {
            role: "anon".into(),
            claims: r#"{"role":"anon"}"#.into(),
        }
    }

    /// A signed-in user, as their token would say.
    pub fn user(user: uuid::Uuid) -> Self {
        Self {
            role: "authenticated".into(),
            claims: serde_json::json!({"sub": user, "role": "authenticated"}).to_string(),
        }
    }

    fn is_anonymous(&self) -> bool {
        self.role == "anon"
    }
}

/// The identity of `Authorization: Bearer <token>`; without a token, `anon`.
async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Identity, RestError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Identity::anonymous());
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| RestError::jwt(false))?;
    match state.auth.data_api_claims(token.trim()).await {
        Ok((role, claims)) => Ok(Identity {
            role,
            claims: claims.to_string(),
        }),
        Err(error) => {
            tracing::debug!(%error, "data API token refused");
            let expired = matches!(&error, AuthError::Invalid(e)
                if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature));
            Err(RestError::jwt(expired))
        }
    }
}

async fn handle(
    State(state): State<AppState>,
    Path(table): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    match serve(&state, &table, &method, &headers, raw.as_deref(), &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// What one statement returned.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The count asked for, if any.
    pub total: Option<i64>,
    pub rows: i64,
    /// The JSON body (empty when none was asked for).
    pub body: String,
}

async fn serve(
    state: &AppState,
    table: &str,
    method: &Method,
    headers: &HeaderMap,
    raw: Option<&str>,
    body: &[u8],
) -> Result<Response, RestError> {
    check_profile(headers)?;
    // The schema first, outside any transaction: reading it (first use, after a reload)
    // takes a pooled connection, which requests holding all the others would starve.
    let schema = current_schema(state).await?;
    let table = schema.table_or_error(table)?;
    // The token before anything touches the database: a refused token (or, below, an
    // unparsable request) never takes a pooled connection.
    let identity = identify(state, headers).await?;
    let anonymous = identity.is_anonymous();
    let fail = |e: sqlx::Error| RestError::from_sqlx(&e, anonymous);
    let query = Query::parse(raw, headers)?;
    let prefer = Prefer::from_headers(headers);
    let object = wants_object(headers);
    let read = matches!(*method, Method::GET | Method::HEAD);
    let body_kind = match (read, object, prefer.returning) {
        _ if *method == Method::HEAD => BodyKind::None,
        (true, true, _) | (false, true, Return::Representation) => BodyKind::Object,
        // headers-only: the rows are read for `Location`, not sent.
        (true, false, _) | (false, false, Return::Representation | Return::HeadersOnly) => {
            BodyKind::Array
        }
        _ => BodyKind::None,
    };
    let statement = statement(&schema, table, method, &query, &prefer, body_kind, body)?;

    let dry_run = state.shadow.is_dry_run(headers);
    let mut tx = state.db.begin().await.map_err(fail)?;
    become_identity(&mut tx, &identity, method, table)
        .await
        .map_err(fail)?;
    let mut outcome = run(&mut tx, statement).await.map_err(fail)?;
    if read && prefer.count == Some(Count::Planned) {
        outcome.total = Some(
            planned_count(&mut tx, &schema, table, &query)
                .await
                .map_err(fail)?,
        );
    } else if !read && prefer.count.is_some() {
        // A write's count is the rows it wrote.
        outcome.total = Some(outcome.rows);
    }
    // One object asked for and not one row: nothing is kept (PostgREST rolls back too).
    let refused = object && outcome.rows != 1 && (read || body_kind == BodyKind::Object);
    if refused || dry_run {
        tx.rollback().await.map_err(fail)?;
    } else {
        tx.commit().await.map_err(fail)?;
    }
    if refused {
        return Err(RestError::not_one_row(outcome.rows));
    }
    Ok(respond(method, table, &query, &prefer, object, outcome))
}

/// The schema cache, read now if need be.
async fn current_schema(state: &AppState) -> Result<Arc<Schema>, RestError> {
    state
        .schema
        .get(&state.db)
        .await
        .map_err(|e| RestError::from_sqlx(&e, false))
}

/// `Accept-Profile`/`Content-Profile` (the schema, as supabase-js sends it) must name
/// the exposed schema.
fn check_profile(headers: &HeaderMap) -> Result<(), RestError> {
    for name in ["accept-profile", "content-profile"] {
        if headers
            .get(name)
            .is_some_and(|value| value.as_bytes() != schema::SCHEMA.as_bytes())
        {
            return Err(RestError::new(
                StatusCode::NOT_ACCEPTABLE,
                "PGRST106",
                format!(
                    "The schema must be one of the following: {}",
                    schema::SCHEMA
                ),
            ));
        }
    }
    Ok(())
}

/// The statement for the request's method.
fn statement(
    schema: &Schema,
    table: &Table,
    method: &Method,
    query: &Query,
    prefer: &Prefer,
    body_kind: BodyKind,
    body: &[u8],
) -> Result<sql::Statement, RestError> {
    match *method {
        Method::GET | Method::HEAD => {
            // `estimated` is exact here: no row limit is configured, under which
            // PostgREST counts exactly too.
            let exact = matches!(prefer.count, Some(Count::Exact | Count::Estimated));
            sql::read(schema, table, query, exact, body_kind)
        }
        Method::POST => {
            let rows = json_rows(body, true)?;
            let columns = sql::write_columns(table, query, &rows)?;
            let payload = serde_json::Value::Array(rows.into_iter().map(Into::into).collect());
            sql::insert(
                schema,
                table,
                query,
                &columns,
                prefer.resolution,
                payload.to_string(),
                body_kind,
            )
        }
        Method::PATCH => {
            let rows = json_rows(body, false)?;
            let columns = sql::write_columns(table, query, &rows)?;
            let payload = rows
                .into_iter()
                .next()
                .map(serde_json::Value::Object)
                .unwrap_or_default();
            sql::update(
                schema,
                table,
                query,
                &columns,
                payload.to_string(),
                body_kind,
            )
        }
        Method::DELETE => sql::delete(schema, table, query, body_kind),
        _ => Err(RestError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "PGRST117",
            format!("Unsupported HTTP method: {method}"),
        )),
    }
}

/// The body of a write: an object, or (for inserts) an array of objects.
fn json_rows(
    body: &[u8],
    many: bool,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, RestError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| RestError::body("Empty or invalid json").details(e.to_string()))?;
    match value {
        serde_json::Value::Object(row) => Ok(vec![row]),
        serde_json::Value::Array(items) if many => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::Object(row) => Ok(row),
                _ => Err(RestError::body("All object keys must match")),
            })
            .collect(),
        _ => Err(RestError::body("Empty or invalid json")),
    }
}

/// `SET LOCAL ROLE` and the claims, for this transaction only.
pub async fn become_identity(
    tx: &mut Transaction<'_, Postgres>,
    identity: &Identity,
    method: &Method,
    table: &Table,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true),
                set_config('request.method', $3, true), set_config('request.path', $4, true)",
    )
    .bind(&identity.role)
    .bind(&identity.claims)
    .bind(method.as_str())
    .bind(format!("/{}", table.name))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Runs a statement of [`sql`] in the transaction.
pub async fn run(
    tx: &mut Transaction<'_, Postgres>,
    mut statement: sql::Statement,
) -> Result<Outcome, sqlx::Error> {
    let (total, rows, body): (Option<i64>, i64, String) = statement
        .builder
        .build_query_as()
        .fetch_one(&mut **tx)
        .await?;
    Ok(Outcome { total, rows, body })
}

/// The planner's estimate of the rows a read matches.
async fn planned_count(
    tx: &mut Transaction<'_, Postgres>,
    schema: &Schema,
    table: &Table,
    query: &Query,
) -> Result<i64, sqlx::Error> {
    let Ok(mut statement) = sql::plan_count(schema, table, query) else {
        return Ok(0);
    };
    let (plan,): (serde_json::Value,) = statement
        .builder
        .build_query_as()
        .fetch_one(&mut **tx)
        .await?;
    Ok(plan
        .pointer("/0/Plan/Plan Rows")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0) as i64)
}

/// The answer: status, `Content-Range`, `Content-Type`, `Location`, body.
fn respond(
    method: &Method,
    table: &Table,
    query: &Query,
    prefer: &Prefer,
    object: bool,
    mut outcome: Outcome,
) -> Response {
    let total = outcome
        .total
        .map_or_else(|| "*".to_owned(), |t| t.to_string());
    let (status, range) = match *method {
        Method::GET | Method::HEAD => {
            let lower = query.window.offset;
            let upper = lower + outcome.rows - 1;
            let status = match outcome.total {
                Some(t) if lower > t => {
                    return RestError::new(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "PGRST103",
                        "Requested range not satisfiable",
                    )
                    .details(format!(
                        "An offset of {lower} was requested, but there are only {t} rows."
                    ))
                    .into_response();
                }
                Some(t) if 1 + upper - lower < t => StatusCode::PARTIAL_CONTENT,
                _ => StatusCode::OK,
            };
            (status, content_range(lower, outcome.rows, &total))
        }
        Method::POST => (StatusCode::CREATED, format!("*/{total}")),
        _ if prefer.returning == Return::Representation => {
            (StatusCode::OK, content_range(0, outcome.rows, &total))
        }
        _ => (
            StatusCode::NO_CONTENT,
            content_range(0, outcome.rows, &total),
        ),
    };
    // `return=headers-only` answers where the (first) new row is, without a body.
    let location = (*method == Method::POST && prefer.returning == Return::HeadersOnly)
        .then(|| location(table, &outcome.body))
        .flatten();
    if prefer.returning == Return::HeadersOnly {
        outcome.body.clear();
    }
    let with_body = !outcome.body.is_empty();
    let mut response = if with_body {
        Response::new(Body::from(outcome.body))
    } else {
        Response::new(Body::empty())
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&range) {
        headers.insert(header::CONTENT_RANGE, value);
    }
    if with_body || *method == Method::HEAD {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(if object {
                "application/vnd.pgrst.object+json; charset=utf-8"
            } else {
                "application/json; charset=utf-8"
            }),
        );
    }
    if let Some(location) = location {
        headers.insert(header::LOCATION, location);
    }
    if let Some(applied) = prefer
        .applied()
        .and_then(|a| HeaderValue::from_str(&a).ok())
    {
        headers.insert("preference-applied", applied);
    }
    response
}

/// `/tasks?id=eq.<id>` for the first row of a JSON array of rows, by primary key.
fn location(table: &Table, rows: &str) -> Option<HeaderValue> {
    let rows: serde_json::Value = serde_json::from_str(rows).ok()?;
    let row = rows.get(0)?;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for key in &table.primary_key {
        let value = match row.get(key)? {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        query.append_pair(key, &format!("eq.{value}"));
    }
    HeaderValue::from_str(&format!("/{}?{}", table.name, query.finish())).ok()
}

/// `0-24/3573`, or `*/0` when no row came back.
fn content_range(lower: i64, rows: i64, total: &str) -> String {
    if rows == 0 {
        format!("*/{total}")
    } else {
        format!("{lower}-{}/{total}", lower + rows - 1)
    }
}

/// What [`check_permission`] asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Select,
    Update,
    Delete,
}

/// `CheckPermission(user, resource, action)`: whether the row-level security policies
/// let `user` do `action` on the row `id` of `table`. Asked as the user, in a
/// transaction that is always rolled back, so an update or delete is tried, not done.
pub async fn check_permission(
    state: &AppState,
    user: uuid::Uuid,
    table: &str,
    action: Action,
    id: uuid::Uuid,
) -> Result<bool, RestError> {
    let identity = Identity::user(user);
    let schema = current_schema(state).await?;
    let table = schema.table_or_error(table)?;
    let qualified = format!("public.{}", sql::quote(&table.name));
    let probe = match action {
        Action::Select => format!("select count(*) from {qualified} where id = $1"),
        // A no-op update still passes USING and WITH CHECK.
        Action::Update => format!(
            "with t as (update {qualified} set id = id where id = $1 returning 1) select count(*) from t"
        ),
        Action::Delete => {
            format!(
                "with t as (delete from {qualified} where id = $1 returning 1) select count(*) from t"
            )
        }
    };
    let fail = |e: sqlx::Error| RestError::from_sqlx(&e, false);
    let mut tx = state.db.begin().await.map_err(fail)?;
    become_identity(&mut tx, &identity, &Method::GET, table)
        .await
        .map_err(fail)?;
    let allowed = match sqlx::query_scalar::<_, i64>(&probe)
        .bind(id)
        .fetch_one(&mut *tx)
        .await
    {
        Ok(n) => n > 0,
        // Refused by a policy's WITH CHECK, or no privilege at all.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => false,
        Err(e) => return Err(fail(e)),
    };
    tx.rollback().await.map_err(fail)?;
    Ok(allowed)
}
