// deno-lint-ignore-file no-explicit-any
/**
 * security-monitor: collects CSP reports and security events, answers
 * rate-limit checks and runs a simple session-duration anomaly check.
 * No authentication; CORS *basic*. Database write failures are ignored
 * (supabase-js returns them as `error`, which the legacy never reads).
 */

import { corsHeaders, jsonWith, withCors } from "../shared/cors.ts";
import { insertRow, selectRows } from "../shared/db.ts";

const json = jsonWith(corsHeaders);

export const handler = withCors(
  corsHeaders,
  async (req: Request): Promise<Response> => {
    try {
      const { type, data }: any = await req.json();
      const ipAddress = req.headers.get("x-forwarded-for") ||
        req.headers.get("x-real-ip");
      const userAgent = req.headers.get("user-agent");

      switch (type) {
        case "csp-report": {
          const cspReport = data["csp-report"];
          if (cspReport) {
            await insertRow("security_audit_log", {
              event_type: "suspicious_activity",
              details: {
                type: "csp_violation",
                blocked_uri: cspReport["blocked-uri"],
                violated_directive: cspReport["violated-directive"],
                source_file: cspReport["source-file"],
                line_number: cspReport["line-number"],
              },
              severity: "medium",
              ip_address: ipAddress,
              user_agent: userAgent,
            });
          }
          break;
        }

        case "security-event": {
          const { event_type, user_id, details, severity } = data;

          await insertRow("security_audit_log", {
            event_type,
            user_id,
            details,
            severity: severity || "low",
            ip_address: ipAddress,
            user_agent: userAgent,
          });

          if (severity === "critical" || severity === "high") {
            await insertRow("notifications", {
              user_id,
              title: "Security Alert",
              message: `Suspicious activity detected: ${
                details.reason || "Unknown"
              }`,
              type: "system",
              priority: "urgent",
              action_url: "/settings",
            });
          }
          break;
        }

        case "rate-limit-check": {
          const { user_id: userId, action } = data;

          // Like PostgREST's `eq` filters, the values are compared as text.
          const { data: blocked } = await selectRows((db) =>
            db`select blocked_until from rate_limits
             where user_id = ${String(userId)}
               and action = ${String(action)}
               and blocked_until > now()
             order by blocked_until desc`
          );

          if (blocked && blocked.length > 0) {
            return json({
              allowed: false,
              message: "Rate limit exceeded",
              blocked_until: new Date(blocked[0].blocked_until).toISOString(),
            }, 429);
          }
          break;
        }

        case "anomaly-detection": {
          const { user_id: anomalyUserId, patterns } = data;

          const { data: history } = await selectRows((db) =>
            db`select duration from study_sessions
             where user_id = ${String(anomalyUserId)}
               and created_at >= ${
              new Date(Date.now() - 7 * 24 * 3600000).toISOString()
            }`
          );

          if (history) {
            const averageDuration = history.reduce(
              (sum, s) => sum + (s.duration || 0),
              0,
            ) / history.length;
            const currentDuration = patterns.session_duration;

            if (history.length > 0 && currentDuration > averageDuration * 3) {
              await insertRow("security_audit_log", {
                event_type: "suspicious_activity",
                user_id: anomalyUserId,
                details: {
                  type: "anomaly_detected",
                  reason: "Unusual session duration",
                  expected: averageDuration,
                  actual: currentDuration,
                },
                severity: "low",
              });
            }
          }
          break;
        }

        default:
          return json({ error: "Unknown event type" }, 400);
      }

      return json({ success: true });
    } catch (error: any) {
      return json({ error: error.message }, 500);
    }
  },
);
