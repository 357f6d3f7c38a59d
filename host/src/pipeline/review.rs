//! The analysis a reviewer reads on the console's approval page, rendered as HTML here, on the
//! server, so the page shows one safe rendering whatever the analyst answered.
//!
//! The analysis is what the analyst agent returned (stored by the run as `analysis.json`):
//! structured JSON, such as the demo analyst's `{"findings": [...], ...}`, or markdown text, as
//! A2A agents answer with a text artifact. JSON becomes sections, lists and definition lists,
//! keys turned into headings; strings of several lines (and a text answer) are markdown.
//!
//! Agent output is untrusted. Every text is escaped; markdown is rendered by `pulldown-cmark`
//! with its raw HTML turned into plain text (shown, not interpreted), link targets other than
//! `http`, `https`, `mailto` and in-page anchors dropped (no `javascript:`), and images shown
//! as links, so the page loads nothing the agent names. The console's content security policy
//! (`api/console`) is the second fence: it runs no inline script.

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};
use serde_json::Value;
use std::fmt::Write as _;

/// Sections nest as headings down to this depth, then as definition lists.
const MAX_HEADING_DEPTH: usize = 3;
/// A string longer than this, or with a line break, is markdown; shorter ones are plain text.
const INLINE_TEXT: usize = 200;

/// `analysis` as an HTML fragment, safe to put in a page.
pub fn render(analysis: &Value) -> String {
    let mut out = String::new();
    match analysis {
        Value::String(text) => out.push_str(&markdown(text)),
        other => value(&mut out, other, 0),
    }
    out
}

fn value(out: &mut String, v: &Value, depth: usize) {
    match v {
        Value::Null => out.push_str("<p class=\"muted\">none</p>"),
        Value::Bool(_) | Value::Number(_) => {
            let _ = write!(out, "<p>{}</p>", escape(&v.to_string()));
        }
        Value::String(s) => string(out, s),
        Value::Array(items) if items.is_empty() => out.push_str("<p class=\"muted\">none</p>"),
        Value::Array(items) if items.iter().all(is_short) => {
            out.push_str("<ul>");
            for item in items {
                let _ = write!(out, "<li>{}</li>", escape(&scalar(item)));
            }
            out.push_str("</ul>");
        }
        Value::Array(items) if items.iter().all(is_record) => table(out, items),
        Value::Array(items) => {
            out.push_str("<ol>");
            for item in items {
                out.push_str("<li>");
                // An item's fields are a list of its own, never headings among the list's.
                value(out, item, MAX_HEADING_DEPTH);
                out.push_str("</li>");
            }
            out.push_str("</ol>");
        }
        Value::Object(fields) if depth < MAX_HEADING_DEPTH => {
            for (key, field) in fields {
                let level = depth + 2;
                let _ = write!(out, "<section><h{level}>{}</h{level}>", escape(&title(key)));
                value(out, field, depth + 1);
                out.push_str("</section>");
            }
        }
        Value::Object(fields) => {
            out.push_str("<dl>");
            for (key, field) in fields {
                let _ = write!(out, "<dt>{}</dt><dd>", escape(&title(key)));
                if is_short(field) {
                    out.push_str(&escape(&scalar(field)));
                } else {
                    value(out, field, depth + 1);
                }
                out.push_str("</dd>");
            }
            out.push_str("</dl>");
        }
    }
}

