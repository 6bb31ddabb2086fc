//! The operator console over HTTP, as a browser uses it: sign in, read the pages, flip
//! and roll back with forms; unauthenticated and CSRF-less changes are refused.

use reqwest::redirect::Policy;

use crate::harness::{Gateway, TOKEN, TestUpstream};

const ROUTES: &str = "routes:\n  - {name: tutor, path: /functions/v1/tutor, phase: legacy}\n  - {name: keys, path: /functions/v1/test-keys, blocked: true}\n";

pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// Signs in as `name`; returns the session cookie and a CSRF token read from the page.
pub(crate) async fn sign_in(gateway: &Gateway, name: &str) -> (String, String) {
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
    let (legacy, new) = TestUpstream::pair().await;
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
    let (legacy, new) = TestUpstream::pair().await;
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

/// A probe that must get the admin API's JSON 400 ([`JSON`]) or the console's error
/// page ([`PAGE`]).
const JSON: bool = true;
const PAGE: bool = false;

/// Whether an answer is the JSON 400 of the admin API.
async fn json_400(response: reqwest::Response) -> Result<(), String> {
    let status = response.status();
    let json = response.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("application/json"));
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status == 400 && json && body["error"].is_string() {
        Ok(())
    } else {
        Err(format!("{status} {body}"))
    }
}

/// Whether an answer is the console's 400 error page.
async fn page_400(response: reqwest::Response) -> Result<(), String> {
    let status = response.status();
    let html = response.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/html"));
    let csp = response.headers().contains_key("content-security-policy");
    let body = response.text().await.unwrap_or_default();
    if status == 400 && html && csp && body.contains("role=\"alert\"") {
        Ok(())
    } else {
        Err(format!("{status} html={html} csp={csp} {body}"))
    }
}

