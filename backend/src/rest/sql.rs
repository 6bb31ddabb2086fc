//! SQL for data API requests, built the way PostgREST builds it: one statement per
//! request whose result is the JSON body itself (`json_agg` over the rows), the number
//! of rows, and the total when a count was asked for.
//!
//! Every identifier is checked against the [`Schema`] and then quoted; every value is a
//! bound parameter, cast to the column's type so Postgres parses it (a uuid, an enum
//! label, a date compared with a timestamp) and reports a bad one with its own error.

use sqlx::{Postgres, QueryBuilder};

use super::error::RestError;
use super::request::{
    Filter, IsValue, Operand, Operator, OrderTerm, Query, Resolution, SelectItem, Window,
};
use super::schema::{Relationship, RelationshipError, Schema, Table};

/// A statement ready to run: returns one row `(total, rows, body)`.
pub struct Statement {
    pub builder: QueryBuilder<'static, Postgres>,
}

impl std::fmt::Debug for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statement")
            .field("sql", &self.builder.sql())
            .finish()
    }
}

/// What the body of the answer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body (`return=minimal`, HEAD).
    None,
    /// A JSON array of the rows.
    Array,
    /// The one row as an object (`application/vnd.pgrst.object+json`).
    Object,
}

/// The alias of the table at nesting level `level`.
fn table_alias(level: usize) -> String {
    format!("_t{level}")
}

/// A double-quoted identifier (names come from the schema cache, quotes doubled anyway).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `f` of each column, comma-separated.
fn joined(columns: &[String], f: impl Fn(&str) -> String) -> String {
    columns.iter().map(|c| f(c)).collect::<Vec<_>>().join(", ")
}

fn qualified(table: &Table) -> String {
    format!("{}.{}", quote(super::schema::SCHEMA), quote(&table.name))
}

/// The types a `select` item may be cast to (`col::text`): named here, never pasted
/// from the request.
const CASTS: &[&str] = &[
    "text",
    "int",
    "int4",
    "int8",
    "integer",
    "bigint",
    "numeric",
    "float8",
    "boolean",
    "bool",
    "json",
    "jsonb",
    "date",
    "timestamptz",
    "uuid",
];

/// `SELECT total, rows, body FROM (SELECT … FROM table WHERE … ORDER BY … LIMIT …) _s`.
pub fn read(
    schema: &Schema,
    table: &Table,
    query: &Query,
    exact_count: bool,
    body: Body,
) -> Result<Statement, RestError> {
    let mut b = QueryBuilder::new("SELECT ");
    if exact_count {
        b.push("(SELECT pg_catalog.count(*) FROM ");
        b.push(qualified(table));
        b.push(" AS _t0");
        where_clause(&mut b, schema, table, query)?;
        b.push(")");
    } else {
        b.push("NULL::bigint");
    }
    b.push(", ");
    outer(&mut b, body);
    b.push("SELECT ");
    projection(&mut b, schema, table, &query.select, 0)?;
    b.push(" FROM ");
    b.push(qualified(table));
    b.push(" AS _t0");
    where_clause(&mut b, schema, table, query)?;
    order_by(&mut b, table, &query.order)?;
    window(&mut b, query.window);
    b.push(") _s");
    Ok(Statement { builder: b })
}

/// `EXPLAIN` of the rows a read would count, for `count=planned`.
pub fn plan_count(schema: &Schema, table: &Table, query: &Query) -> Result<Statement, RestError> {
    let mut b = QueryBuilder::new("EXPLAIN (FORMAT JSON) SELECT 1 FROM ");
    b.push(qualified(table));
    b.push(" AS _t0");
    where_clause(&mut b, schema, table, query)?;
    Ok(Statement { builder: b })
}

/// The columns a write sets, checked against the table.
pub fn write_columns(
    table: &Table,
    query: &Query,
    rows: &[serde_json::Map<String, serde_json::Value>],
) -> Result<Vec<String>, RestError> {
    let columns: Vec<String> = match &query.columns {
        Some(columns) => columns.clone(),
        None => {
            let first: Vec<String> = rows
                .first()
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default();
            let same = rows.iter().all(|r| {
                r.len() == first.len() && first.iter().all(|k| r.contains_key(k.as_str()))
            });
            if !same {
                return Err(RestError::body("All object keys must match"));
            }
            first
        }
    };
    for column in &columns {
        if table.column(column).is_none() {
            return Err(RestError::unknown_write_column(&table.name, column));
        }
    }
    Ok(columns)
}

