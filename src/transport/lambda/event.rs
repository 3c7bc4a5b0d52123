//! API Gateway's Lambda authorizer events, recognised by shape
//! (`docs/interfaces.md`, "AWS Lambda authorizer"): HTTP API payload 2.0,
//! HTTP API payload 1.0 and REST API `REQUEST`, REST API `TOKEN`.
//!
//! Read from `serde_json::Value` with the few fields authzd needs rather
//! than the full typed events: an event of an unknown shape must be an
//! error that names what is missing, never a default that decides.

use serde_json::Value;

/// Which API Gateway API sent the event: only REST APIs turn an
/// `Unauthorized` invocation error into a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Rest,
    Http,
}

/// Which payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// HTTP API, payload 2.0.
    HttpV2,
    /// HTTP API payload 1.0, or a REST API `REQUEST` authorizer.
    Request,
    /// REST API `TOKEN` authorizer.
    Token,
}

/// An `execute-api` ARN: `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    /// `arn:aws:execute-api:{region}:{account}:{api}/{stage}`.
    pub base: String,
    pub method: String,
    /// The request path, with a leading `/`.
    pub path: String,
}

impl Arn {
    pub fn parse(s: &str) -> Result<Arn, EventError> {
        let bad = |why: &str| EventError::Arn(format!("`{}`: {why}", crate::token::clip(s)));
        let rest = s.strip_prefix("arn:").ok_or_else(|| bad("not an ARN"))?;
        let mut parts = rest.splitn(5, ':');
        let (Some(_partition), Some("execute-api"), Some(_region), Some(_account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad("not an execute-api ARN"));
        };
        let mut r = resource.splitn(4, '/');
        let (Some(api), Some(stage), Some(method), path) = (r.next(), r.next(), r.next(), r.next())
        else {
            return Err(bad("no api id, stage and method"));
        };
        if api.is_empty() || stage.is_empty() || method.is_empty() {
            return Err(bad("an empty api id, stage or method"));
        }
        let base_len = s.len() - resource.len() + api.len() + 1 + stage.len();
        Ok(Arn {
            base: s[..base_len].to_string(),
            method: method.to_string(),
            path: format!("/{}", path.unwrap_or("")),
        })
    }

    /// This ARN's base with another method and path (`*` wildcards allowed).
    pub fn with(&self, method: &str, path: &str) -> String {
        format!("{}/{method}/{}", self.base, path.trim_start_matches('/'))
    }

    /// The ARN as API Gateway sent it.
    pub fn to_arn(&self) -> String {
        self.with(&self.method, &self.path)
    }
}

/// An authorizer event, parsed.
#[derive(Debug, Clone)]
pub struct Event {
    pub shape: Shape,
    pub api: Api,
    pub arn: Arn,
    pub method: String,
    /// As the upstream receives it: the stage prefix removed, the query kept
    /// (method overrides can hide in it).
    pub path: String,
    /// Lower-case names; repeated headers joined with `,`.
    pub headers: Vec<(String, String)>,
}

impl Event {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why an event cannot be answered: the invocation fails with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("unrecognised authorizer event: {0}")]
    Shape(String),
    #[error("invalid execute-api ARN {0}")]
    Arn(String),
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn need<'a>(v: &'a Value, pointer: &str, shape: &str) -> Result<&'a str, EventError> {
    text(v, pointer)
        .ok_or_else(|| EventError::Shape(format!("a {shape} event needs a string at `{pointer}`")))
}

