//! The writer: turns an analysis into a markdown report with numbered citations.
//!
//! Citation numbers are assigned in order of first appearance in the text, so a reader meets
//! `[1]` before `[2]`, and the References list holds exactly the sources the text cites: nothing
//! uncited, nothing missing. The word limit is honoured by adding findings and figure rows one
//! at a time and stopping before the limit is passed; the summary, one finding and the
//! references are always kept, so a tiny limit still gives a usable report.

use crate::agent::AgentError;
use crate::analysis::{AnalysisOutput, Figure, Finding};
use crate::research::{parse_parameters, positive_int};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

pub const DEFAULT_WORD_LIMIT: usize = 500;
const MAX_FIGURE_ROWS: usize = 8;
/// Figure contexts are cut to this many words so the table stays readable.
const CONTEXT_WORDS: usize = 18;

#[derive(Debug, Clone, PartialEq)]
pub struct WritingRequest {
    pub topic: String,
    pub analysis: AnalysisOutput,
    pub word_limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    pub n: usize,
    pub source: String,
    pub title: String,
}

/// The writer's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportOutput {
    pub topic: String,
    pub title: String,
    pub report_markdown: String,
    pub word_count: usize,
    pub word_limit: usize,
    pub citations: Vec<Citation>,
    /// `offline`, or `llm:<model>` when an OpenAI-compatible model wrote the prose.
    pub generator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_fallback: Option<String>,
}

/// Accepts `{"topic", "analysis": <analyst output>, "word_limit"?}` or the analysis itself.
/// The word limit is the first of: `word_limit`, `parameters.word_limit`, the analysis's
/// `parameters.word_limit`, then 500.
///
/// # Errors
/// `InvalidInput` when no analysis with findings can be read.
pub fn parse_request(input: &Value) -> Result<WritingRequest, AgentError> {
    let obj = input
        .as_object()
        .ok_or_else(|| AgentError::invalid("writer input must be a JSON object"))?;
    let analysis_value = match obj.get("analysis") {
        Some(a) if a.is_object() => a,
        Some(_) => return Err(AgentError::invalid("\"analysis\" must be an object")),
        None => input,
    };
    let analysis: AnalysisOutput = serde_json::from_value(analysis_value.clone())
        .map_err(|e| AgentError::invalid(format!("writer input is not an analysis: {e}")))?;
    if analysis.findings.is_empty() {
        return Err(AgentError::invalid(
            "the analysis has no findings to write about",
        ));
    }
    let topic = obj
        .get("topic")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map_or_else(|| analysis.topic.clone(), str::to_string);
    let word_limit = match positive_int(obj, "word_limit")? {
        Some(w) => Some(w),
        None => parse_parameters(obj.get("parameters"))?.word_limit,
    }
    .or(analysis.parameters.word_limit)
    .unwrap_or(DEFAULT_WORD_LIMIT);
    Ok(WritingRequest {
        topic,
        analysis,
        word_limit,
    })
}

/// Assigns citation numbers in order of first use.
struct Citations {
    order: Vec<String>,
    titles: HashMap<String, String>,
}

impl Citations {
    fn new(analysis: &AnalysisOutput) -> Self {
        let mut titles = HashMap::new();
        for s in &analysis.sources {
            titles.insert(s.source.clone(), s.title.clone());
        }
        for f in &analysis.findings {
            if !f.title.is_empty() {
                titles.entry(f.source.clone()).or_insert(f.title.clone());
            }
        }
        Self {
            order: Vec::new(),
            titles,
        }
    }

    fn cite(&mut self, source: &str) -> usize {
        if let Some(i) = self.order.iter().position(|s| s == source) {
            return i + 1;
        }
        self.order.push(source.to_string());
        self.order.len()
    }

    fn list(&self) -> Vec<Citation> {
        self.order
            .iter()
            .enumerate()
            .map(|(i, source)| Citation {
                n: i + 1,
                source: source.clone(),
                title: self
                    .titles
                    .get(source)
                    .cloned()
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| source.clone()),
            })
            .collect()
    }
}

