// deno-lint-ignore-file no-explicit-any
/**
 * ai-study-analytics: authenticated; reads the user's last 30 days of study
 * sessions, all tasks and all goals, asks OpenAI for an analytics object.
 * CORS *basic*; the request body is not read.
 */

import { corsHeaders, withCors } from "../shared/cors.ts";
import { requireUser } from "../shared/auth.ts";
import { selectRows } from "../shared/db.ts";
import { openAiChat, parseJsonSpan } from "../shared/providers.ts";

// ---------------------------------------------------------------------------
// Prompts (copied verbatim into README.md, "Prompts").

export const ANALYTICS_SYSTEM_PROMPT =
  "You are an AI study analytics assistant. You analyze a student's study sessions, tasks and goals and give practical, encouraging, data-driven insights about study patterns, productivity trends, goal progress and time management, with personalized recommendations for improvement.\n\n" +
  "Always answer with a single JSON object and nothing else.";

export function buildAnalyticsUserPrompt(
  sessions: unknown,
  tasks: unknown,
  goals: unknown,
): string {
  return `Here is my study data.

Study sessions completed in the last 30 days:
${JSON.stringify(sessions, null, 2)}

Tasks:
${JSON.stringify(tasks, null, 2)}

Study goals:
${JSON.stringify(goals, null, 2)}

Answer with a JSON object of this shape:
{
  "summary": {
    "total_study_time": number,
    "average_session_length": number,
    "most_productive_times": [string],
    "completion_rate": number
  },
  "patterns": [
    { "insight": string, "description": string, "trend": "positive" | "neutral" | "negative" }
  ],
  "recommendations": [
    { "title": string, "description": string, "priority": "high" | "medium" | "low", "category": "time_management" | "productivity" | "goals" | "habits" }
  ],
  "goal_progress": [
    { "goal_title": string, "progress_percentage": number, "status": "on_track" | "behind" | "ahead", "suggestion": string }
  ],
  "next_actions": [
    { "action": string, "expected_impact": string, "effort_level": "low" | "medium" | "high" }
  ]
}`;
}

// ---------------------------------------------------------------------------

function fallbackAnalytics(sessions: any[], tasks: any[], goals: any[]) {
  // Sums `duration_minutes`, a column study_sessions does not have: the sum is
  // NaN as soon as there is a session (legacy defect, kept).
  const totalMinutes = sessions.reduce(
    (acc, s) => acc + s.duration_minutes,
    0,
  );

  return {
    summary: {
      total_study_time: totalMinutes || 0,
      average_session_length: sessions.length
        ? Math.round(totalMinutes / sessions.length)
        : 0,
      most_productive_times: ["Morning (9-11 AM)", "Evening (7-9 PM)"],
      completion_rate: tasks.length
        ? Math.round(
          (100 * tasks.filter((t) => t.status === "completed").length) /
            tasks.length,
        )
        : 0,
    },
    patterns: [
      {
        insight: "Consistent Study Habits",
        description:
          "You maintain regular study sessions with good consistency.",
        trend: "positive",
      },
    ],
    recommendations: [
      {
        title: "Optimize Study Schedule",
        description:
          "Consider studying during your peak productivity hours for better focus.",
        priority: "medium",
        category: "time_management",
      },
    ],
    goal_progress: goals.map((goal) => ({
      goal_title: goal.title,
      progress_percentage: Math.round(
        (100 * goal.current_value) / goal.target_value,
      ),
      status: goal.current_value >= goal.target_value ? "ahead" : "behind",
      suggestion: "Stay consistent with your current pace.",
    })),
    next_actions: [
      {
        action: "Schedule regular study blocks",
        expected_impact: "Improved consistency and focus",
        effort_level: "medium",
      },
    ],
  };
}

export const handler = withCors(
  corsHeaders,
  async (req: Request): Promise<Response> => {
    try {
      const user = await requireUser(
        req,
        "No authorization header",
        "Authentication failed",
      );

      const thirtyDaysAgo = new Date();
      thirtyDaysAgo.setDate(thirtyDaysAgo.getDate() - 30);

      const { data: sessions, error: sessionsError } = await selectRows((db) =>
        db`select * from study_sessions
         where user_id = ${user.id}
           and completed_at >= ${thirtyDaysAgo.toISOString()}
         order by created_at, id`
      );
      if (sessionsError) {
        throw new Error(`Failed to fetch sessions: ${sessionsError.message}`);
      }

      const { data: tasks, error: tasksError } = await selectRows((db) =>
        db`select * from tasks where user_id = ${user.id} order by created_at, id`
      );
      if (tasksError) {
        throw new Error(`Failed to fetch tasks: ${tasksError.message}`);
      }

      const { data: goals, error: goalsError } = await selectRows((db) =>
        db`select * from study_goals where user_id = ${user.id}
         order by created_at, id`
      );
      if (goalsError) {
        throw new Error(`Failed to fetch goals: ${goalsError.message}`);
      }

      const response = await openAiChat(Deno.env.get("OPENAI_API_KEY"), {
        model: "gpt-4o-mini",
        messages: [
          { role: "system", content: ANALYTICS_SYSTEM_PROMPT },
          {
            role: "user",
            content: buildAnalyticsUserPrompt(sessions, tasks, goals),
          },
        ],
        temperature: 0.7,
        max_tokens: 2000,
      });

      if (!response.ok) {
        throw new Error(`OpenAI API error: ${response.status}`);
      }

      const data = await response.json();
      const analytics = parseJsonSpan(
        data.choices[0].message.content,
        () => fallbackAnalytics(sessions!, tasks!, goals!),
      );

      return new Response(
        JSON.stringify({
          success: true,
          analytics,
          generated_at: new Date().toISOString(),
        }),
        { headers: { ...corsHeaders, "Content-Type": "application/json" } },
      );
    } catch (error: any) {
      return new Response(
        JSON.stringify({
          success: false,
          error: error.message,
          fallback_message:
            "Unable to generate analytics at this time. Please try again later.",
        }),
        {
          status: 500,
          headers: { ...corsHeaders, "Content-Type": "application/json" },
        },
      );
    }
  },
);
