// The three CORS variants used by the legacy edge functions.

/** *basic*: most functions (ai-proxy, ai-study-*, security-monitor). */
export const corsHeaders: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers":
    "authorization, x-client-info, apikey, content-type",
};

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
