//! One decision record as a JSON line, written into a reused buffer.
//!
//! Hand-written rather than derived: the writer encodes every decision
//! authzd makes, and at saturation this runs on one of the same few cores
//! that answer requests. No intermediate `String`s, the timestamp's
//! date-and-seconds prefix is formatted once per second, and strings without
//! characters to escape are copied whole. `tests` below compare every field
//! with serde_json's reading of the line.

use std::{io::Write as _, time::UNIX_EPOCH};

use super::Outcome;

/// Encodes records; keeps the last formatted second.
#[derive(Default)]
pub struct Encoder {
    /// (unix second, `YYYY-MM-DDTHH:MM:SS`) of the last record.
    second: Option<(u64, String)>,
}

impl Encoder {
    /// Appends `o` as one JSON object and a newline to `out`.
    pub fn line(&mut self, o: &Outcome, out: &mut Vec<u8>) {
        let d = &o.decision;
        out.extend_from_slice(b"{\"time\":\"");
        self.time(o.time, out);
        out.extend_from_slice(b"\",\"decision_id\":");
        string(&o.decision_id, out);
        out.extend_from_slice(if d.allowed {
            b",\"allowed\":true,\"status\":"
        } else {
            b",\"allowed\":false,\"status\":"
        });
        number(u64::from(d.status), out);
        out.extend_from_slice(b",\"reason\":\"");
        out.extend_from_slice(d.reason.as_str().as_bytes());
        out.extend_from_slice(b"\",\"source\":\"");
        out.extend_from_slice(o.source.as_str().as_bytes());
        out.extend_from_slice(b"\",\"subject\":");
        optional(d.subject.as_deref(), out);
        out.extend_from_slice(b",\"issuer\":");
        optional(d.issuer.as_deref(), out);
        out.extend_from_slice(b",\"roles\":");
        list(&d.roles, out);
        out.extend_from_slice(b",\"scopes\":");
        list(&d.scopes, out);
        // Only for models with attributes: each value, `null` where the
        // token gave none; a `log = false` one is named, never shown.
        if !d.attributes.is_empty() {
            out.extend_from_slice(b",\"attributes\":{");
            let mut first = true;
            for a in d.attributes.iter().filter(|a| a.log) {
                if !first {
                    out.push(b',');
                }
                first = false;
                string(&a.name, out);
                out.push(b':');
                match a.value.is_empty() {
                    true => out.extend_from_slice(b"null"),
                    false => string(&a.value, out),
                }
            }
            out.push(b'}');
            if d.attributes.iter().any(|a| !a.log) {
                out.extend_from_slice(b",\"attributes_withheld\":[");
                let mut first = true;
                for a in d.attributes.iter().filter(|a| !a.log) {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    string(&a.name, out);
                }
                out.push(b']');
            }
        }
        out.extend_from_slice(b",\"resource\":");
        string(&d.resource, out);
        out.extend_from_slice(b",\"action\":");
        string(&d.action, out);
        if let Some(m) = &d.method_override {
            out.extend_from_slice(b",\"method_override\":");
            string(m, out);
        }
        out.extend_from_slice(if d.http {
            b",\"target\":\"http\",\"domain\":"
        } else {
            b",\"target\":\"resource\",\"domain\":"
        });
        optional(d.domain.as_deref(), out);
        out.extend_from_slice(b",\"route\":");
        optional(d.route.as_deref(), out);
        out.extend_from_slice(b",\"policy_revision\":");
        string(&d.revision, out);
        out.extend_from_slice(b",\"matched_policy\":");
        list(&d.matched_policy, out);
        if let Some(s) = &o.shadow {
            out.extend_from_slice(if s.allowed {
                b",\"shadow\":{\"allowed\":true,\"reason\":\""
            } else {
                b",\"shadow\":{\"allowed\":false,\"reason\":\""
            });
            out.extend_from_slice(s.reason.as_str().as_bytes());
            out.extend_from_slice(b"\",\"matched_policy\":");
            list(&s.matched_policy, out);
            out.extend_from_slice(b",\"policy_revision\":");
            string(&s.revision, out);
            out.push(b'}');
        }
        out.extend_from_slice(b",\"latency_us\":");
        number(
            u64::try_from(o.latency.as_micros()).unwrap_or(u64::MAX),
            out,
        );
        out.extend_from_slice(b",\"token_sha256\":");
        optional(d.token_sha256.as_deref(), out);
        out.extend_from_slice(b",\"trace_id\":");
        optional(o.trace.as_ref().map(|t| t.trace_id.as_str()), out);
        out.extend_from_slice(b",\"span_id\":");
        optional(o.trace.as_ref().map(|t| t.span_id.as_str()), out);
        out.extend_from_slice(b",\"detail\":");
        string(&d.detail, out);
        out.extend_from_slice(b"}\n");
    }