/// A list of records as a table: a column per field, in the order the first record gives
/// them, then any field a later one adds.
fn table(out: &mut String, items: &[Value]) {
    let mut columns: Vec<&str> = Vec::new();
    for item in items {
        for key in item.as_object().into_iter().flat_map(|o| o.keys()) {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    out.push_str("<table><thead><tr>");
    for column in &columns {
        let _ = write!(out, "<th>{}</th>", escape(&title(column)));
    }
    out.push_str("</tr></thead><tbody>");
    for item in items {
        out.push_str("<tr>");
        for column in &columns {
            let cell = item.get(*column).map_or_else(String::new, scalar);
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// An object whose fields are all short: a row of a table.
fn is_record(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| !o.is_empty() && o.len() <= 8 && o.values().all(is_short))
}

fn string(out: &mut String, s: &str) {
    if s.contains('\n') || s.len() > INLINE_TEXT {
        out.push_str(&markdown(s));
    } else {
        let _ = write!(out, "<p>{}</p>", escape(s));
    }
}

/// A scalar, or a string short enough to stand in a list item.
fn is_short(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.contains('\n') && s.len() <= INLINE_TEXT,
        Value::Array(_) | Value::Object(_) => false,
        _ => true,
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}

/// `key_findings` → `Key findings`.
fn title(key: &str) -> String {
    let spaced = key.replace(['_', '-'], " ");
    let mut chars = spaced.trim().chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// `text` as markdown rendered to HTML: raw HTML shown as text, unsafe links dropped, images
/// as links.
pub fn markdown(text: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            dest_url,
            title,
            id,
            ..
        }) => Event::Start(Tag::Link {
            link_type: LinkType::Inline,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// `url` when it is `http`, `https`, `mailto` or an in-page anchor; otherwise empty.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let allowed = ["http://", "https://", "mailto:", "#"]
        .iter()
        .any(|p| lower.starts_with(p));
    if allowed { url } else { CowStr::Borrowed("") }
}

/// `text` with the characters that mean something in HTML escaped.
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
    use super::{escape, markdown, render};
    use serde_json::json;

    #[test]
    fn structured_analysis_becomes_sections_tables_lists_and_definitions() {
        let html = render(&json!({
            "topic": "solid-state batteries",
            "key_findings": [
                {"text": "Energy density is up 40%.", "source": "a.md", "score": 0.9},
                {"text": "Costs fall.", "source": "b.md", "score": 0.5, "note": "new"}
            ],
            "themes": ["density", "cost"],
            "claims": [{"text": "Long.", "evidence": {"source": "c.md", "pages": [1, 2]}}],
            "summary": "First line.\n\n- a point\n- **another**",
        }));
        assert!(html.contains("<section><h2>Topic</h2><p>solid-state batteries</p></section>"));
        // Records of short fields: a table, a column per field, blank where one has none.
        assert!(
            html.contains(
                "<h2>Key findings</h2><table><thead><tr><th>Score</th><th>Source</th><th>Text</th>\
             <th>Note</th></tr></thead><tbody><tr><td>0.9</td><td>a.md</td>\
             <td>Energy density is up 40%.</td><td></td></tr>"
            ),
            "{html}"
        );
        // Records with nested values: a numbered list of definition lists.
        assert!(html.contains(
            "<h2>Claims</h2><ol><li><dl><dt>Evidence</dt><dd><dl><dt>Pages</dt><dd><ul><li>1</li>"
        ), "{html}");
        assert!(html.contains("<ul><li>density</li><li>cost</li></ul>"));
        assert!(html.contains("<li><strong>another</strong></li>"), "{html}");
    }

    #[test]
    fn a_text_answer_is_markdown() {
        let html = render(&json!(
            "# Analysis\n\nSee [the paper](https://example.org/p).\n\n| a | b |\n|---|---|\n| 1 | 2 |"
        ));
        assert!(html.contains("<h1>Analysis</h1>"));
        assert!(html.contains("<a href=\"https://example.org/p\">the paper</a>"));
        assert!(html.contains("<table>"), "{html}");
    }

    #[test]
    fn nested_objects_stop_nesting_headings() {
        let html = render(&json!({"a": {"b": {"c": {"d": 1}}}}));
        assert!(
            html.contains("<h2>A</h2>")
                && html.contains("<h3>B</h3>")
                && html.contains("<h4>C</h4>")
        );
        assert!(html.contains("<dl><dt>D</dt><dd>1</dd></dl>"), "{html}");
    }

    /// What an agent writes is shown, never run: no element, attribute or URL of its own
    /// reaches the page.
    #[test]
    fn agent_output_cannot_inject_markup_or_scripts() {
        let attacks = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "line\n\n<iframe src=\"https://evil.example\"></iframe>\n",
            "[click](javascript:alert(1))",
            "[click]( JAVASCRIPT:alert(1))",
            "![x](https://tracker.example/p.png)",
            "[data](data:text/html;base64,PHNjcmlwdD4=)",
            "\"><svg onload=alert(1)>",
        ];
        for attack in attacks {
            for html in [
                render(&json!(attack)),
                render(
                    &json!({ attack: attack, "list": [attack], "long": format!("{attack}\n{attack}") }),
                ),
            ] {
                for bad in [
                    "<script",
                    "<img",
                    "<iframe",
                    "<svg",
                    "href=\"javascript",
                    "href=\" javascript",
                    "href=\"data:",
                ] {
                    assert!(
                        !html.to_ascii_lowercase().contains(bad),
                        "{bad:?} from {attack:?} in {html}"
                    );
                }
            }
        }
        // The image became a link to what it named, loading nothing.
        let image = markdown("![x](https://tracker.example/p.png)");
        assert!(
            image.contains("<a href=\"https://tracker.example/p.png\">x</a>"),
            "{image}"
        );
        // Raw HTML is shown as text.
        assert!(markdown("a <b>bold</b> claim").contains("a &lt;b&gt;bold&lt;/b&gt; claim"));
    }

    #[test]
    fn escape_covers_markup_and_attribute_quotes() {
        assert_eq!(
            escape("<a href='x' title=\"y\">&</a>"),
            "&lt;a href=&#39;x&#39; title=&quot;y&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
