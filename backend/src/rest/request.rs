//! What a data API request asks for, parsed from PostgREST's URL grammar and headers:
//! `select`, horizontal filters (with `not.`, `or=(…)`, `and=(…)`), `order`, `limit`,
//! `offset`, `on_conflict`, `columns`, and the `Prefer`, `Accept` and `Range` headers.
//!
//! Nothing here knows the schema: names are checked when the SQL is built
//! ([`super::sql`]), and values are only ever bound as parameters.

use axum::http::HeaderMap;

use super::error::RestError;

/// One item of `select`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem {
    /// `*`
    Star,
    /// `col`, `alias:col`, `col::type`
    Column {
        name: String,
        alias: Option<String>,
        cast: Option<String>,
    },
    /// `table(…)`, `alias:table!hint(…)`, `table!inner(…)`
    Embed {
        target: String,
        alias: Option<String>,
        hint: Option<String>,
        inner: bool,
        items: Vec<SelectItem>,
    },
}

/// A filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
    Ilike,
    Match,
    Imatch,
    Is,
    IsDistinct,
    In,
    Contains,
    ContainedIn,
    Overlaps,
}

impl Operator {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "eq" => Self::Eq,
            "neq" => Self::Neq,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "like" => Self::Like,
            "ilike" => Self::Ilike,
            "match" => Self::Match,
            "imatch" => Self::Imatch,
            "is" => Self::Is,
            "isdistinct" => Self::IsDistinct,
            "in" => Self::In,
            "cs" => Self::Contains,
            "cd" => Self::ContainedIn,
            "ov" => Self::Overlaps,
            _ => return None,
        })
    }
}

/// The right-hand side of `is`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    Null,
    NotNull,
    True,
    False,
    Unknown,
}

/// The value a filter compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Value(String),
    List(Vec<String>),
    Is(IsValue),
}

/// A horizontal filter: one condition, or a group of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Condition {
        column: String,
        negated: bool,
        operator: Operator,
        operand: Operand,
    },
    Group {
        negated: bool,
        any: bool,
        filters: Vec<Filter>,
    },
}

/// One `order` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm {
    pub column: String,
    pub descending: bool,
    /// `Some(true)`: nulls first; `Some(false)`: nulls last; `None`: Postgres's default.
    pub nulls_first: Option<bool>,
}

/// `Prefer: return=…`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Return {
    #[default]
    Minimal,
    Representation,
    HeadersOnly,
}

/// `Prefer: count=…`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Exact,
    Planned,
    Estimated,
}

/// `Prefer: resolution=…`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    MergeDuplicates,
    IgnoreDuplicates,
}

/// The `Prefer` header's settings the data API honours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefer {
    pub returning: Return,
    pub count: Option<Count>,
    pub resolution: Option<Resolution>,
}

impl Prefer {
    /// Every `Prefer` header, comma-separated settings; unknown settings are ignored,
    /// as PostgREST does without `handling=strict`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut prefer = Self::default();
        let settings = headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim);
        for setting in settings {
            match setting {
                "return=minimal" => prefer.returning = Return::Minimal,
                "return=representation" => prefer.returning = Return::Representation,
                "return=headers-only" => prefer.returning = Return::HeadersOnly,
                "count=exact" => prefer.count = Some(Count::Exact),
                "count=planned" => prefer.count = Some(Count::Planned),
                "count=estimated" => prefer.count = Some(Count::Estimated),
                "resolution=merge-duplicates" => {
                    prefer.resolution = Some(Resolution::MergeDuplicates);
                }
                "resolution=ignore-duplicates" => {
                    prefer.resolution = Some(Resolution::IgnoreDuplicates);
                }
                _ => {}
            }
        }
        prefer
    }

    /// The `Preference-Applied` header value, when any preference was applied.
    pub fn applied(&self) -> Option<String> {
        let mut applied = Vec::new();
        if let Some(resolution) = self.resolution {
            applied.push(match resolution {
                Resolution::MergeDuplicates => "resolution=merge-duplicates",
                Resolution::IgnoreDuplicates => "resolution=ignore-duplicates",
            });
        }
        match self.returning {
            Return::Minimal => {}
            Return::Representation => applied.push("return=representation"),
            Return::HeadersOnly => applied.push("return=headers-only"),
        }
        if let Some(count) = self.count {
            applied.push(match count {
                Count::Exact => "count=exact",
                Count::Planned => "count=planned",
                Count::Estimated => "count=estimated",
            });
        }
        (!applied.is_empty()).then(|| applied.join(", "))
    }
}

/// The media type `.single()` and `.maybeSingle()` ask for.
pub const OBJECT_MEDIA_TYPE: &str = "application/vnd.pgrst.object+json";

