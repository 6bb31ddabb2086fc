//! The data API (`/rest/v1/<table>`): PostgREST's wire contract (statuses, headers,
//! bodies, error codes), row-level security decided by Postgres, dry runs, the schema
//! cache's reload on `NOTIFY pgrst`, revoked sessions, and `check_permission`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use studyflow_testkit::stack::{DEMO_USER_EMAIL, DEMO_USER_ID};
use studyflow_testkit::{database, tokens};
use uuid::Uuid;

use crate::support::{Answer, JWT_SECRET, TestApp};

/// A second user, owner of rows the demo user must never reach.
const OTHER_ID: &str = "7b0c3a43-58a5-4a45-9c61-3d9a4f0c2b11";
const OTHER_EMAIL: &str = "other@example.com";

/// An error answer with PostgREST's body: `{code, details, hint, message}`.
fn assert_rest_error(got: &Answer, status: u16, code: &str) {
    assert_eq!(
        (got.status, got.body["code"].as_str()),
        (status, Some(code)),
        "{}",
        got.text
    );
    for key in ["details", "hint", "message"] {
        assert!(got.body.get(key).is_some(), "{key} in {}", got.text);
    }
}

async fn start(name: &str) -> TestApp {
    let app = TestApp::start(name).await;
    let url = app.state.config.database.url.clone();
    let other = Uuid::parse_str(OTHER_ID).expect("uuid");
    database::ensure_user(
        secrecy::ExposeSecret::expose_secret(&url),
        other,
        OTHER_EMAIL,
    )
    .await
    .expect("second user");
    app
}

fn bearer(token: String) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn demo() -> (&'static str, String) {
    bearer(tokens::access_token(
        JWT_SECRET,
        DEMO_USER_ID,
        DEMO_USER_EMAIL,
        3600,
    ))
}

fn anon() -> (&'static str, String) {
    bearer(tokens::anon_key(JWT_SECRET))
}

async fn rest(
    app: &TestApp,
    method: Method,
    target: &str,
    headers: &[(&str, String)],
    body: Option<Value>,
) -> Answer {
    let mut all = headers.to_vec();
    let body = body.map(|b| {
        all.push(("content-type", "application/json".into()));
        b.to_string().into_bytes()
    });
    app.request(method, &format!("/rest/v1/{target}"), &all, body)
        .await
}

/// A GET as the demo user.
async fn read(app: &TestApp, target: &str) -> Answer {
    rest(app, Method::GET, target, &[demo()], None).await
}

/// The same rows by SQL, as JSON, for comparing with the API's answers.
async fn sql_json(app: &TestApp, sql: &str) -> Value {
    sqlx::query_scalar::<_, Value>(&format!(
        "select coalesce(json_agg(t), '[]'::json) from ({sql}) t"
    ))
    .fetch_one(&app.db)
    .await
    .expect("sql")
}

