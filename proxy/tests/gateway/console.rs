//! The operator console over HTTP, as a browser uses it: sign in, read the pages, flip
//! and roll back with forms; unauthenticated and CSRF-less changes are refused.

use reqwest::redirect::Policy;

use crate::harness::{Gateway, TOKEN, TestUpstream};

const ROUTES: &str = "routes:\n  - {name: tutor, path: /functions/v1/tutor, phase: legacy}\n  - {name: keys, path: /functions/v1/test-keys, blocked: true}\n";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// Signs in as `name`; returns the session cookie and a CSRF token read from the page.
async fn sign_in(gateway: &Gateway, name: &str) -> (String, String) {
    let answer = browser()
        .post(format!("{}/ui/login", gateway.admin_url))
        .form(&[("name", name), ("token", TOKEN), ("next", "/ui")])
        .send()
        .await
        .expect("login");
    assert_eq!(answer.status(), 303);
    let cookie = answer.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_owned();
    let page = browser()
        .get(format!("{}/ui", gateway.admin_url))
        .header("cookie", &session)
        .send()
        .await
        .expect("routes page")
        .text()
        .await
        .expect("html");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the forms")
        .to_owned();
    (session, csrf)
}

#[tokio::test]
async fn operators_sign_in_flip_and_roll_back_with_forms() {
    let legacy = TestUpstream::start("legacy").await;
    let new = TestUpstream::start("new").await;
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;

    // Reading needs a session: the sign-in page first.
    let anonymous = browser()
        .get(format!("{}/ui", gateway.admin_url))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), 303);
    assert!(
        anonymous.headers()["location"]
            .to_str()
            .is_ok_and(|l| l.starts_with("/ui/login"))
    );
    let wrong = browser()
        .post(format!("{}/ui/login", gateway.admin_url))
        .form(&[("name", "mallory"), ("token", "guess")])
        .send()
        .await
        .expect("answer");
    assert!(
        wrong.headers().get("set-cookie").is_none(),
        "a wrong token opens no session"
    );

    let (session, csrf) = sign_in(&gateway, "ada").await;
    let page = |path: &str| {
        let (url, session) = (format!("{}{path}", gateway.admin_url), session.clone());
        async move {
            browser()
                .get(url)
                .header("cookie", session)
                .send()
                .await
                .expect("page")
                .text()
                .await
                .expect("html")
        }
    };
    let routes = page("/ui").await;
    assert!(
        routes.contains(">tutor</a>") && routes.contains("blocked"),
        "{routes}"
    );
    assert!(routes.contains("signed in as") && routes.contains("ada"));

    // Shadow is a step forward the gate allows from legacy; then canary needs evidence.
    let post = |path: &str, form: Vec<(&str, &str)>| {
        let (url, session) = (format!("{}{path}", gateway.admin_url), session.clone());
        let form: Vec<(String, String)> = form
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        async move {
            browser()
                .post(url)
                .header("cookie", session)
                .form(&form)
                .send()
                .await
                .expect("answer")
        }
    };
    let shadow = post(
        "/ui/routes/tutor/phase",
        vec![
            ("csrf", &csrf),
            ("phase", "shadow"),
            ("percent", ""),
            ("reason", "compare"),
        ],
    )
    .await;
    assert_eq!(shadow.status(), 303);
    assert_eq!(gateway.route("tutor").await["phase"], "shadow");
    let canary = post(
        "/ui/routes/tutor/phase",
        vec![
            ("csrf", &csrf),
            ("phase", "canary"),
            ("percent", "25"),
            ("reason", "first users"),
        ],
    )
    .await;
    assert!(
        canary.headers()["location"]
            .to_str()
            .is_ok_and(|l| l.ends_with("done=gate")),
        "the gate holds it back without evidence"
    );
    assert_eq!(gateway.route("tutor").await["phase"], "shadow");
    let forced = post(
        "/ui/routes/tutor/phase",
        vec![
            ("csrf", &csrf),
            ("phase", "canary"),
            ("percent", "25"),
            ("reason", "demo day"),
            ("force", "yes"),
        ],
    )
    .await;
    assert_eq!(forced.status(), 303);
    let route = gateway.route("tutor").await;
    assert_eq!(
        (route["phase"].as_str(), route["percent"].as_u64()),
        (Some("canary"), Some(25))
    );
    let entry = &route["audit"][0];
    assert_eq!(entry["who"], "ada");
    assert!(
        entry["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("demo day [forced past the gate")),
        "{entry}"
    );

    // The route page shows the history; rollback from the routes page.
    let detail = page("/ui/routes/tutor").await;
    assert!(
        detail.contains("Phase history") && detail.contains("demo day") && detail.contains("<svg"),
        "route page"
    );
    let rolled = post(
        "/ui/routes/tutor/rollback",
        vec![("csrf", &csrf), ("reason", "error spike")],
    )
    .await;
    assert_eq!(rolled.status(), 303);
    let (_, side, _) = gateway.get("/functions/v1/tutor").await;
    assert_eq!(
        side, "legacy",
        "the next request after the rollback is served by legacy"
    );

    // The global rollback asks for confirmation.
    post(
        "/ui/routes/tutor/phase",
        vec![
            ("csrf", &csrf),
            ("phase", "legacy"),
            ("percent", ""),
            ("reason", "reset"),
        ],
    )
    .await;
    let unconfirmed = post("/ui/rollback", vec![("csrf", &csrf), ("reason", "all")]).await;
    assert!(
        unconfirmed.headers()["location"]
            .to_str()
            .is_ok_and(|l| l.ends_with("done=confirm"))
    );
    assert!(page("/ui/progress").await.contains("Routes per phase"));

    // Signing out closes the session.
    let out = post("/ui/logout", vec![("csrf", &csrf)]).await;
    assert_eq!(out.status(), 303);
    let after = browser()
        .get(format!("{}/ui", gateway.admin_url))
        .header("cookie", &session)
        .send()
        .await
        .expect("answer");
    assert_eq!(after.status(), 303, "the old session no longer reads pages");
}

#[tokio::test]
async fn changes_without_a_session_or_csrf_token_are_refused() {
    let legacy = TestUpstream::start("legacy").await;
    let new = TestUpstream::start("new").await;
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;
    let (session, _csrf) = sign_in(&gateway, "ada").await;
    let form = [
        ("phase", "primary"),
        ("percent", ""),
        ("reason", "x"),
        ("force", "yes"),
    ];

    let anonymous = browser()
        .post(format!("{}/ui/routes/tutor/phase", gateway.admin_url))
        .form(&form)
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), 401);
    let without_csrf = browser()
        .post(format!("{}/ui/routes/tutor/phase", gateway.admin_url))
        .header("cookie", &session)
        .form(&form)
        .send()
        .await
        .expect("answer");
    assert!(
        without_csrf.status().is_client_error(),
        "{}",
        without_csrf.status()
    );
    let forged = browser()
        .post(format!("{}/ui/rollback", gateway.admin_url))
        .header("cookie", &session)
        .form(&[("csrf", "forged"), ("reason", "x"), ("confirm", "yes")])
        .send()
        .await
        .expect("answer");
    assert_eq!(forged.status(), 403);
    assert_eq!(
        gateway.route("tutor").await["phase"],
        "legacy",
        "nothing changed"
    );
}