/// Recognises and reads an authorizer event.
pub fn parse(v: &Value) -> Result<Event, EventError> {
    if !v.is_object() {
        return Err(EventError::Shape("the event is not a JSON object".into()));
    }
    if text(v, "/type") == Some("TOKEN") || v.get("authorizationToken").is_some() {
        let token = need(v, "/authorizationToken", "TOKEN")?;
        let arn = Arn::parse(need(v, "/methodArn", "TOKEN")?)?;
        return Ok(Event {
            shape: Shape::Token,
            api: Api::Rest,
            method: arn.method.clone(),
            path: arn.path.clone(),
            headers: vec![("authorization".into(), token.to_string())],
            arn,
        });
    }
    if text(v, "/version") == Some("2.0") {
        let arn = Arn::parse(need(v, "/routeArn", "payload 2.0")?)?;
        let method = need(v, "/requestContext/http/method", "payload 2.0")?;
        let raw = need(v, "/rawPath", "payload 2.0")?;
        let mut path = strip_stage(raw, text(v, "/requestContext/stage")).to_string();
        if let Some(q) = text(v, "/rawQueryString").filter(|q| !q.is_empty()) {
            path = format!("{path}?{q}");
        }
        return Ok(Event {
            shape: Shape::HttpV2,
            api: Api::Http,
            method: method.to_string(),
            path,
            headers: headers(v),
            arn,
        });
    }
    if v.get("methodArn").is_some() || v.get("httpMethod").is_some() {
        let arn = Arn::parse(need(v, "/methodArn", "REQUEST")?)?;
        let method = need(v, "/httpMethod", "REQUEST")?;
        let raw = need(v, "/path", "REQUEST")?;
        // HTTP API payload 1.0 says `version`; a REST API REQUEST event does not.
        let api = if v.get("version").is_some() {
            Api::Http
        } else {
            Api::Rest
        };
        let mut path = match api {
            Api::Http => strip_stage(raw, text(v, "/requestContext/stage")).to_string(),
            // A REST API's `path` is the resource path, without the stage.
            Api::Rest => raw.to_string(),
        };
        if let Some(m) = query_override(v) {
            path = format!("{path}?_method={m}");
        }
        return Ok(Event {
            shape: Shape::Request,
            api,
            method: method.to_string(),
            path,
            headers: headers(v),
            arn,
        });
    }
    Err(EventError::Shape(
        "expected a TOKEN event (`authorizationToken`, `methodArn`), an HTTP API payload 2.0 event (`version` \"2.0\", `routeArn`, `rawPath`) or a REQUEST event (`methodArn`, `httpMethod`, `path`)".into(),
    ))
}

/// HTTP API paths start with the stage name unless the stage is `$default`.
fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default") else {
        return path;
    };
    match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// `headers` and `multiValueHeaders`, names lower-cased, repeated values
/// joined with `,` (as API Gateway joins them in payload 2.0), so two
/// `Authorization` headers fail to parse instead of one being picked.
fn headers(v: &Value) -> Vec<(String, String)> {
    fn add(out: &mut Vec<(String, String)>, k: &str, value: &str) {
        let k = k.to_ascii_lowercase();
        match out.iter_mut().find(|(name, _)| *name == k) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(value);
            }
            None => out.push((k, value.to_string())),
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(multi) = v.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, values) in multi {
            for value in values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                add(&mut out, k, value);
            }
        }
    }
    // `headers` repeats the last of `multiValueHeaders`' values: read it only
    // for names the multi-value map does not have.
    let from_multi = out.len();
    if let Some(single) = v.get("headers").and_then(Value::as_object) {
        for (k, value) in single {
            let known = out[..from_multi]
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(k));
            if let Some(value) = value.as_str()
                && !known
            {
                add(&mut out, k, value);
            }
        }
    }
    out
}

