//! Store URLs: which kind of store one names, and how it is shown without
//! its secrets. A leaf (imports nothing from the crate), so `config` can
//! check `policy.store` with it.

/// The kinds of store `policy.store` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Postgres,
    Http,
}

impl StoreKind {
    pub fn of(url: &str) -> Option<StoreKind> {
        let scheme = url.split_once("://")?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(StoreKind::Postgres),
            "http" | "https" => Some(StoreKind::Http),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Postgres => "postgres",
            StoreKind::Http => "http",
        }
    }
}

/// A store URL fit for logs, errors and `/v1/policy`: the password of the
/// user part and every credential-like query value (`password`, and for
/// HTTP every value: presigned URLs carry signatures there) become `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".into();
    };
    let http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q.split('#').next().unwrap_or(""))),
        None => (rest.split('#').next().unwrap_or(""), None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _))
                    if http
                        || k.eq_ignore_ascii_case("password")
                        || k.eq_ignore_ascii_case("sslpassword") =>
                {
                    format!("{k}=***")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}