/// Three subjects and five tasks for the demo user, one of each for the other user.
async fn seed(app: &TestApp) {
    sqlx::raw_sql(&format!(
        "insert into subjects (id, user_id, name) values
           ('00000000-0000-0000-0000-0000000000a1', '{DEMO_USER_ID}', 'Maths'),
           ('00000000-0000-0000-0000-0000000000a2', '{DEMO_USER_ID}', 'Physics'),
           ('00000000-0000-0000-0000-0000000000b1', '{OTHER_ID}', 'Maths');
         insert into tasks (user_id, subject_id, title, status, priority, due_date, tags, points) values
           ('{DEMO_USER_ID}', '00000000-0000-0000-0000-0000000000a1', 'Algebra', 'todo', 'high', '2026-12-01T10:00:00Z', '{{exam,hard}}', 3),
           ('{DEMO_USER_ID}', '00000000-0000-0000-0000-0000000000a1', 'Geometry', 'completed', 'low', '2026-12-03T10:00:00Z', '{{}}', 1),
           ('{DEMO_USER_ID}', '00000000-0000-0000-0000-0000000000a2', 'Optics', 'in_progress', 'urgent', null, '{{lab}}', 5),
           ('{DEMO_USER_ID}', null, 'Read, \"carefully\"', 'todo', 'medium', '2026-12-02T23:30:00Z', '{{}}', null),
           ('{DEMO_USER_ID}', null, 'Essay', 'on_hold', 'medium', '2026-11-20T08:00:00Z', '{{hard}}', 2),
           ('{OTHER_ID}', '00000000-0000-0000-0000-0000000000b1', 'Secret', 'todo', 'high', '2026-12-01T10:00:00Z', '{{}}', 9);
         insert into study_sessions (user_id, subject_id, title, duration, started_at) values
           ('{DEMO_USER_ID}', '00000000-0000-0000-0000-0000000000a1', 'Morning', 45, '2026-12-01T08:00:00Z'),
           ('{DEMO_USER_ID}', null, 'Evening', 30, '2026-12-02T19:00:00Z');"
    ))
    .execute(&app.db)
    .await
    .expect("seed");
}

