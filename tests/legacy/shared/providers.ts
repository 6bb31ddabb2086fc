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

/** A provider as ai-proxy and ai-proxy-secure call it. */
export interface ProviderConfig {
  endpoint: string;
  apiKey: string | undefined;
  defaultModel: string;
}

export function getProvider(provider: string): ProviderConfig | undefined {
  switch (provider) {
    case "gemini":
      return {
        endpoint: providerUrl(
          "https://generativelanguage.googleapis.com/v1beta/models/gemini-1.5-flash:generateContent",
          GEMINI_BASE_URL,
        ),
        apiKey: Deno.env.get("GEMINI_API_KEY"),
        defaultModel: "gemini-1.5-flash",
      };
    case "openai":
      return {
        endpoint: providerUrl(
          "https://api.openai.com/v1/chat/completions",
          OPENAI_BASE_URL,
        ),
        apiKey: Deno.env.get("OPENAI_API_KEY"),
        defaultModel: "gpt-4o-mini",
      };
    case "claude":
      return {
        endpoint: providerUrl(
          "https://api.anthropic.com/v1/messages",
          ANTHROPIC_BASE_URL,
        ),
        apiKey: Deno.env.get("CLAUDE_API_KEY"),
        defaultModel: "claude-3-haiku-20240307",
      };
    case "deepseek":
      return {
        endpoint: providerUrl(
          "https://api.deepseek.com/chat/completions",
          DEEPSEEK_BASE_URL,
        ),
        apiKey: Deno.env.get("DEEPSEEK_API_KEY"),
        defaultModel: "deepseek-chat",
      };
    default:
      return undefined;
  }
}

/**
 * The model's JSON answer: `JSON.parse` of the span of `text` from its first "{"
 * to its last "}" (the whole text without one), or `fallback()` when that does
 * not parse.
 */
export function parseJsonSpan(text: string, fallback: () => unknown): unknown {
  const jsonMatch = text.match(/\{[\s\S]*\}/);
  try {
    return JSON.parse(jsonMatch ? jsonMatch[0] : text);
  } catch {
    return fallback();
  }
}

/** POSTs `payload` to OpenAI's chat completions with `apiKey`, as the study functions do. */
export function openAiChat(
  apiKey: string | undefined,
  payload: unknown,
): Promise<Response> {
  return fetch(
    providerUrl("https://api.openai.com/v1/chat/completions", OPENAI_BASE_URL),
    {
      method: "POST",
      headers: {
        "Authorization": `Bearer ${apiKey}`,
        "Content-Type": "application/json",
      },
      body: JSON.stringify(payload),
    },
  );
}