/// Whether the client asked for one object rather than an array.
pub fn wants_object(headers: &HeaderMap) -> bool {
    headers
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().starts_with(OBJECT_MEDIA_TYPE))
        })
}

/// The rows a request asks for: `offset` and, when bounded, the number of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub offset: i64,
    pub limit: Option<i64>,
}

/// Everything in the URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub filters: Vec<Filter>,
    pub order: Vec<OrderTerm>,
    pub window: Window,
    pub on_conflict: Option<Vec<String>>,
    pub columns: Option<Vec<String>>,
}

impl Query {
    /// Parses the raw query string (percent-encoded, `+` for spaces) and applies the
    /// `Range` header, as PostgREST does: `limit`/`offset` narrow the header's range.
    pub fn parse(raw: Option<&str>, headers: &HeaderMap) -> Result<Self, RestError> {
        let mut query = Query {
            select: vec![SelectItem::Star],
            ..Query::default()
        };
        let mut limit = None;
        let mut offset = None;
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "select" => query.select = parse_select(&value)?,
                "order" => query.order = parse_order(&value)?,
                "limit" => limit = Some(parse_count("limit", &value)?),
                "offset" => offset = Some(parse_count("offset", &value)?),
                "on_conflict" => query.on_conflict = Some(parse_names("on_conflict", &value)?),
                "columns" => query.columns = Some(parse_names("columns", &value)?),
                "or" | "and" | "not.or" | "not.and" => {
                    let negated = key.starts_with("not.");
                    let any = key.ends_with("or");
                    let inner = value
                        .strip_prefix('(')
                        .and_then(|v| v.strip_suffix(')'))
                        .ok_or_else(|| {
                            RestError::parse(
                                "logic tree",
                                format!("{key}={value}: expected a parenthesised list"),
                            )
                        })?;
                    query.filters.push(Filter::Group {
                        negated,
                        any,
                        filters: parse_tree(inner)?,
                    });
                }
                column => query.filters.push(parse_filter(column, &value)?),
            }
        }
        query.window = window(range_header(headers)?, offset, limit);
        Ok(query)
    }
}

/// `Range: 0-24` (items); `None` when absent or open.
fn range_header(headers: &HeaderMap) -> Result<Option<(i64, Option<i64>)>, RestError> {
    let Some(value) = headers.get("range").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let spec = value.trim().trim_start_matches("items=");
    let (start, end) = spec
        .split_once('-')
        .ok_or_else(|| RestError::parse("Range header", format!("{value}: expected start-end")))?;
    let bad = || RestError::parse("Range header", format!("{value}: not a range of rows"));
    let start: i64 = start.trim().parse().map_err(|_| bad())?;
    let end = match end.trim() {
        "" => None,
        end => Some(end.parse::<i64>().map_err(|_| bad())?),
    };
    if start < 0 || end.is_some_and(|e| e < start) {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

/// The header's range narrowed by `offset` and `limit`.
fn window(header: Option<(i64, Option<i64>)>, offset: Option<i64>, limit: Option<i64>) -> Window {
    let (start, end) = header.unwrap_or((0, None));
    let start = start.saturating_add(offset.unwrap_or(0));
    let header_limit = end.map(|end| (end - start + 1).max(0));
    let limit = match (header_limit, limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Window {
        offset: start,
        limit,
    }
}

fn parse_count(what: &str, value: &str) -> Result<i64, RestError> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| RestError::parse(what, format!("{what}={value}: not a count of rows")))
}

/// A comma-separated list of names, each optionally double-quoted (postgrest-js quotes
/// the `columns` of a bulk insert).
fn parse_names(what: &str, value: &str) -> Result<Vec<String>, RestError> {
    let names: Vec<String> = split_top(value)
        .into_iter()
        .map(|n| unquote(n.trim()))
        .collect();
    if names.iter().any(String::is_empty) {
        return Err(RestError::parse(
            what,
            format!("{what}={value}: empty name"),
        ));
    }
    Ok(names)
}

/// Splits at commas outside parentheses and double quotes.
fn split_top(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0usize, false, false, 0);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `"a \"b\""` → `a "b"`; anything not quoted is kept as is.
fn unquote(text: &str) -> String {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => text.to_owned(),
    }
}

/// A name as PostgREST accepts it in `select`, `order` and filters (no operators,
/// no JSON paths): anything but the grammar's punctuation.
fn check_name<'a>(what: &str, name: &'a str) -> Result<&'a str, RestError> {
    let ok = !name.is_empty()
        && !name.contains(['(', ')', ',', ':', '!', '"', '.'])
        && !name.contains("->");
    if ok {
        Ok(name)
    } else {
        Err(RestError::parse(
            what,
            format!("unexpected name \"{name}\""),
        ))
    }
}