/// Counts words as whitespace-separated tokens holding a letter or digit, so markdown
/// punctuation (`#`, `|`, `---`) does not count.
pub fn count_words(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

pub fn report_title(topic: &str) -> String {
    let mut chars = topic.trim().chars();
    let topic = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect::<String>(),
        None => String::new(),
    };
    format!("Research report: {topic}")
}

/// The offline report.
pub fn write_report(req: &WritingRequest) -> ReportOutput {
    let findings = &req.analysis.findings;
    let figures = table_figures(&req.analysis.figures);
    let mut n_findings = 1;
    let mut n_figures = 0;
    let mut best = render_offline(req, n_findings, n_figures);
    while n_findings < findings.len() {
        let candidate = render_offline(req, n_findings + 1, n_figures);
        if count_words(&candidate.0) > req.word_limit {
            break;
        }
        n_findings += 1;
        best = candidate;
    }
    while n_figures < figures.len() {
        let candidate = render_offline(req, n_findings, n_figures + 1);
        if count_words(&candidate.0) > req.word_limit {
            break;
        }
        n_figures += 1;
        best = candidate;
    }
    let (markdown, citations) = best;
    ReportOutput {
        topic: req.topic.clone(),
        title: report_title(&req.topic),
        word_count: count_words(&markdown),
        report_markdown: markdown,
        word_limit: req.word_limit,
        citations,
        generator: "offline".into(),
        llm_fallback: None,
    }
}

fn render_offline(
    req: &WritingRequest,
    n_findings: usize,
    n_figures: usize,
) -> (String, Vec<Citation>) {
    let a = &req.analysis;
    let mut cites = Citations::new(a);
    let mut md = format!("# {}\n\n## Summary\n\n", report_title(&req.topic));

    // The summary leads with the best finding and the best one from another source.
    let lead = &a.findings[0];
    let second = a.findings.iter().find(|f| f.source != lead.source);
    let n_sources = distinct_sources(&a.findings[..n_findings.min(a.findings.len())]);
    md.push_str(&format!(
        "This report on {} draws on {} {} from the local corpus. ",
        req.topic.trim(),
        n_sources,
        if n_sources == 1 { "source" } else { "sources" }
    ));
    md.push_str(&cited(&lead.text, cites.cite(&lead.source)));
    if let Some(second) = second {
        md.push(' ');
        md.push_str(&cited(&second.text, cites.cite(&second.source)));
    }
    let terms: Vec<&str> = a.keywords.iter().take(4).map(|k| k.term.as_str()).collect();
    if !terms.is_empty() {
        md.push_str(&format!(
            " The passages return most often to {}.",
            join_words(&terms)
        ));
    }
    md.push_str("\n\n## Key findings\n\n");
    for (i, f) in a.findings.iter().take(n_findings).enumerate() {
        md.push_str(&format!(
            "{}. {}\n",
            i + 1,
            cited(&f.text, cites.cite(&f.source))
        ));
    }
    if n_figures > 0 {
        md.push_str("\n## Figures\n\n");
        push_figure_table(&mut md, &table_figures(&a.figures)[..n_figures], &mut cites);
    }
    push_references(&mut md, &cites);
    (md, cites.list())
}

/// Table rows: one figure per sentence first (several figures from one sentence would repeat
/// its context), then the rest, at most `MAX_FIGURE_ROWS`.
fn table_figures(figures: &[Figure]) -> Vec<Figure> {
    let mut seen = Vec::new();
    let (mut first, mut rest) = (Vec::new(), Vec::new());
    for f in figures {
        if seen.contains(&&f.context) {
            rest.push(f.clone());
        } else {
            seen.push(&f.context);
            first.push(f.clone());
        }
    }
    first.extend(rest);
    first.truncate(MAX_FIGURE_ROWS);
    first
}