/// `INSERT … SELECT … FROM json_populate_recordset(…)`, with `ON CONFLICT` for upserts.
pub fn insert(
    schema: &Schema,
    table: &Table,
    query: &Query,
    columns: &[String],
    resolution: Option<Resolution>,
    payload: String,
    body: Body,
) -> Result<Statement, RestError> {
    let list = joined(columns, quote);
    let mut b = QueryBuilder::new("WITH pgrst_source AS (INSERT INTO ");
    b.push(qualified(table));
    b.push(" AS _t0 (");
    b.push(&list);
    b.push(") SELECT ");
    b.push(&list);
    b.push(" FROM json_populate_recordset(NULL::");
    b.push(qualified(table));
    b.push(", CAST(");
    b.push_bind(payload);
    b.push(" AS json)) _b");
    if let Some(resolution) = resolution {
        let target = match &query.on_conflict {
            Some(target) => target.clone(),
            None => table.primary_key.clone(),
        };
        for column in &target {
            known_column(table, column)?;
        }
        b.push(" ON CONFLICT (");
        b.push(
            target
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
        );
        b.push(")");
        if resolution == Resolution::IgnoreDuplicates || columns.is_empty() {
            b.push(" DO NOTHING");
        } else {
            b.push(" DO UPDATE SET ");
            b.push(joined(columns, |c| {
                format!("{} = EXCLUDED.{}", quote(c), quote(c))
            }));
        }
    }
    b.push(" RETURNING _t0.*) ");
    returning(b, schema, table, query, body)
}

/// `UPDATE … SET col = body.col … WHERE filters`.
pub fn update(
    schema: &Schema,
    table: &Table,
    query: &Query,
    columns: &[String],
    payload: String,
    body: Body,
) -> Result<Statement, RestError> {
    let mut b = QueryBuilder::new("WITH pgrst_source AS (UPDATE ");
    b.push(qualified(table));
    b.push(" AS _t0 SET ");
    b.push(joined(columns, |c| {
        format!("{} = _b.{}", quote(c), quote(c))
    }));
    b.push(" FROM json_populate_record(NULL::");
    b.push(qualified(table));
    b.push(", CAST(");
    b.push_bind(payload);
    b.push(" AS json)) AS _b");
    where_clause(&mut b, schema, table, query)?;
    b.push(" RETURNING _t0.*) ");
    returning(b, schema, table, query, body)
}

/// `DELETE … WHERE filters`.
pub fn delete(
    schema: &Schema,
    table: &Table,
    query: &Query,
    body: Body,
) -> Result<Statement, RestError> {
    let mut b = QueryBuilder::new("WITH pgrst_source AS (DELETE FROM ");
    b.push(qualified(table));
    b.push(" AS _t0");
    where_clause(&mut b, schema, table, query)?;
    b.push(" RETURNING _t0.*) ");
    returning(b, schema, table, query, body)
}

/// The tail of a write: the written rows, projected by `select`, as the body.
fn returning(
    mut b: QueryBuilder<'static, Postgres>,
    schema: &Schema,
    table: &Table,
    query: &Query,
    body: Body,
) -> Result<Statement, RestError> {
    b.push("SELECT NULL::bigint, ");
    outer(&mut b, body);
    b.push("SELECT ");
    projection(&mut b, schema, table, &query.select, 0)?;
    b.push(" FROM pgrst_source AS _t0) _s");
    Ok(Statement { builder: b })
}

/// `count(_s), <body> FROM (` — the row count and the body over the rows of `_s`.
fn outer(b: &mut QueryBuilder<'static, Postgres>, body: Body) {
    b.push("pg_catalog.count(_s), ");
    b.push(match body {
        Body::None => "''::text",
        Body::Array => "coalesce(json_agg(_s), '[]')::text",
        Body::Object => "coalesce((json_agg(_s) -> 0)::text, 'null')",
    });
    b.push(" FROM (");
}

fn known_column<'t>(table: &'t Table, name: &str) -> Result<&'t super::schema::Column, RestError> {
    table
        .column(name)
        .ok_or_else(|| RestError::unknown_column(&table.name, name))
}

