/**
 * Legacy stand-in: the legacy Supabase Edge Functions in one Deno process,
 * routed like Supabase's edge runtime at /functions/v1/<name>.
 */

import { handler as aiTutorProfessional } from "./functions/ai-tutor-professional.ts";
import { handler as aiProxy } from "./functions/ai-proxy.ts";
import { handler as aiProxySecure } from "./functions/ai-proxy-secure.ts";
import { handler as aiStudyAnalytics } from "./functions/ai-study-analytics.ts";
import { handler as aiStudyRecommendations } from "./functions/ai-study-recommendations.ts";
import { handler as authValidation } from "./functions/auth-validation.ts";
import { handler as encryption } from "./functions/encryption.ts";
import { handler as securityMonitor } from "./functions/security-monitor.ts";
import { handler as semanticSearch } from "./functions/semantic-search.ts";
import { getUser } from "./shared/auth.ts";

type Handler = (req: Request) => Promise<Response>;

const functions = new Map<string, Handler>([
  ["ai-tutor-professional", aiTutorProfessional],
  ["ai-proxy", aiProxy],
  ["ai-proxy-secure", aiProxySecure],
  ["ai-study-analytics", aiStudyAnalytics],
  ["ai-study-recommendations", aiStudyRecommendations],
  ["auth-validation", authValidation],
  ["encryption", encryption],
  ["security-monitor", securityMonitor],
  ["semantic-search", semanticSearch],
]);

const FUNCTION_PATH = /^\/functions\/v1\/([^/]+)(?:\/.*)?$/;

function jsonResponse(body: unknown, status: number): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

/**
 * Supabase Auth's sign-out, as far as the stack needs it: 204 for a valid access token
 * (whatever the scope), 401 otherwise. The stand-in keeps no sessions to end.
 */
async function logout(req: Request): Promise<Response> {
  const token = (req.headers.get("Authorization") ?? "").replace("Bearer ", "");
  const { data: { user }, error } = await getUser(token);
  if (error || !user) {
    return jsonResponse(
      { code: 401, error_code: "bad_jwt", msg: "invalid JWT" },
      401,
    );
  }
  return new Response(null, { status: 204 });
}

async function route(req: Request, pathname: string): Promise<Response> {
  if (pathname === "/health" && req.method === "GET") {
    return jsonResponse({ status: "ok" }, 200);
  }
  if (pathname === "/auth/v1/logout" && req.method === "POST") {
    return await logout(req);
  }

  const match = FUNCTION_PATH.exec(pathname);
  const handler = match ? functions.get(match[1]) : undefined;
  if (!handler) {
    return jsonResponse({
      code: "NOT_FOUND",
      message: "Requested function was not found",
    }, 404);
  }

  try {
    return await handler(req);
  } catch (error) {
    // Supabase's answer to an uncaught error. The functions catch their own errors,
    // except semantic-search, which lets them through like its original.
    console.error(`uncaught error in ${match![1]}:`, (error as Error).name);
    return jsonResponse({
      code: "WORKER_ERROR",
      message: "Function exited due to an error (please check logs)",
    }, 500);
  }
}

const port = Number(Deno.env.get("PORT") ?? 54321);

Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: ({ hostname, port }) => {
    console.log(`legacy stand-in listening on http://${hostname}:${port}`);
  },
}, async (req) => {
  const { pathname } = new URL(req.url);
  const response = await route(req, pathname);
  console.log(`${req.method} ${pathname} ${response.status}`);
  return response;
});