fn push_figure_table(md: &mut String, figures: &[Figure], cites: &mut Citations) {
    md.push_str("| Figure | Context | Source |\n| --- | --- | --- |\n");
    for f in figures {
        md.push_str(&format!(
            "| {} | {} | [{}] |\n",
            cell(&f.value),
            cell(&shorten(&f.context, CONTEXT_WORDS)),
            cites.cite(&f.source)
        ));
    }
}

fn push_references(md: &mut String, cites: &Citations) {
    md.push_str("\n## References\n\n");
    for c in cites.list() {
        md.push_str(&format!("[{}] {} (`{}`)\n", c.n, c.title, c.source));
    }
}

fn distinct_sources(findings: &[Finding]) -> usize {
    let mut seen: Vec<&str> = Vec::new();
    for f in findings {
        if !seen.contains(&f.source.as_str()) {
            seen.push(&f.source);
        }
    }
    seen.len()
}

/// `"Latency is 2 ms."` + 3 -> `"Latency is 2 ms [3]."`: the marker sits inside the sentence
/// it supports.
fn cited(text: &str, n: usize) -> String {
    let t = text.trim();
    match t.char_indices().last() {
        Some((i, c @ ('.' | '!' | '?'))) => format!("{} [{n}]{c}", &t[..i]),
        _ => format!("{t} [{n}]."),
    }
}