/// The `select` list at nesting `level`.
fn projection(
    b: &mut QueryBuilder<'static, Postgres>,
    schema: &Schema,
    table: &Table,
    items: &[SelectItem],
    level: usize,
) -> Result<(), RestError> {
    let me = table_alias(level);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        match item {
            SelectItem::Star => {
                b.push(format!("{me}.*"));
            }
            SelectItem::Column { name, alias, cast } => {
                known_column(table, name)?;
                b.push(format!("{me}.{}", quote(name)));
                if let Some(cast) = cast {
                    let cast = cast.to_ascii_lowercase();
                    if !CASTS.contains(&cast.as_str()) {
                        return Err(RestError::parse(
                            "select parameter",
                            format!("cannot cast to \"{cast}\""),
                        ));
                    }
                    b.push(format!("::{cast}"));
                }
                b.push(format!(" AS {}", quote(alias.as_deref().unwrap_or(name))));
            }
            SelectItem::Embed {
                target,
                alias,
                hint,
                items,
                ..
            } => {
                let (name, relationship) = relationship(schema, table, target, hint.as_deref())?;
                let embedded = schema.table_or_error(&name)?;
                let child = table_alias(level + 1);
                b.push("(SELECT ");
                match relationship {
                    Relationship::ManyToOne(_) => b.push("row_to_json(_e)"),
                    Relationship::OneToMany(_) => b.push("coalesce(json_agg(_e), '[]')"),
                };
                b.push(" FROM (SELECT ");
                projection(b, schema, embedded, items, level + 1)?;
                b.push(format!(" FROM {} AS {child} WHERE ", qualified(embedded)));
                b.push(join_condition(&relationship, &me, &child));
                b.push(format!(
                    ") _e) AS {}",
                    quote(alias.as_deref().unwrap_or(target))
                ));
            }
        }
    }
    Ok(())
}

