//! CORS preflights (`docs/security.md`, "CORS preflights"): what counts as
//! one, and what authzd answers (pure).
//!
//! A preflight is an `OPTIONS` request with both `Origin` and
//! `Access-Control-Request-Method`. A browser never attaches credentials to
//! it, so a gateway that forwards it sends an unauthenticated request to the
//! upstream, where any handler that runs for every method (Express
//! `app.all`, Spring `@RequestMapping` without a method, catch-all routes)
//! runs for anyone. Under every mode but `allow`, this module never lets one
//! through: it answers it from `[cors]` where the interface can carry that
//! answer to the client (Envoy), and refuses it elsewhere.

use crate::config::{CorsConfig, CorsPreflight};

/// What step 1 does with a preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// `cors_preflight = "allow"`: forwarded without a token.
    Forward,
    /// `cors_preflight = "check"`: decided like any other request.
    Check,
    /// Not answered and not forwarded (403); the detail says why.
    Refuse(String),
    /// authzd's own answer (204) with these response headers.
    Answer(Vec<(&'static str, String)>),
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(method: &str, origin: Option<&str>, request_method: Option<&str>) -> bool {
    method == "OPTIONS" && origin.is_some() && request_method.is_some()
}

/// Step 1 for a preflight from `origin` asking for `request_method`.
/// `answerable`: the interface can send authzd's answer to the client
/// instead of forwarding the request (Envoy ext_authz's denied response).
pub fn preflight(
    mode: CorsPreflight,
    cors: &CorsConfig,
    origin: &str,
    request_method: &str,
    answerable: bool,
) -> Preflight {
    match mode {
        CorsPreflight::Allow => Preflight::Forward,
        CorsPreflight::Check => Preflight::Check,
        CorsPreflight::Deny => Preflight::Refuse(
            "CORS preflight refused (cors_preflight = \"deny\"): the gateway should answer preflights".into(),
        ),
        CorsPreflight::Answer if !answerable => Preflight::Refuse(
            "CORS preflight refused: this interface cannot carry authzd's answer to the client; answer preflights at the gateway".into(),
        ),
        CorsPreflight::Answer => answer(cors, origin, request_method),
    }
}

/// The answer of `cors_preflight = "answer"`: CORS headers for an allowed
/// origin and method, a refusal (and so no CORS headers) otherwise.
fn answer(cors: &CorsConfig, origin: &str, request_method: &str) -> Preflight {
    let shown = crate::token::clip(origin);
    if !cors.allow_origins.iter().any(|o| origin_matches(o, origin)) {
        return Preflight::Refuse(format!(
            "CORS preflight from origin `{shown}`, which `[cors] allow_origins` does not allow"
        ));
    }
    if !cors.allow_methods.iter().any(|m| m == request_method) {
        return Preflight::Refuse(format!(
            "CORS preflight for method `{}`, which `[cors] allow_methods` does not allow",
            crate::token::clip(request_method)
        ));
    }
    let any = !cors.allow_credentials && cors.allow_origins.iter().any(|o| o == "*");
    let mut headers = vec![
        (
            "access-control-allow-origin",
            if any { "*".into() } else { origin.to_string() },
        ),
        (
            "access-control-allow-methods",
            cors.allow_methods.join(", "),
        ),
    ];
    if !cors.allow_headers.is_empty() {
        headers.push((
            "access-control-allow-headers",
            cors.allow_headers.join(", "),
        ));
    }
    headers.push(("access-control-max-age", cors.max_age_secs.to_string()));
    if cors.allow_credentials {
        headers.push(("access-control-allow-credentials", "true".into()));
    }
    if !any {
        // The answer depends on the origin: shared caches must key on it.
        headers.push(("vary", "Origin".into()));
    }
    Preflight::Answer(headers)
}

/// Whether `origin` (as the browser sent it) matches one `allow_origins`
/// entry (checked by [`crate::config::check_origin`]): exactly, ASCII case
/// aside, or as `scheme://*.domain[:port]`, where `*` is one or more whole
/// labels, so `https://*.example.com` matches `https://a.b.example.com` and
/// never `https://example.com`, `https://evilexample.com` or
/// `https://a.example.com.evil.net`.
pub fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if pattern.eq_ignore_ascii_case(origin) {
        return true;
    }
    let Some((scheme, domain)) = pattern.split_once("://*.") else {
        return false;
    };
    let Some((o_scheme, host)) = origin.split_once("://") else {
        return false;
    };
    let Some((labels, tail)) = host
        .len()
        .checked_sub(domain.len() + 1)
        .and_then(|cut| host.split_at_checked(cut))
    else {
        return false;
    };
    let label =
        |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    scheme.eq_ignore_ascii_case(o_scheme)
        && tail
            .strip_prefix('.')
            .is_some_and(|d| d.eq_ignore_ascii_case(domain))
        && labels.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            allow_origins: origins.iter().map(|o| o.to_string()).collect(),
            ..CorsConfig::default()
        }
    }

    #[test]
    fn subdomain_patterns_match_whole_labels_only() {
        let p = "https://*.example.com";
        for yes in [
            "https://a.example.com",
            "https://a.b.example.com",
            "HTTPS://A.Example.com",
        ] {
            assert!(origin_matches(p, yes), "{yes}");
        }
        for no in [
            "https://example.com",
            "https://evilexample.com",
            "https://a.example.com.evil.net",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://.example.com",
            "https://a/b.example.com",
            "https://a.example.co",
            "null",
            "",
        ] {
            assert!(!origin_matches(p, no), "{no}");
        }
        assert!(origin_matches(
            "https://*.example.com:8443",
            "https://a.example.com:8443"
        ));
        assert!(!origin_matches(
            "https://app.example.com",
            "https://app.example.com.evil.net"
        ));
        assert!(!origin_matches("null", "https://app"));
    }

    #[test]
    fn only_answer_mode_on_an_answering_interface_answers() {
        let c = cors(&["https://app.example.com"]);
        let o = "https://app.example.com";
        assert_eq!(
            preflight(CorsPreflight::Allow, &c, o, "GET", false),
            Preflight::Forward
        );
        assert_eq!(
            preflight(CorsPreflight::Check, &c, o, "GET", true),
            Preflight::Check
        );
        assert!(matches!(
            preflight(CorsPreflight::Deny, &c, o, "GET", true),
            Preflight::Refuse(_)
        ));
        assert!(matches!(
            preflight(CorsPreflight::Answer, &c, o, "GET", false),
            Preflight::Refuse(_)
        ));
        let Preflight::Answer(h) = preflight(CorsPreflight::Answer, &c, o, "DELETE", true) else {
            panic!("expected an answer");
        };
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("access-control-allow-origin"), Some(o));
        assert_eq!(
            get("access-control-allow-methods"),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE")
        );
        assert_eq!(
            get("access-control-allow-headers"),
            Some("authorization, content-type")
        );
        assert_eq!(get("access-control-max-age"), Some("600"));
        assert_eq!(get("vary"), Some("Origin"));
        assert_eq!(get("access-control-allow-credentials"), None);
    }

    #[test]
    fn foreign_origins_and_methods_get_no_cors_headers() {
        let c = cors(&["https://app.example.com"]);
        let Preflight::Refuse(why) = preflight(
            CorsPreflight::Answer,
            &c,
            "https://evil.example",
            "GET",
            true,
        ) else {
            panic!("a foreign origin must be refused");
        };
        assert!(why.contains("evil.example"), "{why}");
        assert!(matches!(
            preflight(
                CorsPreflight::Answer,
                &c,
                "https://app.example.com",
                "TRACE",
                true
            ),
            Preflight::Refuse(_)
        ));
        assert!(matches!(
            preflight(
                CorsPreflight::Answer,
                &CorsConfig::default(),
                "https://app.example.com",
                "GET",
                true
            ),
            Preflight::Refuse(_)
        ));
    }

    #[test]
    fn any_origin_answers_star_and_credentials_echo_the_origin() {
        let Preflight::Answer(h) = preflight(
            CorsPreflight::Answer,
            &cors(&["*"]),
            "https://x.test",
            "GET",
            true,
        ) else {
            panic!("expected an answer");
        };
        assert!(h.contains(&("access-control-allow-origin", "*".into())));
        assert!(!h.iter().any(|(k, _)| *k == "vary"));
        let mut c = cors(&["https://*.example.com"]);
        c.allow_credentials = true;
        let Preflight::Answer(h) = preflight(
            CorsPreflight::Answer,
            &c,
            "https://a.example.com",
            "GET",
            true,
        ) else {
            panic!("expected an answer");
        };
        assert!(h.contains(&(
            "access-control-allow-origin",
            "https://a.example.com".into()
        )));
        assert!(h.contains(&("access-control-allow-credentials", "true".into())));
    }
}