    /// RFC 3339 with microseconds, UTC: `2026-11-30T21:34:50.123456Z`.
    fn time(&mut self, t: std::time::SystemTime, out: &mut Vec<u8>) {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let prefix = match &self.second {
            Some((s, p)) if *s == secs => p,
            _ => {
                let full = humantime::format_rfc3339_seconds(t).to_string();
                let p = full.trim_end_matches('Z').to_string();
                &self.second.insert((secs, p)).1
            }
        };
        out.extend_from_slice(prefix.as_bytes());
        // Writing into a Vec cannot fail.
        let _ = write!(out, ".{:06}Z", since.subsec_micros());
    }
}

fn number(n: u64, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{n}");
}

fn optional(s: Option<&str>, out: &mut Vec<u8>) {
    match s {
        Some(s) => string(s, out),
        None => out.extend_from_slice(b"null"),
    }
}

fn list(items: &[String], out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(s, out);
    }
    out.push(b']');
}

/// A JSON string (RFC 8259 §7): `"` and `\` escaped, control characters as
/// `\u00XX` (or their short forms); everything else, UTF-8 included, as is.
fn string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{b:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::{
        sync::Arc,
        time::{Duration, SystemTime},
    };

    use serde_json::{Value, json};

    use super::*;
    use crate::{
        audit::Source,
        decision::{Decision, Reason},
    };

    fn outcome(text: &str) -> Outcome {
        let mut d = Decision::pending(text, "GET", &Arc::from("rev1"));
        d.conclude(Reason::PolicyDenied, format!("detail {text}"));
        d.subject = Some(text.to_string());
        d.roles = vec!["a".into(), text.into()];
        d.matched_policy = vec!["p".into(), text.into()];
        d.token_sha256 = Some("0123456789abcdef".into());
        Outcome {
            decision: d,
            decision_id: "id-1".into(),
            source: Source::EnvoyGrpc,
            time: UNIX_EPOCH + Duration::from_micros(1_796_074_490_123_456),
            latency: Duration::from_micros(42),
            trace: None,
            shadow: None,
        }
    }

    fn encode(o: &Outcome) -> Value {
        let mut out = Vec::new();
        Encoder::default().line(o, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn every_field_as_the_contract_names_it() {
        let v = encode(&outcome("/a/b"));
        assert_eq!(
            v,
            json!({
                "time": "2026-11-30T21:34:50.123456Z",
                "decision_id": "id-1",
                "allowed": false,
                "status": 403,
                "reason": "policy_denied",
                "source": "envoy_grpc",
                "subject": "/a/b",
                "issuer": null,
                "roles": ["a", "/a/b"],
                "scopes": [],
                "resource": "/a/b",
                "action": "GET",
                "target": "resource",
                "domain": null,
                "route": null,
                "policy_revision": "rev1",
                "matched_policy": ["p", "/a/b"],
                "latency_us": 42,
                "token_sha256": "0123456789abcdef",
                "trace_id": null,
                "span_id": null,
                "detail": "detail /a/b",
            })
        );
        let mut traced = outcome("/a/b");
        traced.trace = crate::telemetry::TraceContext::from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        let v = encode(&traced);
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["span_id"].as_str().map(str::len), Some(16));
    }

    #[test]
    fn hostile_strings_round_trip() {
        for s in [
            "",
            "quote\" backslash\\ slash/",
            "new\nline\r\ttab \u{0} \u{1f} \u{7f}",
            "jürgen 日本 \u{202e} 🦀",
            "\"},{\"allowed\":true,\"x\":\"",
        ] {
            let v = encode(&outcome(s));
            assert_eq!(v["resource"], s, "{s:?}");
            assert_eq!(v["roles"][1], s);
            assert_eq!(v["detail"], format!("detail {s}"));
            assert_eq!(v["allowed"], false);
        }
    }

    #[test]
    fn the_second_prefix_follows_the_clock() {
        let mut e = Encoder::default();
        let mut o = outcome("x");
        let mut out = Vec::new();
        for (secs, micros) in [(0, 1), (0, 999_999), (1, 0), (86_400, 5)] {
            o.time = UNIX_EPOCH + Duration::new(1_796_074_490 + secs, micros * 1000);
            out.clear();
            e.line(&o, &mut out);
            let v: Value = serde_json::from_slice(&out).unwrap();
            let want = humantime::format_rfc3339_micros(o.time).to_string();
            assert_eq!(v["time"], want);
        }
        let now = SystemTime::now();
        o.time = now;
        out.clear();
        e.line(&o, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], humantime::format_rfc3339_micros(now).to_string());
    }
}
