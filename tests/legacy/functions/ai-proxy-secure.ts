// deno-lint-ignore-file no-explicit-any
/**
 * ai-proxy-secure: like ai-proxy without rate limit or usage log; answers the
 * provider's JSON as received. CORS *basic* plus the signature headers.
 * Errors: 500 {error}.
 */

import { corsHeaders as basicCorsHeaders } from "../shared/cors.ts";
import { getUser } from "../shared/auth.ts";
import {
  ANTHROPIC_BASE_URL,
  DEEPSEEK_BASE_URL,
  GEMINI_BASE_URL,
  OPENAI_BASE_URL,
  providerUrl,
} from "../shared/providers.ts";

const corsHeaders: Record<string, string> = {
  ...basicCorsHeaders,
  "Access-Control-Allow-Headers": `${
    basicCorsHeaders["Access-Control-Allow-Headers"]
  }, x-signature, x-timestamp, x-nonce`,
};

interface ProviderConfig {
  endpoint: string;
  apiKey: string | undefined;
  defaultModel: string;
}

function getProvider(provider: string): ProviderConfig | undefined {
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

export async function handler(req: Request): Promise<Response> {
  if (req.method === "OPTIONS") {
    return new Response(null, { headers: corsHeaders });
  }

  try {
    const authHeader = req.headers.get("Authorization");
    if (!authHeader) {
      throw new Error("Missing authorization header");
    }

    const { data: { user }, error: authError } = await getUser(
      authHeader.replace("Bearer ", ""),
    );
    if (authError || !user) {
      throw new Error("Invalid or expired token");
    }

    const { provider, action, messages, model, temperature, maxTokens } =
      await req.json();

    if (!provider || !action) {
      throw new Error("Missing required parameters: provider and action");
    }

    const config = getProvider(provider);
    if (!config || !config.apiKey) {
      throw new Error(`${provider} API key not configured`);
    }

    let url = config.endpoint;
    let requestBody: any;
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
    };

    if (provider === "gemini") {
      url += `?key=${config.apiKey}`;
      requestBody = {
        contents: messages.map((msg: any) => ({
          role: msg.role === "assistant" ? "model" : "user",
          parts: [{ text: msg.content }],
        })),
      };
    } else if (provider === "claude") {
      headers["x-api-key"] = config.apiKey;
      headers["anthropic-version"] = "2023-06-01";
      requestBody = {
        model: model || config.defaultModel,
        max_tokens: maxTokens || 1024,
        messages: messages.filter((msg: any) => msg.role !== "system"),
      };
    } else {
      // The real OpenAI/DeepSeek APIs reject a request without a messages
      // array (the legacy then fails with a 500); fail the same way up front,
      // as gemini's map() and claude's filter() do.
      if (!Array.isArray(messages)) {
        throw new TypeError("messages must be an array");
      }
      headers["Authorization"] = `Bearer ${config.apiKey}`;
      requestBody = {
        model: model || config.defaultModel,
        messages,
        max_tokens: maxTokens || 1024,
        temperature: temperature || 0.7,
      };
    }

    const response = await fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify(requestBody),
    });

    if (!response.ok) {
      const errorText = await response.text();
      throw new Error(`${provider} API error: ${response.status} ${errorText}`);
    }

    const data = await response.json();

    return new Response(JSON.stringify(data), {
      headers: { ...corsHeaders, "Content-Type": "application/json" },
    });
  } catch (error: any) {
    return new Response(
      JSON.stringify({ error: error.message || "Internal server error" }),
      {
        status: 500,
        headers: { ...corsHeaders, "Content-Type": "application/json" },
      },
    );
  }
}
