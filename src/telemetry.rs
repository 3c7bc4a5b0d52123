//! W3C Trace Context in (`traceparent`, `tracestate`), so a decision record
//! can be joined to the trace of the request it decided, and the decision's
//! own span (exported by `spans`) is a child of the caller's. A leaf: imports
//! nothing from the crate.

/// The trace a decision belongs to: the caller's trace id, and the span id
/// of authzd's own decision (a child of the caller's span).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex characters.
    pub trace_id: String,
    /// 16 lower-case hex characters, new for this decision.
    pub span_id: String,
    /// The caller's span (the parent of `span_id`); `None` for a trace
    /// authzd started itself.
    pub parent_id: Option<String>,
    /// The caller's `sampled` flag (a trace authzd starts is sampled).
    pub sampled: bool,
    /// The caller's `tracestate`, passed on unchanged when it is well formed.
    pub tracestate: Option<String>,
}

/// W3C Trace Context: at most 32 list members, and a vendor may drop a
/// `tracestate` longer than 512 characters.
const MAX_TRACESTATE: usize = 512;

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
        let valid = is_hex(version, 2)
            && version != "ff"
            && (version != "00" || parts.next().is_none())
            && is_hex(trace_id, 32)
            && nonzero(trace_id)
            && is_hex(parent_id, 16)
            && nonzero(parent_id)
            && is_hex(flags, 2);
        let sampled = u8::from_str_radix(flags, 16).is_ok_and(|f| f & 1 == 1);
        valid.then(|| TraceContext {
            trace_id: trace_id.to_string(),
            span_id: new_span_id(),
            parent_id: Some(parent_id.to_string()),
            sampled,
            tracestate: None,
        })
    }

    /// [`from_traceparent`](Self::from_traceparent) plus the `tracestate`
    /// that travels with it. A `tracestate` without a valid `traceparent`
    /// means nothing and is dropped, as W3C says; so is a malformed one.
    pub fn from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let mut t = Self::from_traceparent(traceparent?)?;
        t.tracestate = tracestate
            .map(str::trim)
            .filter(|s| well_formed_tracestate(s))
            .map(str::to_string);
        Some(t)
    }

    /// A new trace, for a decision whose caller sent none while spans are exported.
    pub fn root() -> TraceContext {
        let a = uuid::Uuid::new_v4();
        TraceContext {
            trace_id: hex::encode(a.as_bytes()),
            span_id: new_span_id(),
            parent_id: None,
            sampled: true,
            tracestate: None,
        }
    }
}

fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn nonzero(s: &str) -> bool {
    s.bytes().any(|b| b != b'0')
}

/// `key=value` members separated by commas (empty members allowed), at most
/// 32 of them, printable ASCII without `,` or `=` in a value: enough to pass
/// on what a caller sent without passing on garbage.
fn well_formed_tracestate(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_TRACESTATE {
        return false;
    }
    let members: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    members.len() <= 32
        && members.iter().all(|m| {
            m.split_once('=').is_some_and(|(k, v)| {
                !k.is_empty()
                    && k.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
                    })
                    && !v.is_empty()
                    && v.bytes()
                        .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
            })
        })
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
        assert_eq!(t.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(t.sampled);
        assert_eq!(t.span_id.len(), 16);
        assert_ne!(Some(&t.span_id), t.parent_id.as_ref());
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

    #[test]
    fn flags_and_tracestate() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!TraceContext::from_traceparent(tp).unwrap().sampled);
        let t =
            TraceContext::from_headers(Some(tp), Some("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"))
                .unwrap();
        assert_eq!(
            t.tracestate.as_deref(),
            Some("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")
        );
        for bad in [
            "",
            "novalue",
            "a=b=c",
            "UPPER=x",
            "a=\u{7f}",
            &"a=b,".repeat(200),
        ] {
            let t = TraceContext::from_headers(Some(tp), Some(bad)).unwrap();
            assert_eq!(t.tracestate, None, "{bad}");
        }
        assert_eq!(TraceContext::from_headers(None, Some("a=b")), None);
    }

    #[test]
    fn roots_are_fresh_and_sampled() {
        let (a, b) = (TraceContext::root(), TraceContext::root());
        assert_ne!(a.trace_id, b.trace_id);
        assert_eq!(a.trace_id.len(), 32);
        assert!(is_hex(&a.trace_id, 32) && is_hex(&a.span_id, 16));
        assert!(a.sampled && a.parent_id.is_none());
    }
}
