// deno-lint-ignore-file no-explicit-any
/**
 * ai-tutor-professional: the tutor the frontend calls today (DeepSeek).
 * No authentication; CORS *shared*; `options.stream` is ignored.
 */

import {
  jsonWith,
  sharedCorsHeaders as corsHeaders,
  withCors,
} from "../shared/cors.ts";
import { DEEPSEEK_BASE_URL, providerUrl } from "../shared/providers.ts";

interface TutorContext {
  subject?: string;
  difficulty?: "beginner" | "intermediate" | "advanced";
  sessionId?: string;
  userId?: string;
  history?: Array<{ role: string; content: string; timestamp: number }>;
}

interface Criterion {
  name: string;
  value: number;
}

// ---------------------------------------------------------------------------
// Prompts (copied verbatim into README.md, "Prompts").

export const TUTOR_BASE_PROMPT = "You are an expert educational AI tutor.";

export const TUTOR_GUIDELINES = "Guidelines:\n" +
  "1. Provide clear, well-structured responses using appropriate academic language\n" +
  "2. Use concrete examples to illustrate concepts\n" +
  "3. Highlight key concepts and important points\n" +
  "4. Encourage critical thinking with thought-provoking questions\n" +
  "5. Build on previous knowledge and make connections between ideas";

export function generateSystemPrompt(context: TutorContext): string {
  const sentences = [TUTOR_BASE_PROMPT];
  if (context.subject) {
    sentences.push(`You specialize in ${context.subject}.`);
  }
  if (context.difficulty) {
    sentences.push(
      `Adjust your explanations for ${context.difficulty} level understanding.`,
    );
  }
  return `${sentences.join(" ")}\n\n${TUTOR_GUIDELINES}`;
}

export function enhanceUserMessage(
  message: string,
  context: TutorContext,
): string {
  const enhancements: string[] = [];

  if (context.subject) {
    enhancements.push(`Context: This is a ${context.subject} question.`);
  }
  if (context.difficulty) {
    enhancements.push(`Level: ${context.difficulty}`);
  }

  const lowerMessage = message.toLowerCase();
  if (lowerMessage.includes("explain") || lowerMessage.includes("what is")) {
    enhancements.push("Please provide a structured explanation with examples.");
  } else if (
    lowerMessage.includes("solve") || lowerMessage.includes("calculate")
  ) {
    enhancements.push("Please show step-by-step solution process.");
  }

  return enhancements.length > 0
    ? `${message}\n\n[${enhancements.join(" ")}]`
    : message;
}

// ---------------------------------------------------------------------------
// DeepSeek client

class DeepSeekClient {
  private apiKey: string;
  private baseURL: string;

  constructor() {
    this.apiKey = Deno.env.get("DEEPSEEK_API_KEY") || "";
    this.baseURL = providerUrl(
      "https://api.deepseek.com/v1",
      DEEPSEEK_BASE_URL,
    );
    if (!this.apiKey) {
      throw new Error("DEEPSEEK_API_KEY environment variable is required");
    }
  }

  async chatCompletion(request: {
    model: string;
    messages: Array<{ role: string; content: string }>;
    temperature?: number;
    max_tokens?: number;
  }): Promise<any> {
    const response = await fetch(`${this.baseURL}/chat/completions`, {
      method: "POST",
      headers: {
        "Authorization": `Bearer ${this.apiKey}`,
        "Content-Type": "application/json",
      },
      body: JSON.stringify({
        model: request.model,
        messages: request.messages,
        temperature: request.temperature || 0.7,
        max_tokens: request.max_tokens || 2000,
        stream: false,
      }),
    });

    if (!response.ok) {
      const errorText = await response.text();
      throw new Error(`DeepSeek API error: ${response.status} ${errorText}`);
    }

    return response.json();
  }
}

// ---------------------------------------------------------------------------
// Quality assessment (deterministic; JavaScript string and regex semantics)

const SUGGESTIONS: Record<string, string> = {
  accuracy: "Verify facts and ensure contextual relevance",
  completeness: "Add more detail and cover additional aspects",
  clarity: "Simplify language and improve structure",
  educationalValue: "Include examples and encourage critical thinking",
};

function score(checks: boolean[]): number {
  return checks.filter(Boolean).length / 3;
}

function hasWordOverlap(
  content: string,
  message: string,
  threshold: number,
): boolean {
  const contentWords = content.toLowerCase().split(/\s+/);
  const messageWords = message.toLowerCase().split(/\s+/);
  const overlap =
    contentWords.filter((word) =>
      word.length > 3 && messageWords.includes(word)
    ).length;
  return overlap / messageWords.length >= threshold;
}