fn join_words(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn shorten(text: &str, max_words: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() <= max_words {
        text.trim().to_string()
    } else {
        format!("{} …", words[..max_words].join(" "))
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Positions and numbers of the `[n]` markers in `text`.
fn citation_markers(text: &str) -> Vec<(usize, usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'[' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > i + 1 && j < bytes.len() && bytes[j] == b']' {
                if let Ok(n) = text[i + 1..j].parse() {
                    out.push((i, j + 1, n));
                }
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The numbered source list the model is asked to cite from: sources of the findings first,
/// in finding order, then the rest of the analysis's sources.
fn numbered_sources(a: &AnalysisOutput) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    let all = a
        .findings
        .iter()
        .map(|f| &f.source)
        .chain(a.figures.iter().map(|f| &f.source))
        .chain(a.sources.iter().map(|s| &s.source));
    for s in all {
        if !list.contains(s) {
            list.push(s.clone());
        }
    }
    list
}

/// The chat prompt for the writer.
pub fn llm_messages(req: &WritingRequest) -> (String, String) {
    let a = &req.analysis;
    let numbered = numbered_sources(a);
    let num = |s: &str| numbered.iter().position(|x| x == s).map_or(0, |i| i + 1);
    let cites = Citations::new(a);
    let system = "You write concise research reports in markdown from the facts given, and \
                  nothing else. Cite every claim with the bracketed source numbers given, such as \
                  [1]. Write a \"## Summary\" section and a \"## Key findings\" section only: no \
                  title, no tables, no references list."
        .to_string();
    let mut user = format!(
        "Topic: {}\nLength: about {} words.\n\nSources:\n",
        req.topic, req.word_limit
    );
    for (i, s) in numbered.iter().enumerate() {
        let title = cites.titles.get(s).map_or(s.as_str(), String::as_str);
        user.push_str(&format!("[{}] {} ({})\n", i + 1, title, s));
    }
    user.push_str("\nFindings:\n");
    for f in &a.findings {
        user.push_str(&format!("- {} [{}]\n", f.text, num(&f.source)));
    }
    if !a.figures.is_empty() {
        user.push_str("\nFigures:\n");
        for f in a.figures.iter().take(MAX_FIGURE_ROWS) {
            user.push_str(&format!(
                "- {}: {} [{}]\n",
                f.value,
                f.context,
                num(&f.source)
            ));
        }
    }
    (system, user)
}

/// Builds the report around prose written by a model: the model's citation numbers are checked
/// against the numbered source list and renumbered by first appearance, then the title, the
/// figures table and the references are added here so they are always correct.
///
/// # Errors
/// A reason, when the prose is empty, cites nothing, or cites a number that was never offered
/// (the caller then writes the offline report).
pub fn write_report_with_prose(req: &WritingRequest, prose: &str) -> Result<ReportOutput, String> {
    let numbered = numbered_sources(&req.analysis);
    let body = clean_model_prose(prose);
    if body.trim().is_empty() {
        return Err("the model returned no prose".into());
    }
    let markers = citation_markers(&body);
    if markers.is_empty() {
        return Err("the model's prose cites no source".into());
    }
    if let Some((_, _, bad)) = markers
        .iter()
        .find(|(_, _, n)| *n == 0 || *n > numbered.len())
    {
        return Err(format!(
            "the model cited [{bad}] but only {} sources were given",
            numbered.len()
        ));
    }
    let mut cites = Citations::new(&req.analysis);
    let mut renumbered = String::with_capacity(body.len());
    let mut last = 0;
    for (start, end, n) in markers {
        renumbered.push_str(&body[last..start]);
        renumbered.push_str(&format!("[{}]", cites.cite(&numbered[n - 1])));
        last = end;
    }
    renumbered.push_str(&body[last..]);

    let mut md = format!("# {}\n\n{}\n", report_title(&req.topic), renumbered.trim());
    let figures = table_figures(&req.analysis.figures);
    if !figures.is_empty() {
        md.push_str("\n## Figures\n\n");
        push_figure_table(&mut md, &figures, &mut cites);
    }
    push_references(&mut md, &cites);
    Ok(ReportOutput {
        topic: req.topic.clone(),
        title: report_title(&req.topic),
        word_count: count_words(&md),
        report_markdown: md,
        word_limit: req.word_limit,
        citations: cites.list(),
        generator: String::new(),
        llm_fallback: None,
    })
}

/// Drops a title and any references/figures section the model added despite being asked not
/// to, since those are generated here.
fn clean_model_prose(prose: &str) -> String {
    let mut out = Vec::new();
    for line in prose.trim().trim_matches('`').lines() {
        let t = line.trim().to_lowercase();
        let heading = t.trim_start_matches('#').trim();
        if t.starts_with('#')
            && (heading.starts_with("references") || heading.starts_with("figures"))
        {
            break;
        }
        if t.starts_with("# ") {
            continue;
        }
        out.push(line);
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyse;
    use crate::corpus::{Corpus, DEFAULT_CORPUS_DIR};
    use crate::research::{Parameters, ResearchRequest, Researcher};
    use serde_json::json;
    use std::path::Path;
    use std::sync::Arc;

    fn analysis(topic: &str) -> AnalysisOutput {
        let r = Researcher::new(Arc::new(
            Corpus::load(Path::new(DEFAULT_CORPUS_DIR)).unwrap(),
        ));
        analyse(
            &r.research(&ResearchRequest {
                topic: topic.into(),
                parameters: Parameters::default(),
            })
            .unwrap(),
        )
    }

    fn request(topic: &str, word_limit: usize) -> WritingRequest {
        WritingRequest {
            topic: topic.into(),
            analysis: analysis(topic),
            word_limit,
        }
    }

    /// Every `[n]` in the text maps to a reference, and every reference is cited.
    fn assert_citations_consistent(report: &ReportOutput) {
        let md = &report.report_markdown;
        let (body, refs) = md.split_once("## References").expect("has references");
        let used: Vec<usize> = citation_markers(body).iter().map(|m| m.2).collect();
        assert!(!used.is_empty(), "no citations in {md}");
        let mut distinct = used.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct,
            (1..=report.citations.len()).collect::<Vec<_>>(),
            "citations are 1..n without gaps"
        );
        // First appearances are in increasing order.
        let mut firsts = Vec::new();
        for n in &used {
            if !firsts.contains(n) {
                firsts.push(*n);
            }
        }
        assert_eq!(firsts, distinct);
        for c in &report.citations {
            assert!(
                refs.contains(&format!("[{}] {} (`{}`)", c.n, c.title, c.source)),
                "reference {c:?} missing"
            );
        }
    }

    #[test]
    fn report_has_sections_and_consistent_citations_to_real_sources() {
        let req = request("durable execution and replay", 600);
        let report = write_report(&req);
        let md = &report.report_markdown;
        assert!(md.starts_with("# Research report: Durable execution and replay\n"));
        for section in [
            "## Summary",
            "## Key findings",
            "## Figures",
            "## References",
        ] {
            assert!(md.contains(section), "missing {section}");
        }
        assert!(md.contains("| Figure | Context | Source |"));
        assert_citations_consistent(&report);
        let corpus = Corpus::load(Path::new(DEFAULT_CORPUS_DIR)).unwrap();
        for c in &report.citations {
            let doc = corpus.document(&c.source).expect("cited source exists");
            assert_eq!(doc.title, c.title);
        }
        assert_eq!(report.word_count, count_words(md));
        assert!(report.word_count <= 600);
        assert_eq!(report.generator, "offline");
    }

    #[test]
    fn word_limit_shrinks_the_report_but_keeps_its_skeleton() {
        let long = write_report(&request("fsync and group commit", 2000));
        let short = write_report(&request("fsync and group commit", 120));
        assert!(short.word_count < long.word_count);
        assert!(short.report_markdown.contains("## Key findings\n\n1. "));
        assert!(short.report_markdown.contains("## References"));
        assert_citations_consistent(&short);
        assert_citations_consistent(&long);
    }

    #[test]
    fn citation_markers_sit_inside_the_sentence() {
        assert_eq!(cited("Latency is 2 ms.", 3), "Latency is 2 ms [3].");
        assert_eq!(cited(" Does it? ", 1), "Does it [1]?");
        assert_eq!(cited("No period", 2), "No period [2].");
    }

    #[test]
    fn report_is_deterministic() {
        let req = request("WebAssembly sandbox", 400);
        assert_eq!(write_report(&req), write_report(&req));
    }

    #[test]
    fn parses_wrapped_and_bare_analyses_and_finds_the_word_limit() {
        let a = analysis("retry policies");
        let v = serde_json::to_value(&a).unwrap();
        let wrapped =
            parse_request(&json!({"topic": "Retries", "analysis": v, "word_limit": 300})).unwrap();
        assert_eq!(wrapped.topic, "Retries");
        assert_eq!(wrapped.word_limit, 300);
        let bare = parse_request(&v).unwrap();
        assert_eq!(bare.topic, "retry policies");
        assert_eq!(bare.word_limit, DEFAULT_WORD_LIMIT);
        let via_params =
            parse_request(&json!({"analysis": v, "parameters": {"word_limit": 250}})).unwrap();
        assert_eq!(via_params.word_limit, 250);
        let mut with_params = a.clone();
        with_params.parameters.word_limit = Some(222);
        let inherited = parse_request(&serde_json::to_value(&with_params).unwrap()).unwrap();
        assert_eq!(inherited.word_limit, 222);
        for bad in [json!({"analysis": 3}), json!({"topic": "x"}), json!([1])] {
            assert!(
                matches!(parse_request(&bad), Err(AgentError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn model_prose_is_renumbered_and_checked() {
        let req = request("human approval", 500);
        let numbered = numbered_sources(&req.analysis);
        assert!(numbered.len() >= 2);
        let prose = "# My title\n\n## Summary\n\nApprovals are slow [2]. Links help [1][2].\n\n## Key findings\n\n- Timeouts matter [2].\n\n## References\n[1] junk";
        let report = write_report_with_prose(&req, prose).unwrap();
        let md = &report.report_markdown;
        assert!(!md.contains("My title"));
        assert!(!md.contains("junk"));
        // [2] appears first, so it becomes [1].
        assert!(
            md.contains("Approvals are slow [1]. Links help [2][1]."),
            "{md}"
        );
        assert_eq!(report.citations[0].source, numbered[1]);
        assert_eq!(report.citations[1].source, numbered[0]);
        assert_citations_consistent(&report);

        assert!(write_report_with_prose(&req, "No citations at all.").is_err());
        assert!(write_report_with_prose(&req, "Bad [99].").is_err());
        assert!(write_report_with_prose(&req, "   ").is_err());
    }
}
