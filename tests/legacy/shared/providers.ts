// Provider endpoints. A `<PROVIDER>_BASE_URL` env var (e.g. http://127.0.0.1:7000)
// replaces only the scheme, host and port of the real URL; path and query stay.

export const DEEPSEEK_BASE_URL = "DEEPSEEK_BASE_URL";
export const OPENAI_BASE_URL = "OPENAI_BASE_URL";
export const ANTHROPIC_BASE_URL = "ANTHROPIC_BASE_URL";
export const GEMINI_BASE_URL = "GEMINI_BASE_URL";

export function providerUrl(realUrl: string, baseEnv: string): string {
  const base = Deno.env.get(baseEnv);
  if (!base) return realUrl;
  const schemeEnd = realUrl.indexOf("://") + 3;
  const pathStart = realUrl.indexOf("/", schemeEnd);
  const rest = pathStart === -1 ? "" : realUrl.slice(pathStart);
  return new URL(base).origin + rest;
}