/// `select=*, title, alias:col, col::text, subjects(name), s:subjects!fk(*)`
pub fn parse_select(text: &str) -> Result<Vec<SelectItem>, RestError> {
    let stripped: String = strip_spaces(text);
    if stripped.is_empty() {
        return Ok(vec![SelectItem::Star]);
    }
    split_top(&stripped)
        .into_iter()
        .map(parse_select_item)
        .collect()
}

/// Whitespace outside double quotes carries no meaning (postgrest-js strips it too).
fn strip_spaces(text: &str) -> String {
    let mut quoted = false;
    text.chars()
        .filter(|c| {
            if *c == '"' {
                quoted = !quoted;
            }
            quoted || !c.is_whitespace()
        })
        .collect()
}

fn parse_select_item(item: &str) -> Result<SelectItem, RestError> {
    const WHAT: &str = "select parameter";
    if item == "*" {
        return Ok(SelectItem::Star);
    }
    // An alias ends at the first ':' that is not part of a '::' cast.
    let (alias, rest) = match item.find(':') {
        Some(i) if !item[i..].starts_with("::") && !item[..i].contains('(') => {
            (Some(unquote(&item[..i])), &item[i + 1..])
        }
        _ => (None, item),
    };
    if let Some(open) = rest.find('(') {
        let inner = rest[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| RestError::parse(WHAT, format!("unclosed parenthesis in \"{item}\"")))?;
        let mut head = rest[..open].split('!');
        let target = check_name(WHAT, head.next().unwrap_or(""))?.to_owned();
        let (mut hint, mut inner_join) = (None, false);
        for modifier in head {
            match modifier {
                "inner" => inner_join = true,
                "left" => inner_join = false,
                other => hint = Some(check_name(WHAT, other)?.to_owned()),
            }
        }
        return Ok(SelectItem::Embed {
            target,
            alias,
            hint,
            inner: inner_join,
            items: if inner.is_empty() {
                vec![SelectItem::Star]
            } else {
                parse_select(inner)?
            },
        });
    }
    let (name, cast) = match rest.split_once("::") {
        Some((name, cast)) => (name, Some(cast.to_owned())),
        None => (rest, None),
    };
    let name = unquote(name);
    check_name(WHAT, &name)?;
    Ok(SelectItem::Column { name, alias, cast })
}

/// `order=due_date.asc.nullslast,created_at.desc`
fn parse_order(text: &str) -> Result<Vec<OrderTerm>, RestError> {
    const WHAT: &str = "order";
    strip_spaces(text)
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|term| {
            let mut parts = term.split('.');
            let column = check_name(WHAT, parts.next().unwrap_or(""))?.to_owned();
            let mut order = OrderTerm {
                column,
                descending: false,
                nulls_first: None,
            };
            for part in parts {
                match part {
                    "asc" => order.descending = false,
                    "desc" => order.descending = true,
                    "nullsfirst" => order.nulls_first = Some(true),
                    "nullslast" => order.nulls_first = Some(false),
                    other => {
                        return Err(RestError::parse(
                            WHAT,
                            format!("unexpected \"{other}\" in \"{term}\""),
                        ));
                    }
                }
            }
            Ok(order)
        })
        .collect()
}

/// A filter given as a query parameter: `column=[not.]op.value`.
fn parse_filter(column: &str, value: &str) -> Result<Filter, RestError> {
    let column = check_name("filter", column)?;
    parse_condition(column, value, false)
}

/// `[not.]op.value` against `column`. Inside a logic tree a value may be double-quoted
/// to hold the tree's punctuation (`title.eq."a, b"`).
fn parse_condition(column: &str, text: &str, in_tree: bool) -> Result<Filter, RestError> {
    let (negated, text) = match text.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (op, value) = text.split_once('.').ok_or_else(|| {
        RestError::parse(
            "filter",
            format!("{column}={text}: expected operator.value"),
        )
    })?;
    // Full-text search and other operators are not part of this data API.
    let operator = Operator::parse(op).ok_or_else(|| {
        RestError::parse(
            &format!("filter ({op})"),
            format!("unknown operator \"{op}\""),
        )
    })?;
    let operand = match operator {
        Operator::In => {
            let inner = value
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| {
                    RestError::parse("filter (in)", format!("{value}: expected (a,b,…)"))
                })?;
            Operand::List(if inner.is_empty() {
                Vec::new()
            } else {
                split_top(inner).into_iter().map(unquote).collect()
            })
        }
        Operator::Is => Operand::Is(match value.to_ascii_lowercase().as_str() {
            "null" => IsValue::Null,
            "not_null" => IsValue::NotNull,
            "true" => IsValue::True,
            "false" => IsValue::False,
            "unknown" => IsValue::Unknown,
            _ => {
                return Err(RestError::parse(
                    "filter (is)",
                    format!("{value}: expected null, not_null, true, false or unknown"),
                ));
            }
        }),
        _ if in_tree => Operand::Value(unquote(value)),
        _ => Operand::Value(value.to_owned()),
    };
    Ok(Filter::Condition {
        column: column.to_owned(),
        negated,
        operator,
        operand,
    })
}