function assessAccuracy(content: string, message: string): Criterion {
  const citesSources = /according to|research shows|studies indicate/i.test(
    content,
  );
  const noCommonErrors = !/their are|there are(?!\s)/i.test(content);
  const relevant = hasWordOverlap(content, message, 0.3);
  return {
    name: "accuracy",
    value: score([citesSources, noCommonErrors, relevant]),
  };
}

function answersQuestion(_content: string, _message: string): boolean {
  // The legacy's answer-type detection returns true in every case.
  return true;
}

function assessCompleteness(content: string, message: string): Criterion {
  const answers = answersQuestion(content, message);
  const adequateLength = content.length >= 100 && content.length <= 3000;
  const nextSteps = /next|further|practice|try|consider/i.test(content);
  return {
    name: "completeness",
    value: score([answers, adequateLength, nextSteps]),
  };
}

function assessClarity(content: string): Criterion {
  const words = content.split(/\s+/);
  const averageWordLength = words.reduce((sum, w) => sum + w.length, 0) /
    words.length;
  const simpleLanguage = averageWordLength <= 8;
  const transitions = /first|then|however|therefore|because/i.test(content);
  const examples = /example|instance|such as/i.test(content);
  return {
    name: "clarity",
    value: score([simpleLanguage, transitions, examples]),
  };
}

function assessEducationalValue(content: string): Criterion {
  const objectives = /learn|understand|master/i.test(content);
  const examples = /example|instance|demonstrate/i.test(content);
  const thinking = /why|how|what if|consider|analyze/i.test(content);
  return {
    name: "educationalValue",
    value: score([objectives, examples, thinking]),
  };
}

export function assessQuality(content: string, message: string) {
  const criteria = [
    assessAccuracy(content, message),
    assessCompleteness(content, message),
    assessClarity(content),
    assessEducationalValue(content),
  ];
  const values = criteria.map((c) => c.value);

  return {
    overall: values.reduce((sum, v) => sum + v, 0) / criteria.length,
    breakdown: criteria,
    recommendations: criteria
      .filter((c) => c.value < 0.7)
      .map((c) => ({
        criterion: c.name,
        issue: `${c.name} score below threshold`,
        suggestion: SUGGESTIONS[c.name],
        priority: c.value < 0.5 ? "high" : "medium",
      })),
    confidence: Math.max(0, 1 - (Math.max(...values) - Math.min(...values))),
  };
}

// ---------------------------------------------------------------------------

const json = jsonWith(corsHeaders);

export const handler = withCors(
  corsHeaders,
  async (req: Request): Promise<Response> => {
    if (req.method !== "POST") {
      return json({ error: "Method not allowed" }, 405);
    }

    try {
      const startTime = Date.now();
      const body: any = await req.json();

      if (!body.message || typeof body.message !== "string") {
        return json({ error: "Message is required and must be a string" }, 400);
      }

      const client = new DeepSeekClient();
      const context: TutorContext = body.context || {};

      const messages: Array<{ role: string; content: string }> = [];
      messages.push({ role: "system", content: generateSystemPrompt(context) });
      if (context.history) {
        messages.push(
          ...context.history.map((item) => ({
            role: item.role,
            content: item.content,
          })),
        );
      }
      messages.push({
        role: "user",
        content: enhanceUserMessage(body.message, context),
      });

      const model = body.options?.mode === "reasoning"
        ? "deepseek-reasoner"
        : "deepseek-chat";
      const aiResponse = await client.chatCompletion({
        model,
        messages,
        temperature: body.options?.temperature,
        max_tokens: body.options?.maxTokens,
      });

      const processingTime = Date.now() - startTime;
      const content = aiResponse.choices?.[0]?.message?.content || "";
      const quality = assessQuality(content, body.message);

      const response: Record<string, unknown> = {
        content,
        metadata: {
          model: aiResponse.model,
          processingTime,
          enhancementsApplied: [
            "prompt_optimization",
            "educational_formatting",
          ],
          cacheHit: false,
          responseType: "conversation",
          requestId: `req_${Date.now()}_${
            Math.random().toString(36).substr(2, 9)
          }`,
          timestamp: new Date().toISOString(),
        },
        quality,
      };
      if (aiResponse.usage) {
        response.usage = {
          promptTokens: aiResponse.usage.prompt_tokens,
          completionTokens: aiResponse.usage.completion_tokens,
          totalTokens: aiResponse.usage.total_tokens,
        };
      }

      return json(response);
    } catch (error: any) {
      return json({
        error: "Internal server error",
        message: error.message,
        timestamp: new Date().toISOString(),
      }, 500);
    }
  },
);
