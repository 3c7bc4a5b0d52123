//! W3C Trace Context in (`traceparent`), so a decision record can be joined
//! to the trace of the request it decided. A leaf: imports nothing from the
//! crate. Exporting spans (OTLP) is not built yet.

/// The trace a decision belongs to: the caller's trace id, and the span id
/// of authzd's own decision (a child of the caller's span).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex characters.
    pub trace_id: String,
    /// 16 lower-case hex characters, new for this decision.
    pub span_id: String,
    /// The caller's span (the parent of `span_id`).
    pub parent_id: String,
}

impl TraceContext {
    /// Reads a `traceparent` header (`00-<trace-id>-<parent-id>-<flags>`), as
    /// W3C Trace Context level 1 says: lower-case hex, neither id all zeros,
    /// version `ff` invalid, a later version's extra fields ignored. Anything
    /// else is no trace (never an error: tracing must not change a decision).
    pub fn from_traceparent(header: &str) -> Option<TraceContext> {
        let h = header.trim();
        let mut parts = h.split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
        let valid = hex(version, 2)
            && version != "ff"
            && (version != "00" || parts.next().is_none())
            && hex(trace_id, 32)
            && nonzero(trace_id)
            && hex(parent_id, 16)
            && nonzero(parent_id)
            && hex(flags, 2);
        valid.then(|| TraceContext {
            trace_id: trace_id.to_string(),
            span_id: new_span_id(),
            parent_id: parent_id.to_string(),
        })
    }
}

/// A fresh, non-zero span id: the random tail of a UUIDv7.
fn new_span_id() -> String {
    let id = uuid::Uuid::now_v7();
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&id.as_bytes()[8..]);
    if tail == [0; 8] {
        tail[7] = 1;
    }
    hex::encode(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_valid_traceparents_and_ignores_the_rest() {
        let t = TraceContext::from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .unwrap();
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id, "00f067aa0ba902b7");
        assert_eq!(t.span_id.len(), 16);
        assert_ne!(t.span_id, t.parent_id);
        // A later version may add fields.
        assert!(
            TraceContext::from_traceparent(
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"
            )
            .is_some()
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-\"><script>-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad}");
        }
    }
}