/// The inside of `or=(…)`: conditions `col.op.value` and nested `and(…)`/`or(…)`.
fn parse_tree(text: &str) -> Result<Vec<Filter>, RestError> {
    split_top(text)
        .into_iter()
        .map(|item| {
            let (negated, rest) = match item.strip_prefix("not.") {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            for (prefix, any) in [("or(", true), ("and(", false)] {
                if let Some(inner) = rest.strip_prefix(prefix).and_then(|r| r.strip_suffix(')')) {
                    return Ok(Filter::Group {
                        negated,
                        any,
                        filters: parse_tree(inner)?,
                    });
                }
            }
            let (column, condition) = item.split_once('.').ok_or_else(|| {
                RestError::parse(
                    "logic tree",
                    format!("\"{item}\": expected column.op.value"),
                )
            })?;
            let column = check_name("logic tree", column)?;
            parse_condition(column, condition, true)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn query(raw: &str) -> Query {
        Query::parse(Some(raw), &HeaderMap::new()).expect("parses")
    }

    #[test]
    fn select_with_an_embedded_resource() {
        let q = query("select=*,%20subjects(name)");
        assert_eq!(
            q.select,
            vec![
                SelectItem::Star,
                SelectItem::Embed {
                    target: "subjects".into(),
                    alias: None,
                    hint: None,
                    inner: false,
                    items: vec![SelectItem::Column {
                        name: "name".into(),
                        alias: None,
                        cast: None
                    }],
                }
            ]
        );
        let q = query("select=t:title,due_date::text,s:subjects!inner(*)");
        assert!(matches!(&q.select[0], SelectItem::Column { alias: Some(a), .. } if a == "t"));
        assert!(matches!(&q.select[1], SelectItem::Column { cast: Some(c), .. } if c == "text"));
        assert!(matches!(
            &q.select[2],
            SelectItem::Embed { inner: true, .. }
        ));
    }

    #[test]
    fn filters_not_in_and_logic_trees() {
        let q = query(
            "status=not.in.(completed,%22on,hold%22)&or=(priority.eq.high,and(points.gte.3,title.like.*x*))",
        );
        assert_eq!(
            q.filters[0],
            Filter::Condition {
                column: "status".into(),
                negated: true,
                operator: Operator::In,
                operand: Operand::List(vec!["completed".into(), "on,hold".into()]),
            }
        );
        let Filter::Group { any, filters, .. } = &q.filters[1] else {
            panic!("a group")
        };
        assert!(any);
        assert!(
            matches!(&filters[1], Filter::Group { any: false, filters, .. } if filters.len() == 2)
        );
    }

    #[test]
    fn values_with_dots_stay_whole() {
        let q = query("created_at=gte.2026-01-01T00:00:00.5Z&title=eq.a.b.c");
        assert!(
            matches!(&q.filters[1], Filter::Condition { operand: Operand::Value(v), .. } if v == "a.b.c")
        );
    }

    #[test]
    fn range_header_and_limit_narrow_each_other() {
        let mut headers = HeaderMap::new();
        headers.insert("range", HeaderValue::from_static("10-19"));
        let q = Query::parse(Some("limit=5&offset=2"), &headers).expect("parses");
        assert_eq!(
            q.window,
            Window {
                offset: 12,
                limit: Some(5)
            }
        );
        let q = Query::parse(None, &headers).expect("parses");
        assert_eq!(
            q.window,
            Window {
                offset: 10,
                limit: Some(10)
            }
        );
    }

    #[test]
    fn hostile_input_is_a_parse_error_not_a_panic() {
        for raw in [
            "select=(",
            "select=a(b",
            "order=x.sideways",
            "title=zz.1",
            "title=eq",
            "or=priority.eq.high",
            "limit=-1",
            "id=in.1,2",
            "select=a%22;drop",
            "done=is.maybe",
            "x->y=eq.1",
        ] {
            let error = Query::parse(Some(raw), &HeaderMap::new()).expect_err(raw);
            assert_eq!(error.code, "PGRST100", "{raw}");
        }
    }

    #[test]
    fn prefer_settings() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "prefer",
            HeaderValue::from_static("return=representation,count=exact"),
        );
        headers.append(
            "prefer",
            HeaderValue::from_static("resolution=merge-duplicates"),
        );
        let prefer = Prefer::from_headers(&headers);
        assert_eq!(prefer.returning, Return::Representation);
        assert_eq!(prefer.count, Some(Count::Exact));
        assert_eq!(prefer.resolution, Some(Resolution::MergeDuplicates));
    }
}