/// A `_method` query parameter of a REQUEST event (its query comes parsed).
fn query_override(v: &Value) -> Option<String> {
    let q = v.get("queryStringParameters")?.as_object()?;
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("_method"))
        .and_then(|(_, m)| m.as_str())
        .map(|m| {
            percent_encoding::utf8_percent_encode(m, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/AdminUser/7";

    #[test]
    fn arns_parse_and_rebuild() {
        let a = Arn::parse(ARN).unwrap();
        assert_eq!(
            a.base,
            "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod"
        );
        assert_eq!(
            (a.method.as_str(), a.path.as_str()),
            ("GET", "/AdminUser/7")
        );
        assert_eq!(a.to_arn(), ARN);
        assert_eq!(
            a.with("POST", "/items/*"),
            "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/POST/items/*"
        );
        let root = Arn::parse("arn:aws:execute-api:r:1:api/$default/GET/").unwrap();
        assert_eq!(root.path, "/");
        for bad in [
            "",
            "arn:aws:s3:::bucket",
            "arn:aws:execute-api:r:1:api",
            "arn:aws:execute-api:r:1:api/prod",
            "arn:aws:execute-api:r:1://GET/x",
            "not-an-arn",
        ] {
            assert!(Arn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_shape_is_recognised() {
        let token =
            parse(&json!({"type": "TOKEN", "authorizationToken": "Bearer t", "methodArn": ARN}))
                .unwrap();
        assert_eq!((token.shape, token.api), (Shape::Token, Api::Rest));
        assert_eq!(
            (token.method.as_str(), token.path.as_str()),
            ("GET", "/AdminUser/7")
        );
        assert_eq!(token.header("authorization"), Some("Bearer t"));

        let v2 = parse(&json!({
            "version": "2.0", "type": "REQUEST", "routeArn": ARN, "routeKey": "GET /AdminUser/{id}",
            "rawPath": "/prod/AdminUser/7", "rawQueryString": "a=1",
            "headers": {"authorization": "Bearer t", "x-h": "1,2"},
            "requestContext": {"stage": "prod", "http": {"method": "GET", "path": "/prod/AdminUser/7"}}
        }))
        .unwrap();
        assert_eq!((v2.shape, v2.api), (Shape::HttpV2, Api::Http));
        assert_eq!(v2.path, "/AdminUser/7?a=1");

        let rest = parse(&json!({
            "type": "REQUEST", "methodArn": ARN, "resource": "/AdminUser/{id}", "path": "/AdminUser/7",
            "httpMethod": "GET", "headers": {"Authorization": "Bearer t"},
            "multiValueHeaders": {"Authorization": ["Bearer t"]},
            "queryStringParameters": {"_method": "DELETE"},
            "requestContext": {"stage": "prod", "path": "/prod/AdminUser/7"}
        }))
        .unwrap();
        assert_eq!((rest.shape, rest.api), (Shape::Request, Api::Rest));
        assert_eq!(rest.path, "/AdminUser/7?_method=DELETE");
        assert_eq!(rest.header("authorization"), Some("Bearer t"));

        let v1 = parse(&json!({
            "version": "1.0", "type": "REQUEST", "methodArn": ARN, "path": "/prod/AdminUser/7",
            "httpMethod": "GET", "headers": {"authorization": "Bearer t"},
            "requestContext": {"stage": "prod"}
        }))
        .unwrap();
        assert_eq!(
            (v1.shape, v1.api, v1.path.as_str()),
            (Shape::Request, Api::Http, "/AdminUser/7")
        );
    }

    #[test]
    fn repeated_headers_are_joined_never_picked() {
        let e = parse(&json!({
            "type": "REQUEST", "methodArn": ARN, "path": "/x", "httpMethod": "GET",
            "multiValueHeaders": {"Authorization": ["Bearer a", "Bearer b"]},
            "headers": {"Authorization": "Bearer b"}
        }))
        .unwrap();
        assert_eq!(e.header("authorization"), Some("Bearer a,Bearer b"));
    }

    #[test]
    fn unknown_shapes_name_what_is_missing() {
        for (event, needle) in [
            (json!([]), "not a JSON object"),
            (json!({}), "expected a TOKEN event"),
            (
                json!({"type": "TOKEN", "methodArn": ARN}),
                "/authorizationToken",
            ),
            (
                json!({"type": "TOKEN", "authorizationToken": "t"}),
                "/methodArn",
            ),
            (json!({"version": "2.0", "rawPath": "/x"}), "/routeArn"),
            (
                json!({"version": "2.0", "routeArn": ARN, "rawPath": "/x"}),
                "/requestContext/http/method",
            ),
            (json!({"methodArn": ARN, "httpMethod": "GET"}), "/path"),
            (
                json!({"type": "TOKEN", "authorizationToken": "t", "methodArn": "arn:aws:s3:::b"}),
                "execute-api",
            ),
        ] {
            let e = parse(&event).unwrap_err().to_string();
            assert!(e.contains(needle), "{event}: {e}");
        }
    }

    #[test]
    fn the_stage_prefix_is_removed_only_when_present() {
        assert_eq!(strip_stage("/prod/a", Some("prod")), "/a");
        assert_eq!(strip_stage("/prod", Some("prod")), "/");
        assert_eq!(strip_stage("/production/a", Some("prod")), "/production/a");
        assert_eq!(strip_stage("/a", Some("$default")), "/a");
        assert_eq!(strip_stage("/a", None), "/a");
    }
}
