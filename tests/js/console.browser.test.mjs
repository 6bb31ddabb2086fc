// The operator console in a real browser (Debian's Chromium driven by playwright-core):
// sign in, find the phase control offering the next step, move a route to canary 25 %
// and see requests split, see charts with a time axis, find no rollback for a route
// with no legacy twin, roll the canary back and see the next request served by legacy,
// open a differing path and its sample at 1 280 px with both answers in view. Writes
// the screenshots the README shows.
//
// Run by the Rust end-to-end suite with:
//   STUDYFLOW_GATEWAY_URL, STUDYFLOW_ADMIN_URL, STUDYFLOW_ADMIN_TOKEN, STUDYFLOW_SCREENSHOTS
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const gateway = process.env.STUDYFLOW_GATEWAY_URL;
const admin = process.env.STUDYFLOW_ADMIN_URL;
const token = process.env.STUDYFLOW_ADMIN_TOKEN;
const shots = process.env.STUDYFLOW_SCREENSHOTS;
assert.ok(gateway && admin && token && shots, "STUDYFLOW_GATEWAY_URL, _ADMIN_URL, _ADMIN_TOKEN and _SCREENSHOTS must be set");

let browser;
let page;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
});

after(async () => {
  await browser?.close();
});

/** An unsigned token whose `sub` the gateway buckets on (routing only). */
function bearer(sub) {
  const b64 = (s) => Buffer.from(s).toString("base64url");
  return `Bearer ${b64('{"alg":"HS256"}')}.${b64(JSON.stringify({ sub, role: "authenticated" }))}.sig`;
}

async function servedBy(user) {
  const res = await fetch(`${gateway}/functions/v1/auth-validation`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: bearer(user) },
    body: JSON.stringify({ email: "student@gmail.com", action: "validate" }),
  });
  assert.equal(res.status, 200);
  return res.headers.get("x-studyflow-served-by");
}

test("an operator signs in, opens a canary, rolls it back and reviews a diff", async () => {
  await page.goto(`${admin}/ui`);
  assert.match(page.url(), /\/ui\/login/, "reading needs a session");
  await page.getByLabel("Your name").fill("ada");
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Routes" }).waitFor();
  assert.ok(await page.getByText("signed in as").isVisible());

  // A route with no legacy twin offers no rollback, here or on its page.
  assert.equal(await page.getByRole("button", { name: "Roll back ai-tutor-stream" }).count(), 0);
  await page.goto(`${admin}/ui/routes/ai-tutor-stream`);
  assert.equal(await page.getByRole("button", { name: "Roll back to legacy" }).count(), 0);
  assert.ok(await page.getByText("no legacy twin").first().isVisible());
  await page.goto(`${admin}/ui`);

  // The phase control shows the phase and offers the next step, not a step back.
  await page.getByRole("link", { name: "auth-validation", exact: true }).click();
  assert.equal(await page.getByLabel("Move to").inputValue(), "shadow", "the next step is offered first");
  assert.ok(await page.getByText("Now legacy").isVisible());

  // Canary 25 %: forced past the gate (no evidence yet), with a reason.
  await page.getByLabel("Move to").selectOption("canary");
  await page.getByLabel("canary %").fill("25");
  await page.getByLabel("Reason", { exact: true }).first().fill("browser test: first users");
  await page.getByLabel(/Force past the promotion gate/).check();
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByText("Phase changed.").waitFor();

  const sides = [];
  for (let i = 0; i < 200; i++) sides.push(await servedBy(`student-${i}`));
  const onNew = sides.filter((s) => s === "new").length;
  console.log(`canary 25 %: ${onNew} of 200 users served by new`);
  // Buckets are a hash of route and user: 200 users land near 25 % (50, standard
  // deviation about 6), not exactly at it.
  assert.ok(onNew >= 30 && onNew <= 70, `requests split (${onNew} of 200 on new)`);
  // Sticky: every user asking again is served by the same side.
  for (let i = 0; i < 200; i++) {
    assert.equal(await servedBy(`student-${i}`), sides[i], `student-${i} stays on ${sides[i]}`);
  }

  // Charts have a time axis and mark the phase change (once the history has points).
  const split = page.getByRole("img", { name: "Traffic split: share served by new" });
  let chartText = "";
  let markers = 0;
  for (let i = 0; i < 30 && !(/\d\d:\d\d/.test(chartText) && markers > 0); i++) {
    if (i > 0) await page.waitForTimeout(500);
    await page.goto(`${admin}/ui/routes/auth-validation`);
    chartText = await split.textContent();
    markers = await split.locator("line.marker").count();
  }
  assert.match(chartText, /\d\d:\d\d/, "time labels on the x axis");
  assert.match(chartText, /UTC/);
  assert.ok(markers >= 1, "the phase change is marked");

  // Roll back from the routes page: the next request is legacy's.
  await page.goto(`${admin}/ui`);
  await page.screenshot({ path: `${shots}/console-routes.png`, fullPage: true });
  await page.getByLabel("Reason for rolling back auth-validation").fill("browser test: rollback");
  await page.getByRole("button", { name: "Roll back auth-validation" }).click();
  await page.getByText("Rolled back to legacy.").waitFor();
  for (let i = 0; i < 20; i++) assert.equal(await servedBy(`student-${i}`), "legacy");

  // A differing path and its sample (the backend alters one field in this stack), at
  // 1 280 px: both answers side by side, within the window.
  await new Promise((r) => setTimeout(r, 2500));
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${admin}/ui/routes/auth-validation`);
  await page.getByRole("heading", { name: "Differing paths" }).waitFor();
  const sample = page.locator('a[href^="/ui/samples/"]').first();
  await sample.waitFor();
  await sample.click();
  await page.getByRole("heading", { name: "Differences" }).waitFor();
  assert.ok(await page.locator("mark").first().isVisible(), "the differing value is highlighted");
  assert.ok((await page.content()).includes("/message"));
  for (const side of ["Served answer", "Shadow answer"]) {
    const box = await page.getByRole("region", { name: side }).boundingBox();
    assert.ok(box && box.width > 300, `${side} has room (${JSON.stringify(box)})`);
    assert.ok(box.x >= 0 && box.x + box.width <= 1280, `${side} is within 1 280 px (${JSON.stringify(box)})`);
  }
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 1280, `the page is ${width} px wide`);
  await page.screenshot({ path: `${shots}/console-sample.png`, fullPage: true });
});
