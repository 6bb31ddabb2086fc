//! Row-level security through the data API, as a property: two users and the anon key
//! issue random sequences of selects, inserts, updates, deletes and upserts, with
//! filters aimed at the other user's rows and forged `user_id` values. Whatever the
//! sequence, no answer carries the other user's rows and the other user's rows never
//! change; anonymous requests see and change nothing. Failing sequences are shrunk by
//! proptest to the smallest one that still breaks the rule.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};
use studyflow_testkit::stack::{DEMO_USER_EMAIL, DEMO_USER_ID};
use studyflow_testkit::{database, tokens};
use uuid::Uuid;

use crate::support::{JWT_SECRET, TestApp};

const OTHER_ID: &str = "5f1d2c7e-8a3b-4c4d-9e5f-6a7b8c9d0e1f";
const TABLES: [&str; 4] = ["tasks", "subjects", "notifications", "user_settings"];

/// Who sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Demo,
    Other,
    Anon,
}

impl Actor {
    fn id(self) -> Option<&'static str> {
        match self {
            Actor::Demo => Some(DEMO_USER_ID),
            Actor::Other => Some(OTHER_ID),
            Actor::Anon => None,
        }
    }

    /// The user whose rows this actor must not reach.
    fn victim(self) -> Vec<&'static str> {
        match self {
            Actor::Demo => vec![OTHER_ID],
            Actor::Other => vec![DEMO_USER_ID],
            Actor::Anon => vec![DEMO_USER_ID, OTHER_ID],
        }
    }

    fn token(self) -> String {
        match self {
            Actor::Demo => tokens::access_token(JWT_SECRET, DEMO_USER_ID, DEMO_USER_EMAIL, 600),
            Actor::Other => tokens::access_token(JWT_SECRET, OTHER_ID, "o@example.com", 600),
            Actor::Anon => tokens::anon_key(JWT_SECRET),
        }
    }
}

/// Which rows an operation's filter aims at.
#[derive(Debug, Clone, Copy)]
enum Aim {
    Everything,
    /// `user_id=eq.<victim>`
    VictimsOwner,
    /// `id=eq.<one of the victim's rows>`
    VictimsRow,
    /// `or=(user_id.eq.<victim>,user_id.eq.<self>)`
    Either,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Select(Aim),
    /// Insert a row; `forged`: with the victim's `user_id`.
    Insert {
        forged: bool,
    },
    /// Update rows; `forged`: setting `user_id` to the victim's.
    Update {
        aim: Aim,
        forged: bool,
    },
    Delete(Aim),
    /// Upsert a row with the id of one of the victim's rows.
    UpsertVictimsRow,
}

fn aim() -> impl Strategy<Value = Aim> {
    prop_oneof![
        Just(Aim::Everything),
        Just(Aim::VictimsOwner),
        Just(Aim::VictimsRow),
        Just(Aim::Either)
    ]
}

fn step() -> impl Strategy<Value = (Actor, usize, Op)> {
    let actor = prop_oneof![Just(Actor::Demo), Just(Actor::Other), Just(Actor::Anon)];
    let op = prop_oneof![
        aim().prop_map(Op::Select),
        any::<bool>().prop_map(|forged| Op::Insert { forged }),
        (aim(), any::<bool>()).prop_map(|(aim, forged)| Op::Update { aim, forged }),
        aim().prop_map(Op::Delete),
        Just(Op::UpsertVictimsRow),
    ];
    (actor, 0..TABLES.len(), op)
}

/// A fresh row for `table` owned by `owner`.
fn new_row(table: &str, owner: &str) -> Value {
    let n = Uuid::new_v4().simple().to_string();
    match table {
        "tasks" => json!({"user_id": owner, "title": format!("t{n}")}),
        "subjects" => json!({"user_id": owner, "name": format!("s{n}")}),
        "notifications" => json!({"user_id": owner, "title": "n", "message": n}),
        _ => json!({"user_id": owner, "theme": "dark"}),
    }
}

/// A harmless change for `table`.
fn change(table: &str) -> Value {
    match table {
        "tasks" => json!({"title": "changed"}),
        "subjects" => json!({"description": "changed"}),
        "notifications" => json!({"read": true}),
        _ => json!({"theme": "system"}),
    }
}

async fn rows_of(app: &TestApp, table: &str, owner: &str) -> Value {
    sqlx::query_scalar::<_, Value>(&format!(
        "select coalesce(json_agg(t order by t.id), '[]'::json) from public.{table} t where user_id = '{owner}'"
    ))
    .fetch_one(&app.db)
    .await
    .expect("rows")
}

