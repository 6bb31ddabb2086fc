// The real frontend client (supabase-js) calling `auth-validation` through the gateway.
//
// Run by the Rust end-to-end suite with:
//   STUDYFLOW_GATEWAY_URL   the gateway's URL
//   STUDYFLOW_ANON_KEY      the project's anon key
//   STUDYFLOW_EXPECT_SIDE   `legacy` or `new`: which side must have answered
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient, FunctionsHttpError } from "@supabase/supabase-js";
import WebSocket from "ws";

const gateway = process.env.STUDYFLOW_GATEWAY_URL;
const anonKey = process.env.STUDYFLOW_ANON_KEY;
const expectedSide = process.env.STUDYFLOW_EXPECT_SIDE;
assert.ok(gateway && anonKey && expectedSide, "STUDYFLOW_GATEWAY_URL, STUDYFLOW_ANON_KEY and STUDYFLOW_EXPECT_SIDE must be set");

const supabase = createClient(gateway, anonKey, {
  auth: { persistSession: false, autoRefreshToken: false },
  // Node 20 has no global WebSocket; the browser frontend does not need this.
  realtime: { transport: WebSocket },
});

const ALLOWED = "@gmail.com, @hotmail.com, @outlook.com, @yahoo.com, @protonmail.com, @icloud.com";

/** Calls the function and returns status, body and the side that served it. */
async function invoke(body) {
  const { data, error, response } = await supabase.functions.invoke("auth-validation", { body });
  if (error) {
    assert.ok(error instanceof FunctionsHttpError, `unexpected ${error.name}: ${error.message}`);
    const res = error.context;
    return { status: res.status, body: await res.json(), side: res.headers.get("x-studyflow-served-by") };
  }
  return { status: response.status, body: data, side: response.headers.get("x-studyflow-served-by") };
}

async function expectAnswer(body, status, answer) {
  const got = await invoke(body);
  assert.equal(got.side, expectedSide, "served by the expected side");
  assert.equal(got.status, status);
  assert.deepEqual(got.body, answer);
}

test("a valid address passes", async () => {
  await expectAnswer({ email: "ada@gmail.com", action: "validate" }, 200, {
    valid: true,
    message: "Email validation successful",
  });
  await expectAnswer({ email: "Grace.Hopper@Outlook.com", action: "signup" }, 200, {
    valid: true,
    message: "Email validation successful",
  });
});

test("a malformed address is refused", async () => {
  await expectAnswer({ email: "ada at gmail", action: "validate" }, 400, { valid: false, error: "Invalid email format" });
});

test("a domain outside the allow-list is refused", async () => {
  await expectAnswer({ email: "ada@example.com", action: "validate" }, 400, {
    valid: false,
    error: `Email domain not allowed. Please use one of: ${ALLOWED}`,
  });
});

test("disposable providers are refused on signup only", async () => {
  await expectAnswer({ email: "mailinator.fan@gmail.com", action: "signup" }, 400, {
    valid: false,
    error: "Disposable email addresses are not allowed",
  });
  await expectAnswer({ email: "mailinator.fan@gmail.com", action: "validate" }, 200, {
    valid: true,
    message: "Email validation successful",
  });
});

test("overlong addresses are refused on signup", async () => {
  const email = `${"a".repeat(250)}@gmail.com`;
  await expectAnswer({ email, action: "signup" }, 400, { valid: false, error: "Email address is too long" });
});

test("missing fields are refused", async () => {
  await expectAnswer({ email: "ada@gmail.com" }, 400, { valid: false, error: "Missing required parameters" });
  await expectAnswer({ action: "signup" }, 400, { valid: false, error: "Missing required parameters" });
});

test("a body that is not JSON is a service error", async () => {
  await expectAnswer("this is not json", 500, { valid: false, error: "Validation service error" });
});

test("CORS preflight echoes an allowed origin and answers null otherwise", async () => {
  const preflight = (origin) =>
    fetch(`${gateway}/functions/v1/auth-validation`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
  const allowed = await preflight("http://localhost:5173");
  assert.equal(allowed.status, 204);
  assert.equal(allowed.headers.get("x-studyflow-served-by"), expectedSide);
  assert.equal(allowed.headers.get("access-control-allow-origin"), "http://localhost:5173");
  assert.equal(allowed.headers.get("access-control-allow-credentials"), "true");
  assert.equal(allowed.headers.get("access-control-allow-methods"), "GET, POST, PUT, DELETE, OPTIONS");
  assert.equal(
    allowed.headers.get("access-control-allow-headers"),
    "authorization, x-client-info, apikey, content-type, x-request-id",
  );
  assert.equal(allowed.headers.get("access-control-max-age"), "86400");
  assert.equal(await allowed.text(), "");

  const preview = await preflight("https://study-flow-ai-feature1-team.vercel.app");
  assert.equal(preview.headers.get("access-control-allow-origin"), "https://study-flow-ai-feature1-team.vercel.app");

  const disallowed = await preflight("https://evil.example");
  assert.equal(disallowed.status, 204);
  assert.equal(disallowed.headers.get("access-control-allow-origin"), "null");
});

test("answers carry JSON content type and the allow-list CORS headers", async () => {
  const res = await fetch(`${gateway}/functions/v1/auth-validation`, {
    method: "POST",
    headers: { origin: "http://localhost:3000", "content-type": "application/json", apikey: anonKey },
    body: JSON.stringify({ email: "ada@gmail.com", action: "validate" }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /^application\/json/);
  assert.equal(res.headers.get("access-control-allow-origin"), "http://localhost:3000");
  assert.equal(res.headers.get("x-studyflow-served-by"), expectedSide);
});