#[tokio::test]
async fn reads_filter_order_and_count_as_postgrest() {
    let app = start("rest_reads").await;
    seed(&app).await;
    let demo = demo();

    // Filters typed by column: an enum, a timestamp compared with a date, `in`, `not`.
    let got = rest(
        &app,
        Method::GET,
        "tasks?select=title,status,due_date&status=neq.completed&due_date=gte.2026-12-01&order=due_date.desc.nullslast",
        &[demo.clone(), ("prefer", "count=exact".into())],
        None,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let expected = sql_json(
        &app,
        &format!("select title, status, due_date from tasks where user_id = '{DEMO_USER_ID}' and status <> 'completed' and due_date >= '2026-12-01' order by due_date desc nulls last"),
    )
    .await;
    assert_eq!(got.body, expected);
    assert_eq!(got.header("content-range"), Some("0-1/2"));
    assert_eq!(
        got.header("content-type"),
        Some("application/json; charset=utf-8")
    );

    let got = read(
        &app,
        "tasks?select=title&status=not.in.(todo,completed)&tags=cs.{hard}&order=title",
    )
    .await;
    assert_eq!(got.body, json!([{"title": "Essay"}]), "{}", got.text);

    // `or`, `like` with `*`, `is.null`, a quoted value with a comma.
    let got = read(&app, "tasks?select=title&or=(title.ilike.*ALG*,and(subject_id.is.null,title.eq.%22Read,%20%5C%22carefully%5C%22%22))&order=title").await;
    assert_eq!(
        got.body,
        json!([{"title": "Algebra"}, {"title": "Read, \"carefully\""}]),
        "{}",
        got.text
    );

    // A page: limit/offset, count, 206 because the page is not everything.
    let got = rest(
        &app,
        Method::GET,
        "tasks?select=title&order=title.asc&limit=2&offset=1",
        &[demo.clone(), ("prefer", "count=exact".into())],
        None,
    )
    .await;
    assert_eq!(got.status, 206);
    assert_eq!(got.header("content-range"), Some("1-2/5"));
    assert_eq!(got.body, json!([{"title": "Essay"}, {"title": "Geometry"}]));
    // The Range header does the same.
    let got = rest(
        &app,
        Method::GET,
        "tasks?select=title&order=title.asc",
        &[demo.clone(), ("range", "0-0".into())],
        None,
    )
    .await;
    assert_eq!(got.header("content-range"), Some("0-0/*"));
    assert_eq!(got.body, json!([{"title": "Algebra"}]));
    // Past the end with a count: 416.
    let got = rest(
        &app,
        Method::GET,
        "tasks?offset=50",
        &[demo.clone(), ("prefer", "count=exact".into())],
        None,
    )
    .await;
    assert_rest_error(&got, 416, "PGRST103");
    // HEAD: headers, no body; planned counts come from the planner.
    let got = rest(
        &app,
        Method::HEAD,
        "tasks",
        &[demo.clone(), ("prefer", "count=planned".into())],
        None,
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(got.text.is_empty());
    assert!(
        got.header("content-range")
            .is_some_and(|r| r.starts_with("0-4/"))
    );

    // The embedded resource the frontend uses, over the foreign key.
    let got = read(
        &app,
        "study_sessions?select=title,duration,subjects(name)&order=started_at",
    )
    .await;
    assert_eq!(
        got.body,
        json!([
            {"title": "Morning", "duration": 45, "subjects": {"name": "Maths"}},
            {"title": "Evening", "duration": 30, "subjects": null},
        ]),
        "{}",
        got.text
    );
    // `*, subjects(name)` keeps every column of the row, as SQL renders them.
    let got = read(
        &app,
        "study_sessions?select=*,%20subjects(name)&order=started_at&limit=1",
    )
    .await;
    let mut expected = sql_json(
        &app,
        "select * from study_sessions order by started_at limit 1",
    )
    .await;
    expected[0]["subjects"] = json!({"name": "Maths"});
    assert_eq!(got.body, expected);
    // One-to-many the other way round, with `!inner`.
    let got = rest(
        &app,
        Method::GET,
        "subjects?select=name,tasks!inner(title)&order=name",
        &[demo],
        None,
    )
    .await;
    assert_eq!(got.body.as_array().map(Vec::len), Some(2), "{}", got.text);
    app.finish().await;
}

#[tokio::test]
async fn single_objects_and_writes_answer_with_postgrest_statuses() {
    let app = start("rest_writes").await;
    seed(&app).await;
    let demo = demo();
    let object = ("accept", "application/vnd.pgrst.object+json".to_owned());

    // `.single()`: exactly one row, else 406 PGRST116.
    let got = rest(
        &app,
        Method::GET,
        "subjects?select=name&name=eq.Maths",
        &[demo.clone(), object.clone()],
        None,
    )
    .await;
    assert_eq!(
        (got.status, got.body.clone()),
        (200, json!({"name": "Maths"}))
    );
    assert_eq!(
        got.header("content-type"),
        Some("application/vnd.pgrst.object+json; charset=utf-8")
    );
    for (filter, rows) in [("name=eq.Chemistry", 0), ("name=neq.x", 2)] {
        let got = rest(
            &app,
            Method::GET,
            &format!("subjects?{filter}"),
            &[demo.clone(), object.clone()],
            None,
        )
        .await;
        assert_eq!(got.status, 406, "{}", got.text);
        assert_eq!(
            got.body,
            json!({"code": "PGRST116", "details": format!("The result contains {rows} rows"), "hint": null,
                   "message": "JSON object requested, multiple (or no) rows returned"})
        );
    }

    // Insert: 201, no body by default; with representation the row; bulk.
    let got = rest(
        &app,
        Method::POST,
        "subjects",
        std::slice::from_ref(&demo),
        Some(json!({"user_id": DEMO_USER_ID, "name": "History"})),
    )
    .await;
    assert_eq!((got.status, got.text.as_str()), (201, ""));
    let got = rest(
        &app,
        Method::POST,
        "subjects?columns=%22user_id%22,%22name%22,%22color%22&select=name,color",
        &[demo.clone(), ("prefer", "return=representation".into())],
        Some(json!([{"user_id": DEMO_USER_ID, "name": "Art", "color": "#fff"}, {"user_id": DEMO_USER_ID, "name": "Music"}])),
    )
    .await;
    assert_eq!(got.status, 201, "{}", got.text);
    assert_eq!(
        got.body,
        json!([{"name": "Art", "color": "#fff"}, {"name": "Music", "color": null}])
    );

    // A duplicate: 409 with Postgres's code and detail.
    let got = rest(
        &app,
        Method::POST,
        "subjects",
        std::slice::from_ref(&demo),
        Some(json!({"user_id": DEMO_USER_ID, "name": "Art"})),
    )
    .await;
    assert_rest_error(&got, 409, "23505");
    // Under row-level security Postgres leaves the key's values out of the detail.
    assert!(
        got.body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("duplicate key value violates unique constraint"))
    );

    // Upsert on the unique (user_id, name): merge, then ignore.
    let prefer = |p: &str| ("prefer", p.to_owned());
    let got = rest(
        &app,
        Method::POST,
        "subjects?on_conflict=user_id,name&select=name,color",
        &[
            demo.clone(),
            prefer("resolution=merge-duplicates,return=representation"),
        ],
        Some(json!({"user_id": DEMO_USER_ID, "name": "Art", "color": "#000"})),
    )
    .await;
    assert_eq!(
        (got.status, got.body.clone()),
        (201, json!([{"name": "Art", "color": "#000"}]))
    );
    let got = rest(
        &app,
        Method::POST,
        "subjects?on_conflict=user_id,name",
        &[
            demo.clone(),
            prefer("resolution=ignore-duplicates,return=representation"),
        ],
        Some(json!({"user_id": DEMO_USER_ID, "name": "Art", "color": "#123"})),
    )
    .await;
    assert_eq!((got.status, got.body.clone()), (201, json!([])));
    let colors = sql_json(&app, "select color from subjects where name = 'Art'").await;
    assert_eq!(colors, json!([{"color": "#000"}]));

    // Update and delete: 204, or 200 with the rows; counts in Content-Range.
    let got = rest(
        &app,
        Method::PATCH,
        "tasks?status=eq.todo",
        std::slice::from_ref(&demo),
        Some(json!({"status": "completed"})),
    )
    .await;
    assert_eq!(got.status, 204, "{}", got.text);
    assert_eq!(got.header("content-range"), Some("0-1/*"));
    let got = rest(
        &app,
        Method::PATCH,
        "tasks?title=eq.Optics&select=title,status,tags",
        &[
            demo.clone(),
            prefer("return=representation"),
            object.clone(),
        ],
        Some(json!({"status": "cancelled", "tags": ["a", "b"]})),
    )
    .await;
    assert_eq!(
        (got.status, got.body.clone()),
        (
            200,
            json!({"title": "Optics", "status": "cancelled", "tags": ["a", "b"]})
        )
    );
    // `.single()` on a write that touched two rows: 406, and nothing changed.
    let got = rest(
        &app,
        Method::DELETE,
        "tasks?status=eq.completed",
        &[demo.clone(), prefer("return=representation"), object],
        None,
    )
    .await;
    assert_eq!(got.status, 406, "{}", got.text);
    let completed = sql_json(
        &app,
        &format!("select id from tasks where status = 'completed' and user_id = '{DEMO_USER_ID}'"),
    )
    .await;
    assert_eq!(completed.as_array().map(Vec::len), Some(3));
    let got = rest(
        &app,
        Method::DELETE,
        "tasks?status=eq.completed",
        &[demo.clone(), prefer("count=exact")],
        None,
    )
    .await;
    assert_eq!(
        (got.status, got.header("content-range")),
        (204, Some("0-2/3"))
    );

    // headers-only: where the new row is.
    let got = rest(
        &app,
        Method::POST,
        "subjects",
        &[demo, prefer("return=headers-only")],
        Some(json!({"user_id": DEMO_USER_ID, "name": "Latin"})),
    )
    .await;
    assert_eq!(got.status, 201);
    assert!(
        got.header("location")
            .is_some_and(|l| l.starts_with("/subjects?id=eq.")),
        "{:?}",
        got.headers
    );
    app.finish().await;
}

#[tokio::test]
async fn bad_requests_get_postgrest_errors_never_a_500() {
    let app = start("rest_errors").await;
    let demo = demo();
    let cases: Vec<(Method, &str, Option<Value>, u16, &str)> = vec![
        (Method::GET, "nope", None, 404, "PGRST205"),
        (Method::GET, "tasks?select=nope", None, 400, "42703"),
        (Method::GET, "tasks?nope=eq.1", None, 400, "42703"),
        (Method::GET, "tasks?order=nope.desc", None, 400, "42703"),
        (Method::GET, "tasks?id=eq.not-a-uuid", None, 400, "22P02"),
        (Method::GET, "tasks?status=eq.someday", None, 400, "22P02"),
        (
            Method::GET,
            "tasks?created_at=gte.yesterdayish",
            None,
            400,
            "22007",
        ),
        (Method::GET, "tasks?title=approx.x", None, 400, "PGRST100"),
        (Method::GET, "tasks?select=title,(", None, 400, "PGRST100"),
        (
            Method::GET,
            "tasks?select=*,goals(title)",
            None,
            400,
            "PGRST200",
        ),
        (
            Method::GET,
            "tasks?select=title::money",
            None,
            400,
            "PGRST100",
        ),
        (
            Method::POST,
            "tasks",
            Some(json!({"title": "x", "nope": 1})),
            400,
            "PGRST204",
        ),
        (
            Method::POST,
            "tasks",
            Some(json!([{"title": "a"}, {"points": 1}])),
            400,
            "PGRST102",
        ),
        (
            Method::POST,
            "tasks",
            Some(json!({"user_id": DEMO_USER_ID})),
            400,
            "23502",
        ),
        (
            Method::POST,
            "tasks",
            Some(json!({"user_id": DEMO_USER_ID, "title": "t", "subject_id": Uuid::new_v4()})),
            409,
            "23503",
        ),
        (
            Method::POST,
            "study_sessions",
            Some(json!({"user_id": DEMO_USER_ID, "title": "t", "focus_score": 101})),
            400,
            "23514",
        ),
        (Method::PUT, "tasks", Some(json!({})), 405, "PGRST117"),
    ];
    // Only the exposed schema.
    for header in ["accept-profile", "content-profile"] {
        let got = rest(
            &app,
            Method::GET,
            "tasks",
            &[demo.clone(), (header, "studyflow_vault".into())],
            None,
        )
        .await;
        assert_rest_error(&got, 406, "PGRST106");
    }
    for (method, target, body, status, code) in cases {
        let got = rest(
            &app,
            method.clone(),
            target,
            std::slice::from_ref(&demo),
            body,
        )
        .await;
        eprintln!("{method} {target}");
        assert_rest_error(&got, status, code);
    }
    // Malformed JSON bodies.
    let got = app
        .request(
            Method::POST,
            "/rest/v1/tasks",
            &[demo.clone(), ("content-type", "application/json".into())],
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_rest_error(&got, 400, "PGRST102");
    // Tokens: malformed, expired, of another project.
    let expired = tokens::access_token(JWT_SECRET, DEMO_USER_ID, DEMO_USER_EMAIL, -600);
    let foreign = tokens::access_token(
        "another-project-secret-of-some-length-000",
        DEMO_USER_ID,
        DEMO_USER_EMAIL,
        600,
    );
    for (token, code) in [
        ("garbage".to_owned(), "PGRST301"),
        (expired, "PGRST303"),
        (foreign, "PGRST301"),
    ] {
        let got = rest(&app, Method::GET, "tasks", &[bearer(token)], None).await;
        assert_rest_error(&got, 401, code);
        assert!(got.header("www-authenticate").is_some());
    }
    // Functions are not served here.
    let got = rest(&app, Method::POST, "rpc/anything", &[demo], Some(json!({}))).await;
    assert_rest_error(&got, 404, "PGRST202");
    app.finish().await;
}

#[tokio::test]
async fn dry_runs_answer_as_committed_and_leave_nothing_behind() {
    let app = start("rest_dry_run").await;
    seed(&app).await;
    let before = sql_json(&app, "select * from tasks order by id").await;
    let marker = TestApp::shadow_marker();
    let got = rest(
        &app,
        Method::POST,
        "tasks?select=title",
        &[
            demo(),
            marker.clone(),
            ("prefer", "return=representation".into()),
        ],
        Some(json!({"user_id": DEMO_USER_ID, "title": "Shadowed"})),
    )
    .await;
    assert_eq!(
        (got.status, got.body.clone()),
        (201, json!([{"title": "Shadowed"}]))
    );
    let got = rest(&app, Method::DELETE, "tasks", &[demo(), marker], None).await;
    assert_eq!(
        (got.status, got.header("content-range")),
        (204, Some("0-4/*"))
    );
    assert_eq!(
        sql_json(&app, "select * from tasks order by id").await,
        before
    );
    // A marker without the shared secret is an ordinary request.
    let got = rest(
        &app,
        Method::DELETE,
        "tasks?title=eq.Essay",
        &[demo(), ("x-studyflow-shadow", "guess".into())],
        None,
    )
    .await;
    assert_eq!(got.status, 204);
    let left = sql_json(&app, "select title from tasks where title = 'Essay'").await;
    assert_eq!(left, json!([]));
    app.finish().await;
}

#[tokio::test]
async fn a_migration_is_served_after_notify_pgrst_without_a_restart() {
    let app = start("rest_reload").await;
    let listener = tokio::spawn(studyflow_backend::rest::schema::listen(
        app.state.db.clone(),
        app.state.schema.clone(),
    ));
    // Once listening, the listener drops the cache (what changed before was not heard).
    // Wait for that, so that it cannot drop the cache after the migration below.
    let started = std::time::Instant::now();
    loop {
        let listening: bool = sqlx::query_scalar(
            "select exists (select from pg_stat_activity \
             where datname = current_database() and query ilike 'listen %')",
        )
        .fetch_one(&app.db)
        .await
        .expect("pg_stat_activity");
        if listening {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the listener never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = rest(&app, Method::GET, "flashcards", &[demo()], None).await;
    assert_eq!(got.status, 404);
    sqlx::raw_sql(
        "create table public.flashcards (id uuid primary key default gen_random_uuid(), user_id uuid not null default auth.uid(), front text);
         grant select, insert on public.flashcards to authenticated;
         alter table public.flashcards enable row level security;
         create policy own on public.flashcards for all to authenticated using (user_id = auth.uid()) with check (user_id = auth.uid());",
    )
    .execute(&app.db)
    .await
    .expect("migration");
    // Still the old cache: PostgREST does the same until told.
    let got = rest(&app, Method::GET, "flashcards", &[demo()], None).await;
    assert_eq!(got.status, 404);
    sqlx::query("notify pgrst, 'reload schema'")
        .execute(&app.db)
        .await
        .expect("notify");
    let mut served = None;
    for _ in 0..50 {
        let got = rest(
            &app,
            Method::POST,
            "flashcards?select=front",
            &[demo(), ("prefer", "return=representation".into())],
            Some(json!({"front": "2+2"})),
        )
        .await;
        if got.status != 404 {
            served = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = served.expect("served after the reload");
    assert_eq!((got.status, got.body), (201, json!([{"front": "2+2"}])));
    listener.abort();
    app.finish().await;
}

#[tokio::test]
async fn revoked_sessions_are_refused_on_table_routes() {
    let app = start("rest_revoked").await;
    let session = Uuid::new_v4();
    let token = tokens::session_token(
        JWT_SECRET,
        DEMO_USER_ID,
        DEMO_USER_EMAIL,
        &session.to_string(),
        tokens::now(),
        3600,
    );
    let got = rest(&app, Method::GET, "tasks", &[bearer(token.clone())], None).await;
    assert_eq!(got.status, 200);
    assert!(
        app.state
            .revocations
            .revoke_session(session, Some(tokens::now() + 3600))
            .await
    );
    let got = rest(&app, Method::GET, "tasks", &[bearer(token.clone())], None).await;
    assert_rest_error(&got, 401, "PGRST301");
    // Realtime joins check the same tokens.
    assert!(matches!(
        app.state.auth.realtime_identity(&token).await,
        Err(studyflow_backend::auth::AuthError::Revoked)
    ));
    app.finish().await;
}

#[tokio::test]
async fn check_permission_asks_the_row_level_security_policies() {
    use studyflow_backend::rest::{Action, check_permission};
    let app = start("rest_permission").await;
    seed(&app).await;
    let (demo_id, other_id) = (
        Uuid::parse_str(DEMO_USER_ID).expect("ok"),
        Uuid::parse_str(OTHER_ID).expect("ok"),
    );
    let mine: Uuid = sqlx::query_scalar("select id from tasks where title = 'Algebra'")
        .fetch_one(&app.db)
        .await
        .expect("ok");
    for action in [Action::Select, Action::Update, Action::Delete] {
        assert!(
            check_permission(&app.state, demo_id, "tasks", action, mine)
                .await
                .expect("ok"),
            "{action:?}"
        );
        assert!(
            !check_permission(&app.state, other_id, "tasks", action, mine)
                .await
                .expect("ok"),
            "{action:?}"
        );
    }
    // Asking changed nothing.
    assert_eq!(
        sql_json(&app, "select title from tasks where title = 'Algebra'").await,
        json!([{"title": "Algebra"}])
    );
    // Users may not delete their analytics rows (no policy), only read and update them.
    let row: Uuid = sqlx::query_scalar(&format!("insert into study_analytics (user_id, date) values ('{DEMO_USER_ID}', '2026-12-01') returning id")).fetch_one(&app.db).await.expect("ok");
    assert!(
        check_permission(&app.state, demo_id, "study_analytics", Action::Update, row)
            .await
            .expect("ok")
    );
    assert!(
        !check_permission(&app.state, demo_id, "study_analytics", Action::Delete, row)
            .await
            .expect("ok")
    );
    app.finish().await;
}

#[tokio::test]
async fn anonymous_requests_see_no_rows_and_write_nothing() {
    let app = start("rest_anon").await;
    seed(&app).await;
    for table in [
        "tasks",
        "subjects",
        "study_sessions",
        "profiles",
        "user_settings",
        "notifications",
        "study_analytics",
    ] {
        for headers in [vec![anon()], vec![]] {
            let got = rest(&app, Method::GET, table, &headers, None).await;
            assert_eq!((got.status, got.body.clone()), (200, json!([])), "{table}");
        }
    }
    let got = rest(
        &app,
        Method::POST,
        "tasks",
        &[anon()],
        Some(json!({"user_id": DEMO_USER_ID, "title": "x"})),
    )
    .await;
    assert_rest_error(&got, 401, "42501");
    let got = rest(&app, Method::DELETE, "tasks", &[anon()], None).await;
    assert_eq!(got.status, 401, "{}", got.text);
    assert_eq!(
        sql_json(&app, "select count(*) as n from tasks").await,
        json!([{"n": 6}])
    );
    app.finish().await;
}

#[tokio::test]
async fn a_burst_before_the_schema_is_read_does_not_starve_the_pool() {
    // Two pooled connections and sixteen requests at once, the schema not read yet:
    // no request may hold a connection while waiting for the schema to be read.
    let app = TestApp::start_with("rest_burst", |c| c.database.max_connections = 2).await;
    let demo = demo();
    let answers = futures_util::future::join_all((0..16).map(|_| {
        rest(
            &app,
            Method::GET,
            "tasks?select=id",
            std::slice::from_ref(&demo),
            None,
        )
    }))
    .await;
    for got in answers {
        assert_eq!(got.status, 200, "{}", got.text);
    }
    app.finish().await;
}
