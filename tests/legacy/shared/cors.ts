// The three CORS variants used by the legacy edge functions.

/** *basic*: most functions (ai-proxy, ai-study-*, security-monitor). */
export const corsHeaders: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers":
    "authorization, x-client-info, apikey, content-type",
};

/** A JSON answer carrying `headers` (the function's CORS headers). */
export function jsonWith(headers: Record<string, string>): JsonAnswer {
  return (body, status = 200) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { ...headers, "Content-Type": "application/json" },
    });
}

/** *shared*: supabase/functions/_shared/cors.ts (ai-tutor-professional). */
export const sharedCorsHeaders: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers":
    "authorization, x-client-info, apikey, content-type, x-supabase-auth, x-request-id",
  "Access-Control-Allow-Methods": "POST, GET, OPTIONS, PUT, DELETE",
  "Access-Control-Max-Age": "86400",
  "Access-Control-Allow-Credentials": "true",
};

/** *allow-list*: supabase/functions/cors-config.ts (auth-validation, encryption). */
const DEFAULT_ALLOWED_ORIGINS = [
  "http://localhost:5173",
  "http://localhost:5174",
  "http://localhost:3000",
  "https://study-flow-ai.vercel.app",
  "https://study-flow-ai-git-main.vercel.app",
  "https://study-flow-ai-production.vercel.app",
];

const VERCEL_PREVIEW_HOST = /^study-flow-ai-[a-z0-9]+-[a-z0-9]+\.vercel\.app$/;

function getAllowedOrigins(): string[] {
  const envOrigins = Deno.env.get("ALLOWED_ORIGINS");
  if (envOrigins) {
    return envOrigins.split(",").map((origin) => origin.trim());
  }
  return DEFAULT_ALLOWED_ORIGINS;
}

function isOriginAllowed(origin: string, allowedOrigins: string[]): boolean {
  if (!origin) return false;

  let originUrl: URL;
  try {
    originUrl = new URL(origin);
  } catch {
    return false;
  }

  // Vercel preview deployments, whatever the configured list says.
  if (VERCEL_PREVIEW_HOST.test(originUrl.hostname)) return true;

  // Otherwise scheme, host and port must be equal to one allowed origin.
  return allowedOrigins.some((allowed) => {
    try {
      const allowedUrl = new URL(allowed);
      return originUrl.protocol === allowedUrl.protocol &&
        originUrl.hostname === allowedUrl.hostname &&
        originUrl.port === allowedUrl.port;
    } catch {
      return false;
    }
  });
}

export function getCorsHeaders(request: Request): Record<string, string> {
  const origin = request.headers.get("origin") || "";
  const allowOrigin = isOriginAllowed(origin, getAllowedOrigins())
    ? origin
    : "null";

  return {
    "Access-Control-Allow-Origin": allowOrigin,
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Allow-Headers":
      "authorization, x-client-info, apikey, content-type, x-request-id",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Max-Age": "86400",
  };
}

export function handleCorsPreflightRequest(request: Request): Response {
  return new Response(null, { status: 204, headers: getCorsHeaders(request) });
}

/** A JSON answer: the body and its status (200 by default). */
export type JsonAnswer = (body: unknown, status?: number) => Response;

/** A handler behind fixed CORS headers: a preflight is answered with them. */
export function withCors(
  headers: Record<string, string>,
  handle: (req: Request) => Promise<Response>,
): (req: Request) => Promise<Response> {
  return (req) =>
    req.method === "OPTIONS"
      ? Promise.resolve(new Response(null, { headers }))
      : handle(req);
}

/**
 * A handler behind the *allow-list* variant: a preflight is answered for the
 * request's origin; `handle` gets the JSON answer carrying that origin's headers.
 */
export function withAllowList(
  handle: (req: Request, json: JsonAnswer) => Promise<Response>,
): (req: Request) => Promise<Response> {
  return (req) =>
    req.method === "OPTIONS"
      ? Promise.resolve(handleCorsPreflightRequest(req))
      : handle(req, jsonWith(getCorsHeaders(req)));
}