async fn snapshot(app: &TestApp, owners: &[&str]) -> Vec<Value> {
    let mut all = Vec::new();
    for table in TABLES {
        for owner in owners {
            all.push(rows_of(app, table, owner).await);
        }
    }
    all
}

fn filter(aim: Aim, victim: &str, me: &str, victims_row: Option<&str>) -> String {
    match aim {
        Aim::Everything => String::new(),
        Aim::VictimsOwner => format!("user_id=eq.{victim}"),
        Aim::VictimsRow => format!(
            "id=eq.{}",
            victims_row.unwrap_or("00000000-0000-0000-0000-000000000000")
        ),
        Aim::Either => format!("or=(user_id.eq.{victim},user_id.eq.{me})"),
    }
}

/// Runs one step and checks the rule for it.
async fn check_step(app: &TestApp, actor: Actor, table: &str, op: Op) -> Result<(), String> {
    let victims = actor.victim();
    let victim = victims[0];
    let me = actor.id().unwrap_or(victim);
    let victims_rows = rows_of(app, table, victim).await;
    let victims_row = victims_rows[0]["id"].as_str().map(str::to_owned);
    let before = snapshot(app, &victims).await;
    let (method, query, body) = match op {
        Op::Select(aim) => (
            Method::GET,
            filter(aim, victim, me, victims_row.as_deref()),
            None,
        ),
        Op::Insert { forged } => (
            Method::POST,
            String::new(),
            Some(new_row(table, if forged { victim } else { me })),
        ),
        Op::Update { aim, forged } => {
            let mut body = change(table);
            if forged {
                body["user_id"] = json!(victim);
            }
            (
                Method::PATCH,
                filter(aim, victim, me, victims_row.as_deref()),
                Some(body),
            )
        }
        Op::Delete(aim) => (
            Method::DELETE,
            filter(aim, victim, me, victims_row.as_deref()),
            None,
        ),
        Op::UpsertVictimsRow => {
            let mut body = new_row(table, me);
            if let Some(id) = &victims_row {
                body["id"] = json!(id);
            }
            (Method::POST, "on_conflict=id".to_owned(), Some(body))
        }
    };
    let mut headers = vec![
        ("authorization", format!("Bearer {}", actor.token())),
        (
            "prefer",
            "return=representation,resolution=merge-duplicates".to_owned(),
        ),
    ];
    if matches!(op, Op::Insert { .. }) {
        headers.pop();
        headers.push(("prefer", "return=representation".into()));
    }
    let target = format!("/rest/v1/{table}?{query}");
    let got = app
        .request(
            method.clone(),
            &target,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await;
    let trace = || format!("{actor:?} {method} {target}: {} {}", got.status, got.text);
    if got.status >= 500 {
        return Err(format!("server error: {}", trace()));
    }
    // No answer carries a row of the victim.
    if let Some(rows) = got.body.as_array() {
        if rows
            .iter()
            .any(|r| victims.iter().any(|v| r["user_id"] == json!(v)))
        {
            return Err(format!("the victim's row came back: {}", trace()));
        }
        if actor == Actor::Anon && !rows.is_empty() {
            return Err(format!("anon saw rows: {}", trace()));
        }
    }
    // The victim's rows are as they were.
    if snapshot(app, &victims).await != before {
        return Err(format!("the victim's rows changed: {}", trace()));
    }
    Ok(())
}

#[test]
fn no_sequence_of_requests_reaches_the_other_users_rows() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime.block_on(async {
        let app = TestApp::start("rest_rls").await;
        let url = secrecy::ExposeSecret::expose_secret(&app.state.config.database.url).to_owned();
        let other = Uuid::parse_str(OTHER_ID).expect("uuid");
        database::ensure_user(&url, other, "o@example.com")
            .await
            .expect("user");
        app
    });
    // Every table starts with a row of each user.
    runtime.block_on(async {
        for table in TABLES {
            for owner in [DEMO_USER_ID, OTHER_ID] {
                let row = new_row(table, owner);
                let columns: Vec<String> = row.as_object().expect("object").keys().cloned().collect();
                let list = columns.join(", ");
                sqlx::query(&format!(
                    "insert into public.{table} ({list}) select {list} from json_populate_record(null::public.{table}, $1::json)"
                ))
                .bind(row.to_string())
                .execute(&app.db)
                .await
                .expect("seed");
            }
        }
    });

    let cases: u32 = std::env::var("STUDYFLOW_RLS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(step(), 1..10), |steps| {
        runtime.block_on(async {
            for (actor, table, op) in &steps {
                check_step(&app, *actor, TABLES[*table], *op)
                    .await
                    .map_err(TestCaseError::fail)?;
            }
            Ok(())
        })
    });
    runtime.block_on(app.finish());
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