#[tokio::test]
async fn hostile_inputs_get_a_400_from_the_admin_api_and_the_console() {
    let (legacy, new) = TestUpstream::pair().await;
    let database = crate::harness::fresh_database().await;
    let extra = format!("diff_store:\n  database_url: {database}\n");
    let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, &extra).await;
    let long = "r".repeat(300);
    let since = [
        "99999999999d",
        "18446744073709551615s",
        "-1h",
        "",
        "soon",
        "1h1",
        "%FF",
        "2999-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        long.as_str(),
    ];
    let mut admin_reads: Vec<String> = Vec::new();
    let mut console_reads: Vec<String> = Vec::new();
    for value in since {
        admin_reads.push(format!("/diffs?since={value}"));
        console_reads.push(format!("/ui/diffs?since={value}"));
        console_reads.push(format!("/ui/diffs/tutor?since={value}"));
    }
    for value in ["0", "-1", "201", "abc", "99999999999999999999999", "1.5"] {
        admin_reads.push(format!("/diffs?top={value}"));
        console_reads.push(format!("/ui/diffs?top={value}"));
    }
    for value in ["", "%00", "a%2Fb", "%3Cscript%3E", "%FF", long.as_str()] {
        admin_reads.push(format!("/diffs?route={value}"));
        admin_reads.push(format!("/audit?route={value}"));
    }
    for value in ["0", "-1", "5001", "abc", "99999999999999999999999"] {
        admin_reads.push(format!("/audit?limit={value}"));
    }
    for value in ["0", "-5", "abc", "99999999999999999999999", "1e3", "%FF"] {
        admin_reads.push(format!("/diffs/samples/{value}"));
        console_reads.push(format!("/ui/samples/{value}"));
    }
    for value in ["%FF", "%00", "a%20b", long.as_str()] {
        admin_reads.push(format!("/routes/{value}"));
        console_reads.push(format!("/ui/routes/{value}"));
        console_reads.push(format!("/ui/diffs/{value}"));
    }
    admin_reads.push("/diffs?format=xml".into());
    admin_reads.push("/diffs?since=1h&since=2h".into());
    for value in ["0", "-1", "2", "abc", "99999999999999999999999"] {
        console_reads.push(format!("/ui/routes/tutor?page={value}"));
    }
    console_reads.push("/ui?page=-1".into());
    console_reads.push("/ui/login?next=%FF&next=%FF".into());

    // Each probe: what it is, the request, and the kind of 400 it must get (the admin
    // API's JSON error or the console's error page).
    let admin = |method: reqwest::Method, path: &str| {
        crate::harness::client()
            .request(method, format!("{}{path}", gateway.admin_url))
            .bearer_auth(TOKEN)
    };
    let mut probes: Vec<(String, reqwest::RequestBuilder, bool)> = Vec::new();
    for path in &admin_reads {
        probes.push((
            format!("GET {path}"),
            admin(reqwest::Method::GET, path),
            JSON,
        ));
    }
    for path in &console_reads {
        probes.push((
            format!("GET {path}"),
            admin(reqwest::Method::GET, path),
            PAGE,
        ));
    }
    // Changes: malformed paths and bodies.
    let changes: [(&str, &str); 4] = [
        ("/routes/%FF/rollback", r#"{"reason":"x"}"#),
        ("/routes/%FF/promote", r#"{"reason":"x"}"#),
        ("/routes/tutor/promote", r#"{"reason":"x","percent":300}"#),
        ("/rollback", r#"{"reason":"#),
    ];
    for (path, body) in changes {
        let request = admin(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(body);
        probes.push((format!("POST {path}"), request, JSON));
    }
    let forms: [(&str, &str); 5] = [
        ("/ui/login", ""),
        ("/ui/routes/tutor/phase", "phase=shadow"),
        ("/ui/routes/%FF/phase", "csrf=&phase=shadow&reason=x"),
        ("/ui/routes/tutor/rollback", "csrf=%FF%FE"),
        ("/ui/rollback", "reason=x"),
    ];
    for (path, body) in forms {
        let request = browser()
            .post(format!("{}{path}", gateway.admin_url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        probes.push((format!("POST {path} {body}"), request, PAGE));
    }
    let mut failures = Vec::new();
    for (label, request, json) in probes {
        let verdict = match request.send().await {
            Ok(response) if json => json_400(response).await,
            Ok(response) => page_400(response).await,
            Err(error) => Err(format!("no answer ({error})")),
        };
        if let Err(got) = verdict {
            failures.push(format!("{label}: {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile inputs were not a 400:\n{}",
        failures.len(),
        admin_reads.len() + console_reads.len() + 9,
        failures.join("\n")
    );
    // The same endpoints still serve good input (once the store is migrated: the gateway
    // migrates it in the background), and the gateway lived through it all.
    for path in [
        "/diffs?since=1h&top=5&route=tutor",
        "/audit?limit=10&route=tutor",
    ] {
        let started = std::time::Instant::now();
        loop {
            let response = gateway.read(path).await;
            if response.status() == 200 {
                break;
            }
            assert!(
                response.status() == 503 && started.elapsed() < std::time::Duration::from_secs(10),
                "{path}: {}",
                response.status()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    for path in [
        "/ui/diffs?since=2h",
        "/ui/routes/tutor?page=1",
        "/ui/progress",
    ] {
        let response = gateway.read(path).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    assert!(
        !gateway.log().contains("panicked"),
        "no handler panicked:\n{}",
        gateway.log()
    );
    drop(gateway);
    crate::harness::drop_database(&database).await;
}

#[tokio::test]
async fn console_pages_forbid_scripts_and_framing_and_cookies_are_secure_behind_https() {
    let (legacy, new) = TestUpstream::pair().await;
    let plain = Gateway::start(ROUTES, &legacy.url, &new.url, "").await;
    let (session, _) = sign_in(&plain, "ada").await;
    let cookie = browser()
        .post(format!("{}/ui/login", plain.admin_url))
        .form(&[("name", "ada"), ("token", TOKEN)])
        .send()
        .await
        .expect("login")
        .headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP by default: {cookie}"
    );

    for (path, signed_in) in [
        ("/ui/login", false),
        ("/ui", true),
        ("/ui/routes/tutor", true),
        ("/ui/progress", true),
        ("/ui/diffs", true),
        ("/ui/samples/abc", true),
        ("/ui/routes/nope", true),
    ] {
        let mut request = browser().get(format!("{}{path}", plain.admin_url));
        if signed_in {
            request = request.header("cookie", &session);
        }
        let response = request.send().await.expect("page");
        let headers = response.headers().clone();
        let csp = headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{path}: no Content-Security-Policy"));
        assert!(
            csp.contains("default-src 'self'")
                && csp.contains("script-src 'none'")
                && csp.contains("frame-ancestors 'none'")
                && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(
            headers.get("x-frame-options").map(|v| v.as_bytes()),
            Some(&b"DENY"[..]),
            "{path}"
        );
        let html = response.text().await.expect("html");
        // What the policy would block must not be needed: no inline script or style.
        for inline in ["<script", "<style", "style=\"", " onclick="] {
            assert!(!html.contains(inline), "{path} carries {inline}");
        }
    }
    let css = browser()
        .get(format!("{}/ui/style.css", plain.admin_url))
        .send()
        .await
        .expect("stylesheet");
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/css"))
    );

    // Behind an https public URL cookies are Secure, unless turned off; and on request.
    for (extra, secure) in [
        (
            "console:\n  public_url: https://gateway-admin.example.org\n",
            true,
        ),
        (
            "console:\n  public_url: https://gateway-admin.example.org\n  secure_cookies: false\n",
            false,
        ),
        ("console:\n  secure_cookies: true\n", true),
    ] {
        let gateway = Gateway::start(ROUTES, &legacy.url, &new.url, extra).await;
        let answer = browser()
            .post(format!("{}/ui/login", gateway.admin_url))
            .form(&[("name", "ada"), ("token", TOKEN)])
            .send()
            .await
            .expect("login");
        let cookie = answer.headers()["set-cookie"].to_str().expect("cookie");
        assert_eq!(
            cookie.split("; ").any(|a| a == "Secure"),
            secure,
            "{extra}: {cookie}"
        );
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    }
}

#[tokio::test]
async fn the_console_answers_within_a_second_while_the_diff_store_is_cut_off() {
    let (legacy, new) = TestUpstream::pair().await;
    let database = crate::harness::fresh_database().await;
    let relay = crate::harness::Relay::start("127.0.0.1:5432").await;
    let (_, name) = database.rsplit_once('/').expect("database name");
    let through_relay = format!("postgres://postgres@127.0.0.1:{}/{name}", relay.port());
    let mut routes = String::from("routes:\n");
    for n in 0..10 {
        routes.push_str(&format!("  - {{name: r{n}, path: /r{n}, phase: shadow}}\n"));
    }
    let extra = format!("diff_store:\n  database_url: {through_relay}\n  flush_interval_ms: 100\n");
    let gateway = Gateway::start(&routes, &legacy.url, &new.url, &extra).await;
    let slow_client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("client");
    let routes_page = || async {
        let started = std::time::Instant::now();
        let response = slow_client
            .get(format!("{}/ui", gateway.admin_url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the console answers");
        let status = response.status().as_u16();
        let html = response.text().await.expect("html");
        (status, started.elapsed(), html)
    };

    // Through the relay the store works: pairs are counted, the gates have a verdict.
    for n in 0..10 {
        assert_eq!(gateway.get(&format!("/r{n}")).await.0, 200);
    }
    let started = std::time::Instant::now();
    loop {
        let (status, report) = gateway
            .admin(
                reqwest::Method::GET,
                "/diffs?since=1h",
                serde_json::json!({}),
            )
            .await;
        if status == 200 && report["routes"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the store never counted a pair: {status} {report}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, _, html) = routes_page().await;
    assert_eq!(status, 200);
    assert!(
        html.contains("not yet") && !html.contains("diff store unavailable"),
        "{html}"
    );

    relay.partition();
    for attempt in 0..3 {
        let (status, elapsed, html) = routes_page().await;
        assert_eq!(status, 200, "attempt {attempt}");
        assert!(
            elapsed < std::time::Duration::from_secs(1),
            "attempt {attempt}: the routes page took {elapsed:?}"
        );
        assert!(html.contains("diff store unavailable"), "{html}");
        assert!(html.contains("Roll back r0") || html.contains("Roll every route back"));
    }
    let started = std::time::Instant::now();
    let detail = slow_client
        .get(format!("{}/ui/routes/r3", gateway.admin_url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("route page");
    assert_eq!(detail.status(), 200);
    let detail = detail.text().await.expect("html");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "the route page took {:?}",
        started.elapsed()
    );
    assert!(detail.contains("diff store unavailable"), "{detail}");
    // What became of every copy is on the route page, whatever the store does.
    assert!(
        detail.contains("Shadow copies on this instance") && detail.contains("lost: served failed"),
        "{detail}"
    );
    // The diff report pages give up after the console's wait, saying why.
    for page in [
        "/ui/diffs?since=1h",
        "/ui/diffs/r3?since=1h",
        "/ui/samples/1",
    ] {
        let started = std::time::Instant::now();
        let answer = slow_client
            .get(format!("{}{page}", gateway.admin_url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("diff page");
        let status = answer.status().as_u16();
        let html = answer.text().await.expect("html");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{page} took {:?}",
            started.elapsed()
        );
        assert_eq!(status, 503, "{page}: {html}");
        assert!(html.contains("did not answer within"), "{page}: {html}");
    }
    // Clients are served as before.
    let started = std::time::Instant::now();
    for n in 0..20 {
        let (status, side, _) = gateway.get(&format!("/r{}", n % 10)).await;
        assert_eq!((status, side.as_str()), (200, "legacy"));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "client requests slowed down: {:?}",
        started.elapsed()
    );

    // Restored, the gates have their verdicts back.
    relay.restore().await;
    let started = std::time::Instant::now();
    loop {
        let (status, _, html) = routes_page().await;
        if status == 200 && !html.contains("diff store unavailable") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the console never saw the store again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop(gateway);
    crate::harness::drop_database(&database).await;
}
