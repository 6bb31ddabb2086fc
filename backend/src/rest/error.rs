//! PostgREST's error answers: `{code, details, hint, message}` with the HTTP status
//! PostgREST gives each `PGRST…` code and each Postgres SQLSTATE.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: String,
    pub details: Option<String>,
    pub hint: Option<String>,
    pub message: String,
}

impl RestError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            details: None,
            hint: None,
            message: message.into(),
        }
    }

    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// PGRST100: a query parameter that does not parse.
    pub fn parse(what: &str, details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PGRST100",
            format!("\"failed to parse {what}\""),
        )
        .details(details)
    }

    /// PGRST102: a body that is not the JSON the request needs.
    pub fn body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "PGRST102", message)
    }

    /// PGRST205: no such table in the schema cache.
    pub fn unknown_table(table: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "PGRST205",
            format!("Could not find the table 'public.{table}' in the schema cache"),
        )
    }

    /// 42703: a column the table does not have (select, filter, order).
    pub fn unknown_column(table: &str, column: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "42703",
            format!("column {table}.{column} does not exist"),
        )
    }

    /// PGRST204: a written column the table does not have.
    pub fn unknown_write_column(table: &str, column: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PGRST204",
            format!("Could not find the '{column}' column of '{table}' in the schema cache"),
        )
    }

    /// PGRST116: `application/vnd.pgrst.object+json` asked for, and not one row came.
    pub fn not_one_row(rows: i64) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "PGRST116",
            "JSON object requested, multiple (or no) rows returned",
        )
        .details(format!("The result contains {rows} rows"))
    }

    /// PGRST301/PGRST303: a token that cannot be used.
    pub fn jwt(expired: bool) -> Self {
        if expired {
            Self::new(StatusCode::UNAUTHORIZED, "PGRST303", "JWT expired")
        } else {
            Self::new(StatusCode::UNAUTHORIZED, "PGRST301", "Invalid JWT")
        }
    }

    /// PGRST001/PGRST003: the database cannot be reached.
    pub fn unavailable(timed_out: bool) -> Self {
        if timed_out {
            Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "PGRST003",
                "Timed out acquiring connection from connection pool.",
            )
        } else {
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "PGRST001",
                "Database client error. Retrying the connection.",
            )
        }
    }

    /// A database error as PostgREST answers it. `anonymous` decides 42501: 401 for
    /// anon (sign in might help), 403 for a signed-in user.
    pub fn from_sqlx(error: &sqlx::Error, anonymous: bool) -> Self {
        match error {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
                Self {
                    status: status_for_sqlstate(&code, anonymous),
                    details: pg.and_then(|e| e.detail()).map(str::to_owned),
                    hint: pg.and_then(|e| e.hint()).map(str::to_owned),
                    message: db.message().to_owned(),
                    code,
                }
            }
            sqlx::Error::PoolTimedOut => Self::unavailable(true),
            other => {
                tracing::warn!(error = %other, "data API query failed");
                Self::unavailable(false)
            }
        }
    }
}

/// PostgREST's table from SQLSTATE to HTTP status.
fn status_for_sqlstate(code: &str, anonymous: bool) -> StatusCode {
    let class = code.get(..2).unwrap_or("");
    match code {
        "23503" | "23505" => StatusCode::CONFLICT,
        "25006" => StatusCode::METHOD_NOT_ALLOWED,
        "42883" | "42P01" => StatusCode::NOT_FOUND,
        "42P17" => StatusCode::INTERNAL_SERVER_ERROR,
        "42501" if anonymous => StatusCode::UNAUTHORIZED,
        "42501" => StatusCode::FORBIDDEN,
        "P0001" => StatusCode::BAD_REQUEST,
        "57014" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => match class {
            "08" | "53" => StatusCode::SERVICE_UNAVAILABLE,
            "0L" | "0P" | "28" => StatusCode::FORBIDDEN,
            "09" | "25" | "2D" | "38" | "39" | "3B" | "40" | "54" | "55" | "57" | "58" | "F0"
            | "HV" | "P0" | "XX" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        },
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let status = self.status;
        let unauthorized = status == StatusCode::UNAUTHORIZED && self.code.starts_with("PGRST3");
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if unauthorized {
            let challenge = format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                self.message
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_postgrest_statuses() {
        assert_eq!(status_for_sqlstate("23505", false), StatusCode::CONFLICT);
        assert_eq!(status_for_sqlstate("42501", true), StatusCode::UNAUTHORIZED);
        assert_eq!(status_for_sqlstate("42501", false), StatusCode::FORBIDDEN);
        assert_eq!(status_for_sqlstate("22P02", false), StatusCode::BAD_REQUEST);
        assert_eq!(status_for_sqlstate("42P01", false), StatusCode::NOT_FOUND);
        assert_eq!(
            status_for_sqlstate("08006", false),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