/// `child.ref = parent.fk AND …` for a relationship seen from the parent.
fn join_condition(relationship: &Relationship, parent: &str, child: &str) -> String {
    // (child column, parent column) pairs.
    let (child_columns, parent_columns) = match relationship {
        // The parent's columns point at the child's referenced columns.
        Relationship::ManyToOne(fk) => (&fk.to.columns, &fk.from.columns),
        // The child's columns point at the parent's referenced columns.
        Relationship::OneToMany(fk) => (&fk.from.columns, &fk.to.columns),
    };
    let pairs = child_columns.iter().zip(parent_columns);
    pairs
        .map(|(c, p)| format!("{child}.{} = {parent}.{}", quote(c), quote(p)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn relationship(
    schema: &Schema,
    table: &Table,
    target: &str,
    hint: Option<&str>,
) -> Result<(String, Relationship), RestError> {
    schema
        .relationship(&table.name, target, hint)
        .map_err(|error| match error {
            RelationshipError::NotFound => RestError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "PGRST200",
                format!(
                    "Could not find a relationship between '{}' and '{target}' in the schema cache",
                    table.name
                ),
            )
            .hint(format!(
                "Perhaps you meant '{}' instead of '{target}'.",
                table.name
            )),
            RelationshipError::Ambiguous(names) => RestError::new(
                axum::http::StatusCode::MULTIPLE_CHOICES,
                "PGRST201",
                format!(
                    "Could not embed because more than one relationship was found for '{}' and '{target}'",
                    table.name
                ),
            )
            .details(names.join(", "))
            .hint(format!(
                "Try changing '{target}' to one of: {}",
                names
                    .iter()
                    .map(|n| format!("'{target}!{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        })
}

/// ` WHERE …` for the request's filters and its `!inner` embeddings, or nothing.
fn where_clause(
    b: &mut QueryBuilder<'static, Postgres>,
    schema: &Schema,
    table: &Table,
    query: &Query,
) -> Result<(), RestError> {
    let inner_embeds: Vec<&SelectItem> = query
        .select
        .iter()
        .filter(|i| matches!(i, SelectItem::Embed { inner: true, .. }))
        .collect();
    if query.filters.is_empty() && inner_embeds.is_empty() {
        return Ok(());
    }
    b.push(" WHERE ");
    let mut first = true;
    for filter in &query.filters {
        if !first {
            b.push(" AND ");
        }
        first = false;
        condition(b, table, filter)?;
    }
    for item in inner_embeds {
        let SelectItem::Embed { target, hint, .. } = item else {
            continue;
        };
        if !first {
            b.push(" AND ");
        }
        first = false;
        let (name, relationship) = relationship(schema, table, target, hint.as_deref())?;
        let embedded = schema.table_or_error(&name)?;
        b.push(format!(
            "EXISTS (SELECT 1 FROM {} AS _i WHERE {})",
            qualified(embedded),
            join_condition(&relationship, "_t0", "_i")
        ));
    }
    Ok(())
}

/// One filter, written against `_t0`.
fn condition(
    b: &mut QueryBuilder<'static, Postgres>,
    table: &Table,
    filter: &Filter,
) -> Result<(), RestError> {
    match filter {
        Filter::Group {
            negated,
            any,
            filters,
        } => {
            if *negated {
                b.push("NOT ");
            }
            b.push("(");
            if filters.is_empty() {
                b.push(if *any { "FALSE" } else { "TRUE" });
            }
            for (i, f) in filters.iter().enumerate() {
                if i > 0 {
                    b.push(if *any { " OR " } else { " AND " });
                }
                condition(b, table, f)?;
            }
            b.push(")");
        }
        Filter::Condition {
            column,
            negated,
            operator,
            operand,
        } => {
            let col = known_column(table, column)?;
            let lhs = format!("_t0.{}", quote(&col.name));
            if *negated {
                b.push("NOT ");
            }
            b.push("(");
            b.push(&lhs);
            match (operator, operand) {
                (Operator::Is, Operand::Is(value)) => {
                    b.push(match value {
                        IsValue::Null => " IS NULL",
                        IsValue::NotNull => " IS NOT NULL",
                        IsValue::True => " IS TRUE",
                        IsValue::False => " IS FALSE",
                        IsValue::Unknown => " IS UNKNOWN",
                    });
                }
                (Operator::In, Operand::List(values)) => {
                    b.push(" = ANY(CAST(");
                    b.push_bind(values.clone());
                    b.push(format!(" AS {}[]))", element_type(&col.sql_type)));
                }
                (Operator::Like | Operator::Ilike, Operand::Value(value)) => {
                    b.push(if *operator == Operator::Like {
                        " LIKE "
                    } else {
                        " ILIKE "
                    });
                    b.push_bind(value.replace('*', "%"));
                }
                (Operator::Match | Operator::Imatch, Operand::Value(value)) => {
                    b.push(if *operator == Operator::Match {
                        " ~ "
                    } else {
                        " ~* "
                    });
                    b.push_bind(value.clone());
                }
                (op, Operand::Value(value)) => {
                    b.push(match op {
                        Operator::Eq => " = ",
                        Operator::Neq => " <> ",
                        Operator::Gt => " > ",
                        Operator::Gte => " >= ",
                        Operator::Lt => " < ",
                        Operator::Lte => " <= ",
                        Operator::IsDistinct => " IS DISTINCT FROM ",
                        Operator::Contains => " @> ",
                        Operator::ContainedIn => " <@ ",
                        _ => " && ",
                    });
                    b.push("CAST(");
                    b.push_bind(value.clone());
                    b.push(format!(" AS {})", col.sql_type));
                }
                _ => {
                    return Err(RestError::parse(
                        "filter",
                        format!("{column}: operator and value do not fit"),
                    ));
                }
            }
            b.push(")");
        }
    }
    Ok(())
}

/// The element type of an array column's type (`text[]` → `text`), else the type.
fn element_type(sql_type: &str) -> &str {
    sql_type.strip_suffix("[]").unwrap_or(sql_type)
}

fn order_by(
    b: &mut QueryBuilder<'static, Postgres>,
    table: &Table,
    order: &[OrderTerm],
) -> Result<(), RestError> {
    for (i, term) in order.iter().enumerate() {
        known_column(table, &term.column)?;
        b.push(if i == 0 { " ORDER BY " } else { ", " });
        b.push(format!(
            "_t0.{} {}",
            quote(&term.column),
            if term.descending { "DESC" } else { "ASC" }
        ));
        match term.nulls_first {
            Some(true) => b.push(" NULLS FIRST"),
            Some(false) => b.push(" NULLS LAST"),
            None => b,
        };
    }
    Ok(())
}

fn window(b: &mut QueryBuilder<'static, Postgres>, window: Window) {
    if let Some(limit) = window.limit {
        b.push(" LIMIT ");
        b.push_bind(limit);
    }
    if window.offset > 0 {
        b.push(" OFFSET ");
        b.push_bind(window.offset);
    }
}
