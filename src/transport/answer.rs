//! What every transport shares on the way out: the HTTP meaning of an
//! outcome (§2's table: status, body, headers, one place), the header-safe
//! encoding of claim values, and the `authzd.v1` response message.

use axum::{
    body::Body,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

/// Maps an outcome to an `authzd.v1.CheckResponse`.
pub fn check_response(o: &crate::audit::Outcome) -> crate::pb::CheckResponse {
    let d = &o.decision;
    crate::pb::CheckResponse {
        allowed: d.allowed,
        status: u32::from(d.status),
        reason: d.reason.as_str().to_string(),
        decision_id: o.decision_id.clone(),
        subject: d.subject.clone().unwrap_or_default(),
        roles: d.roles.clone(),
        policy_revision: d.revision.to_string(),
        matched_policy: d.matched_policy.clone(),
    }
}

/// Headers authzd sets on the upstream request when it allows (`docs/pipeline.md`).
pub const SUBJECT_HEADER: &str = "x-authz-subject";
pub const ROLES_HEADER: &str = "x-authz-roles";
pub const DECISION_ID_HEADER: &str = "x-authz-decision-id";
/// Client-supplied headers with this prefix are never passed upstream as if authzd had set them.
pub const RESERVED_PREFIX: &str = "x-authz-";

/// The HTTP meaning of an outcome, shared by every HTTP-facing adapter
/// (Envoy gRPC and HTTP modes, forward auth): the one place §2's table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// Empty on allow.
    pub body: &'static str,
    /// On allow: the upstream headers. On deny: the response headers.
    pub headers: Vec<(&'static str, String)>,
}

impl HttpAnswer {
    pub fn of(o: &crate::audit::Outcome) -> HttpAnswer {
        let d = &o.decision;
        if d.allowed {
            let mut headers = Vec::with_capacity(3);
            if let Some(s) = &d.subject {
                headers.push((SUBJECT_HEADER, header_value(s)));
            }
            if !d.roles.is_empty() {
                headers.push((ROLES_HEADER, roles_value(&d.roles)));
            }
            headers.push((DECISION_ID_HEADER, o.decision_id.clone()));
            return HttpAnswer {
                status: 200,
                body: "",
                headers,
            };
        }
        if d.status == 204 {
            // authzd's own answer (a CORS preflight): no body, its headers, never forwarded.
            return HttpAnswer {
                status: 204,
                body: "",
                headers: d.response_headers.clone(),
            };
        }
        let body = match d.status {
            400 => r#"{"message":"Bad Request"}"#,
            401 => r#"{"message":"Unauthorized"}"#,
            503 => r#"{"message":"Service Unavailable"}"#,
            _ => r#"{"message":"Forbidden"}"#,
        };
        let mut headers = vec![("content-type", "application/json".to_string())];
        if d.status == 401 {
            // RFC 6750 §3: error attributes only when a token was presented.
            let challenge = if d.token_sha256.is_some() {
                format!(
                    r#"Bearer error="invalid_token", error_description="{}""#,
                    d.reason.as_str()
                )
            } else {
                "Bearer".to_string()
            };
            headers.push(("www-authenticate", challenge));
        }
        HttpAnswer {
            status: d.status,
            body,
            headers,
        }
    }

    /// The answer for a proxy that understands only 401 and 403 (nginx
    /// `auth_request`, Traefik ForwardAuth turn anything else into a 500,
    /// and every 2xx into "forward it"): a refused request (400) becomes a
    /// 403, and so does any other answer but an allow, 401 or 503.
    pub fn for_forward_auth(mut self) -> HttpAnswer {
        if !matches!(self.status, 200 | 401 | 403 | 503) {
            self.status = 403;
            self.body = r#"{"message":"Forbidden"}"#;
        }
        self
    }

    /// The names of `client_headers` that look like ours but that this answer does not set:
    /// they must be removed before the request goes upstream.
    pub fn spoofed<'a>(&self, client_headers: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut out: Vec<String> = client_headers
            // Byte-wise: header names from Envoy's map may hold any UTF-8, and slicing
            // a `str` mid-character would panic (found by fuzz/envoy_request).
            .filter(|k| {
                k.as_bytes()
                    .get(..RESERVED_PREFIX.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX.as_bytes()))
            })
            .map(str::to_ascii_lowercase)
            .filter(|k| !self.headers.iter().any(|(set, _)| set == k))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// What an upstream could split, trim or unfold in a header value: control
/// characters, non-ASCII, `%` (the escape itself), the list separator `,`,
/// space (trimmed around list items and values), `"` (quoted strings) and `;`
/// (parameters). Each is percent-encoded, so one claim value stays one value.
const HEADER_UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b'%')
    .add(b',')
    .add(b' ')
    .add(b'"')
    .add(b';');

/// A header-safe rendering of a claim value: a subject can never inject a
/// header line, and an upstream that trims or splits the value sees it whole.
pub fn header_value(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, HEADER_UNSAFE).to_string()
}

/// `x-authz-roles`: each role encoded as by [`header_value`], joined with `,`,
/// so a role named `x,admin` or ` admin` reaches the upstream as one role that
/// is not `admin`.
pub fn roles_value(roles: &[String]) -> String {
    let mut out = String::new();
    for (i, r) in roles.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.extend(percent_encoding::utf8_percent_encode(r, HEADER_UNSAFE));
    }
    out
}

/// The answer as a plain HTTP response (Envoy HTTP mode and forward auth).
pub fn to_http_response(answer: HttpAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut headers = HeaderMap::new();
    for (k, v) in answer.headers {
        // Values went through `header_value`, so this only fails on a bug; fail closed if it does.
        match HeaderValue::from_str(&v) {
            Ok(v) => {
                headers.insert(HeaderName::from_static(k), v);
            }
            Err(_) => return (StatusCode::FORBIDDEN, r#"{"message":"Forbidden"}"#).into_response(),
        }
    }
    (status, headers, Body::from(answer.body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_cannot_inject_lines() {
        assert_eq!(header_value("alice"), "alice");
        assert_eq!(
            header_value("a\r\nx-authz-subject: root"),
            "a%0D%0Ax-authz-subject:%20root"
        );
        assert_eq!(header_value("jürgen 100%"), "j%C3%BCrgen%20100%25");
        assert_eq!(header_value(" admin"), "%20admin");
    }

    #[test]
    fn each_role_stays_one_role() {
        let roles = |r: &[&str]| roles_value(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(roles(&["regular", "editor"]), "regular,editor");
        let smuggled = roles(&["regular", "x,admin", " admin", "a;q=admin", "\"admin\""]);
        assert_eq!(
            smuggled,
            "regular,x%2Cadmin,%20admin,a%3Bq=admin,%22admin%22"
        );
        // However an upstream splits and trims, no item is `admin`.
        for item in smuggled.split([',', ';']).map(str::trim) {
            assert_ne!(item.trim_matches('"'), "admin", "{smuggled}");
        }
    }

    #[test]
    fn spoofed_headers_are_those_we_do_not_set() {
        let a = HttpAnswer {
            status: 200,
            body: "",
            headers: vec![(SUBJECT_HEADER, "s".into())],
        };
        let client = [
            "X-Authz-Subject",
            "x-authz-roles",
            "x-authz-whatever",
            "authorization",
            "x-auth",
        ];
        assert_eq!(
            a.spoofed(client.into_iter()),
            ["x-authz-roles", "x-authz-whatever"]
        );
    }
}
