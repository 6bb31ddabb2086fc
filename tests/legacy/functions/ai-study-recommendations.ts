// deno-lint-ignore-file no-explicit-any
/**
 * ai-study-recommendations: no authentication; asks OpenAI for study
 * recommendations built from the request body. CORS *basic*.
 */

import { corsHeaders, jsonWith, withCors } from "../shared/cors.ts";
import { openAiChat, parseJsonSpan } from "../shared/providers.ts";

// ---------------------------------------------------------------------------
// Prompts (copied verbatim into README.md, "Prompts").

export const RECOMMENDATIONS_SYSTEM_PROMPT =
  "You are an AI study advisor. You analyze a student's data and give specific, actionable and encouraging study recommendations: an optimal study schedule, subject priorities based on performance gaps, learning techniques, time management improvements and concrete areas for improvement.\n\n" +
  "Always answer with a single JSON object and nothing else.";

export function buildRecommendationsUserPrompt(
  studyData: unknown,
  subjects: unknown,
  goals: unknown,
  timePreferences: unknown,
  currentPerformance: unknown,
): string {
  return `Here is my student data.

Subjects:
${JSON.stringify(subjects, null, 2)}

Study goals:
${JSON.stringify(goals, null, 2)}

Recent performance:
${JSON.stringify(currentPerformance, null, 2)}

Time preferences:
${JSON.stringify(timePreferences, null, 2)}

Study history:
${JSON.stringify(studyData, null, 2)}

Answer with a JSON object of this shape:
{
  "priority_recommendations": [
    { "title": string, "description": string, "action_items": [string], "expected_impact": string, "priority": "high" | "medium" | "low" }
  ],
  "schedule_optimization": {
    "best_study_times": [string],
    "suggested_session_length": string,
    "break_recommendations": string
  },
  "subject_focus": [
    { "subject": string, "recommended_hours_per_week": number, "focus_areas": [string], "study_methods": [string] }
  ],
  "learning_techniques": [
    { "technique": string, "description": string, "best_for": [string] }
  ],
  "motivational_insights": {
    "strengths": [string],
    "growth_areas": [string],
    "encouraging_message": string
  }
}`;
}

// ---------------------------------------------------------------------------

const FALLBACK_RECOMMENDATIONS = {
  priority_recommendations: [
    {
      title: "Optimize Study Schedule",
      description:
        "Based on your current patterns, adjusting your study schedule could improve efficiency.",
      action_items: [
        "Study during peak focus hours",
        "Take regular breaks",
        "Plan challenging subjects for high-energy times",
      ],
      expected_impact: "15-20% improvement in retention",
      priority: "high",
    },
  ],
  schedule_optimization: {
    best_study_times: ["Morning (8-10 AM)", "Evening (6-8 PM)"],
    suggested_session_length: "45-50 minutes",
    break_recommendations: "5-10 minute breaks every hour",
  },
  subject_focus: [
    {
      subject: "Mathematics",
      recommended_hours_per_week: 8,
      focus_areas: ["Problem solving", "Concept review"],
      study_methods: ["Practice problems", "Spaced repetition"],
    },
  ],
  learning_techniques: [
    {
      technique: "Pomodoro Technique",
      description: "25-minute focused sessions with 5-minute breaks",
      best_for: ["Mathematics", "Science subjects"],
    },
  ],
  motivational_insights: {
    strengths: ["Consistent study habits", "Good time management"],
    growth_areas: ["Focus improvement", "Subject balance"],
    encouraging_message:
      "You're making great progress! Small adjustments to your routine can lead to significant improvements.",
  },
};

const json = jsonWith(corsHeaders);

export const handler = withCors(
  corsHeaders,
  async (req: Request): Promise<Response> => {
    try {
      const openAIApiKey = Deno.env.get("OPENAI_API_KEY");
      if (!openAIApiKey) {
        return json({
          success: false,
          error: "OpenAI API key not configured",
          fallback_message:
            "AI recommendations unavailable. Please try again later.",
        }, 500);
      }

      let requestBody: any;
      try {
        requestBody = await req.json();
      } catch {
        return json({
          success: false,
          error: "Invalid request body",
          fallback_message: "Invalid request format.",
        }, 400);
      }

      const {
        studyData,
        subjects,
        goals,
        timePreferences,
        currentPerformance,
      } = requestBody;

      const response = await openAiChat(openAIApiKey, {
        model: "gpt-4o-mini",
        messages: [
          { role: "system", content: RECOMMENDATIONS_SYSTEM_PROMPT },
          {
            role: "user",
            content: buildRecommendationsUserPrompt(
              studyData,
              subjects,
              goals,
              timePreferences,
              currentPerformance,
            ),
          },
        ],
        temperature: 0.7,
        max_tokens: 2000,
      });

      if (!response.ok) {
        const errorText = await response.text();
        throw new Error(`OpenAI API error: ${response.status} - ${errorText}`);
      }

      const data = await response.json();
      const recommendations = parseJsonSpan(
        data.choices[0].message.content,
        () => FALLBACK_RECOMMENDATIONS,
      );

      return json({
        success: true,
        recommendations,
        generated_at: new Date().toISOString(),
      });
    } catch (error: any) {
      return json({
        success: false,
        error: error.message,
        fallback_message:
          "Unable to generate AI recommendations at this time. Please try again later.",
      }, 500);
    }
  },
);
