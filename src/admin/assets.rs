//! The explorer's pages: plain HTML, CSS and JavaScript in `assets/`,
//! compiled into the binary. No build step, no external resource; every
//! script is a file of this origin, so the CSP allows no inline script.

use std::sync::OnceLock;

use axum::{
    extract::Path,
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};

const LAYOUT: &str = include_str!("assets/layout.html");
const LOGIN: &str = include_str!("assets/login.html");

/// Static files under `/assets/`: (name, content type, body).
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/live.js"),
    ),
    (
        "overview.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/overview.js"),
    ),
    (
        "explain.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/explain.js"),
    ),
    (
        "policy.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/policy.js"),
    ),
];

/// A page: the layout around `main`, loading `script`.
fn page(title: &str, main: &str, script: &str) -> String {
    LAYOUT
        .replace("{{title}}", title)
        .replace("{{script}}", script)
        .replace("{{main}}", main)
}

macro_rules! page_handler {
    ($name:ident, $title:literal, $file:literal, $script:literal) => {
        pub async fn $name() -> Html<&'static str> {
            static PAGE: OnceLock<String> = OnceLock::new();
            Html(PAGE.get_or_init(|| page($title, include_str!($file), $script)))
        }
    };
}

page_handler!(live, "Live", "assets/live.html", "live.js");
page_handler!(overview, "Overview", "assets/overview.html", "overview.js");
page_handler!(explain, "Explain", "assets/explain.html", "explain.js");
page_handler!(policy, "Policy", "assets/policy.html", "policy.js");

/// `GET /assets/{file}`.
pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => ([(header::CONTENT_TYPE, *kind)], *body).into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// `GET /login`.
pub async fn login() -> Html<String> {
    login_page(None)
}

/// The sign-in page, with why the last attempt failed (escaped: it may
/// quote a claim of the token that was refused).
pub fn login_page(error: Option<&str>) -> Html<String> {
    let error = error
        .map(|e| format!("<div class=\"error\" id=\"error\">{}</div>", escape(e)))
        .unwrap_or_default();
    Html(LOGIN.replace("{{error}}", &error))
}

/// `text` with HTML's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape(r#""><img src=x onerror='alert(1)'>&"#),
            "&quot;&gt;&lt;img src=x onerror=&#39;alert(1)&#39;&gt;&amp;"
        );
    }

    #[test]
    fn pages_have_no_inline_script_or_style() {
        for p in [
            LAYOUT,
            LOGIN,
            include_str!("assets/live.html"),
            include_str!("assets/overview.html"),
            include_str!("assets/explain.html"),
            include_str!("assets/policy.html"),
        ] {
            assert!(!p.contains("style="), "inline style");
            assert!(!p.contains("<style"), "inline style");
            assert!(
                !p.contains("onclick") && !p.contains("onload"),
                "inline handler"
            );
            for script in p.split("<script").skip(1) {
                assert!(
                    script.trim_start().starts_with("src="),
                    "inline script: {script}"
                );
            }
        }
    }
}
