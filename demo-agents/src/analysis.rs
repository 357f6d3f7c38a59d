//! The analyst: turns quoted passages into key findings, extracted figures and keywords.
//!
//! A finding is a single sentence from the research, chosen for two reasons at once: it talks
//! about the topic (weighted overlap with the topic terms, rare terms counting more) and it is
//! central (similar to what the passages as a whole say, so it is representative rather than an
//! aside). Findings are spread over sources before any source gets a third one, so the report
//! can cite more than one document. Figures are numbers with a unit and their sentence, pulled
//! out separately because readers of a research report look for them first.

use crate::agent::AgentError;
use crate::corpus::{is_stopword, stem, tokenize, words};
use crate::research::{Parameters, ResearchOutput, SourceRef, round4};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

const MAX_FINDINGS: usize = 8;
const MIN_FINDINGS: usize = 3;
const FINDINGS_PER_SOURCE_FIRST_PASS: usize = 2;
const MAX_FIGURES: usize = 20;
const MAX_KEYWORDS: usize = 12;
/// Sentences sharing more than this fraction of their terms count as the same finding.
const DUPLICATE_JACCARD: f64 = 0.5;
/// Sentences shorter than this (in index terms) are headings or fragments, not findings.
const MIN_SENTENCE_TERMS: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub text: String,
    pub source: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The figure as a reader would quote it: "41 ms per sequential step".
    pub value: String,
    /// The numeric part, with K/M/B multipliers applied (43K -> 43000).
    #[serde(default)]
    pub number: f64,
    #[serde(default)]
    pub unit: String,
    /// The sentence the figure was found in.
    pub context: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyword {
    pub term: String,
    pub count: usize,
}

/// The analyst's result; also the writer's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisOutput {
    pub topic: String,
    #[serde(default)]
    pub parameters: Parameters,
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub figures: Vec<Figure>,
    #[serde(default)]
    pub keywords: Vec<Keyword>,
    #[serde(default)]
    pub sources: Vec<SourceRef>,
    /// `offline`, or `llm:<model>` when an OpenAI-compatible model chose the findings.
    #[serde(default = "offline")]
    pub generator: String,
    /// Why the LLM path was abandoned, when it was tried and failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_fallback: Option<String>,
}

pub fn offline() -> String {
    "offline".to_string()
}

/// Accepts the researcher's output itself or `{"research": <output>}`.
///
/// # Errors
/// `InvalidInput` when the research is malformed or has no passages.
pub fn parse_request(input: &Value) -> Result<ResearchOutput, AgentError> {
    let research = match input.get("research") {
        Some(inner) if inner.is_object() => inner,
        _ => input,
    };
    let mut out: ResearchOutput = serde_json::from_value(research.clone())
        .map_err(|e| AgentError::invalid(format!("analyst input is not a research result: {e}")))?;
    if out.passages.is_empty() {
        return Err(AgentError::invalid("the research result has no passages"));
    }
    if out.topic.trim().is_empty()
        && let Some(topic) = input.get("topic").and_then(Value::as_str)
    {
        out.topic = topic.to_string();
    }
    Ok(out)
}

/// One sentence of the research with where it came from.
struct Sentence {
    text: String,
    source: String,
    title: String,
    passage_score: f64,
    terms: Vec<String>,
}

/// The offline analysis.
pub fn analyse(research: &ResearchOutput) -> AnalysisOutput {
    let sentences = collect_sentences(research);
    let findings = select_findings(research, &sentences);
    let figures = extract_all_figures(&sentences);
    let keywords = keywords(research);
    let sources = if research.sources.is_empty() {
        let mut seen = Vec::<SourceRef>::new();
        for p in &research.passages {
            if !seen.iter().any(|s| s.source == p.source) {
                seen.push(SourceRef {
                    source: p.source.clone(),
                    title: p.title.clone(),
                    score: p.score,
                });
            }
        }
        seen
    } else {
        research.sources.clone()
    };
    AnalysisOutput {
        topic: research.topic.clone(),
        parameters: research.parameters,
        findings,
        figures,
        keywords,
        sources,
        generator: offline(),
        llm_fallback: None,
    }
}

fn collect_sentences(research: &ResearchOutput) -> Vec<Sentence> {
    let mut out = Vec::new();
    for p in &research.passages {
        for s in split_sentences(&p.text) {
            let terms = tokenize(&s);
            out.push(Sentence {
                text: s,
                source: p.source.clone(),
                title: p.title.clone(),
                passage_score: p.score,
                terms,
            });
        }
    }
    out
}

fn select_findings(research: &ResearchOutput, sentences: &[Sentence]) -> Vec<Finding> {
    let topic_terms: Vec<String> = {
        let mut t = tokenize(&research.topic);
        t.extend(research.query_terms.iter().cloned());
        let mut seen = HashSet::new();
        t.retain(|x| seen.insert(x.clone()));
        t
    };
    let n = sentences.len() as f64;
    let mut df: HashMap<&str, usize> = HashMap::new();
    for s in sentences {
        let unique: HashSet<&str> = s.terms.iter().map(String::as_str).collect();
        for t in unique {
            *df.entry(t).or_default() += 1;
        }
    }
    let idf = |t: &str| -> f64 {
        let d = df.get(t).copied().unwrap_or(0) as f64;
        ((n + 1.0) / (d + 1.0)).ln() + 1.0
    };
    // TF-IDF vectors and their centroid, for centrality.
    let vectors: Vec<HashMap<&str, f64>> = sentences
        .iter()
        .map(|s| {
            let mut v: HashMap<&str, f64> = HashMap::new();
            for t in &s.terms {
                *v.entry(t.as_str()).or_default() += 1.0;
            }
            for (t, w) in &mut v {
                *w *= idf(t);
            }
            v
        })
        .collect();
    let mut centroid: HashMap<&str, f64> = HashMap::new();
    for v in &vectors {
        for (t, w) in v {
            *centroid.entry(t).or_default() += w;
        }
    }
    let topic_weight: f64 = topic_terms.iter().map(|t| idf(t)).sum();
    let max_passage = sentences
        .iter()
        .map(|s| s.passage_score)
        .fold(0.0_f64, f64::max);

    let mut scored: Vec<(usize, f64)> = sentences
        .iter()
        .enumerate()
        .filter(|(_, s)| s.terms.len() >= MIN_SENTENCE_TERMS)
        .map(|(i, s)| {
            let present: HashSet<&str> = s.terms.iter().map(String::as_str).collect();
            let overlap = if topic_weight > 0.0 {
                topic_terms
                    .iter()
                    .filter(|t| present.contains(t.as_str()))
                    .map(|t| idf(t))
                    .sum::<f64>()
                    / topic_weight
            } else {
                0.0
            };
            let centrality = cosine(&vectors[i], &centroid);
            let has_figure = !extract_figures(&s.text, &s.source).is_empty();
            let passage = if max_passage > 0.0 {
                s.passage_score / max_passage
            } else {
                0.0
            };
            let mut score = 0.5 * overlap
                + 0.3 * centrality
                + 0.1 * f64::from(u8::from(has_figure))
                + 0.1 * passage;
            if opens_with_reference(&s.text) {
                score *= ANAPHORA_PENALTY;
            }
            (i, score)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

    let wanted = research.passages.len().clamp(MIN_FINDINGS, MAX_FINDINGS);
    let mut chosen: Vec<(usize, f64)> = Vec::new();
    let mut per_source: HashMap<&str, usize> = HashMap::new();
    for cap in [Some(FINDINGS_PER_SOURCE_FIRST_PASS), None] {
        for &(i, score) in &scored {
            if chosen.len() >= wanted {
                break;
            }
            if chosen.iter().any(|(c, _)| *c == i) {
                continue;
            }
            let s = &sentences[i];
            if cap.is_some_and(|cap| per_source.get(s.source.as_str()).copied().unwrap_or(0) >= cap)
            {
                continue;
            }
            if chosen
                .iter()
                .any(|(c, _)| jaccard(&sentences[*c].terms, &s.terms) > DUPLICATE_JACCARD)
            {
                continue;
            }
            *per_source.entry(s.source.as_str()).or_default() += 1;
            chosen.push((i, score));
        }
    }
    chosen
        .into_iter()
        .map(|(i, score)| Finding {
            text: sentences[i].text.clone(),
            source: sentences[i].source.clone(),
            title: sentences[i].title.clone(),
            score: round4(score),
        })
        .collect()
}

/// Words that, opening a sentence, point back at something the reader of a lone finding
/// never saw ("They", "This approach").
const ANAPHORA: &[&str] = &[
    "this", "these", "that", "those", "it", "its", "they", "them", "their", "such", "he", "she",
    "both", "another",
];
const ANAPHORA_PENALTY: f64 = 0.6;

fn opens_with_reference(sentence: &str) -> bool {
    words(sentence)
        .next()
        .is_some_and(|w| ANAPHORA.contains(&w.as_str()))
}

/// Units of measurement (as opposed to counted nouns like "teams"); figures with these are
/// what a reader scans a report for, so they are listed first.
const MEASURES: &[&str] = &[
    "ns",
    "µs",
    "us",
    "ms",
    "s",
    "sec",
    "second",
    "seconds",
    "microsecond",
    "microseconds",
    "millisecond",
    "milliseconds",
    "minute",
    "minutes",
    "hour",
    "hours",
    "day",
    "days",
    "week",
    "weeks",
    "b",
    "kb",
    "mb",
    "gb",
    "tb",
    "kib",
    "mib",
    "gib",
    "tib",
    "%",
    "percent",
    "x",
    "times",
];

fn is_measure(f: &Figure) -> bool {
    MEASURES.contains(&f.unit.to_lowercase().as_str()) || f.value.contains(" per ")
}

fn cosine(a: &HashMap<&str, f64>, b: &HashMap<&str, f64>) -> f64 {
    let dot: f64 = a
        .iter()
        .map(|(t, w)| w * b.get(t).copied().unwrap_or(0.0))
        .sum();
    let na: f64 = a.values().map(|w| w * w).sum::<f64>().sqrt();
    let nb: f64 = b.values().map(|w| w * w).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

fn jaccard(a: &[String], b: &[String]) -> f64 {
    let a: HashSet<&String> = a.iter().collect();
    let b: HashSet<&String> = b.iter().collect();
    let union = a.union(&b).count();
    if union == 0 {
        0.0
    } else {
        a.intersection(&b).count() as f64 / union as f64
    }
}

/// Figures in passage order, measurements before counts, without repeats.
fn extract_all_figures(sentences: &[Sentence]) -> Vec<Figure> {
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    for s in sentences {
        for f in extract_figures(&s.text, &s.source) {
            if seen.insert((f.value.to_lowercase(), f.source.clone())) {
                all.push(f);
            }
        }
    }
    // Stable: passage order is kept within each group.
    all.sort_by_key(|f| !is_measure(f));
    all.truncate(MAX_FIGURES);
    all
}

/// Abbreviations whose trailing period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "etc", "vs", "cf", "approx", "dr", "mr", "mrs", "fig", "no", "al",
];

/// Splits prose into sentences at `.`, `!` or `?` followed by whitespace and a capital letter,
/// digit or opening quote, unless the period ends a known abbreviation or an initial.
pub fn split_sentences(text: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut start = 0;
    for (k, &(i, c)) in chars.iter().enumerate() {
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        let Some(&(_, next)) = chars.get(k + 1) else {
            continue;
        };
        if !next.is_whitespace() {
            continue;
        }
        let following = chars[k + 1..]
            .iter()
            .map(|&(_, c)| c)
            .find(|c| !c.is_whitespace());
        if !following.is_some_and(|f| f.is_uppercase() || f.is_ascii_digit() || "\"'(“".contains(f))
        {
            continue;
        }
        if c == '.' {
            let before = &text[start..i];
            let last_word = before
                .rsplit(|ch: char| ch.is_whitespace() || ch == '(')
                .next()
                .unwrap_or("")
                .to_lowercase();
            if ABBREVIATIONS.contains(&last_word.as_str())
                || (last_word.chars().count() == 1 && last_word.chars().all(char::is_alphabetic))
            {
                continue;
            }
        }
        let end = i + c.len_utf8();
        let sentence = text[start..end].trim();
        if !sentence.is_empty() {
            out.push(sentence.to_string());
        }
        start = end;
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// Strips quoting and trailing punctuation from a whitespace token; reports whether the token
/// ended a clause (so a unit phrase must stop there).
fn clean(token: &str) -> (&str, bool) {
    let t = token.trim_start_matches(['(', '[', '"', '\'', '“', '~', '≈', '$']);
    let trimmed = t.trim_end_matches([',', ';', ':', ')', ']', '"', '\'', '”', '.', '!', '?']);
    (trimmed, trimmed.len() != t.len())
}

/// Splits "1,000-step" into (1000.0, "1,000", "-step"); `None` when the token does not start
/// with a number or is a version string like "2.0.1".
fn split_number(token: &str) -> Option<(f64, &str, &str)> {
    let bytes = token.as_bytes();
    if !bytes.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let mut end = 0;
    while end < bytes.len() {
        let b = bytes[end];
        // Digits, and `,`/`.` between digits ("1,000", "2.5").
        let separator = (b == b',' || b == b'.')
            && end > 0
            && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
        if !(b.is_ascii_digit() || separator) {
            break;
        }
        end += 1;
    }
    let digits = &token[..end];
    let suffix = &token[end..];
    if digits.matches('.').count() > 1 {
        return None;
    }
    if digits.contains(',') && digits.split(',').skip(1).any(|g| g.len() != 3) {
        return None;
    }
    let number: f64 = digits.replace(',', "").parse().ok()?;
    Some((number, digits, suffix))
}

fn multiplier(suffix: &str) -> Option<f64> {
    match suffix {
        "K" | "k" => Some(1e3),
        "M" => Some(1e6),
        "B" | "bn" => Some(1e9),
        _ => None,
    }
}

/// A word that can be the unit or counted noun after a number ("ms", "MiB", "percent",
/// "workflows/s", "steps").
fn is_unit_word(word: &str) -> bool {
    let Some(first) = word.chars().next() else {
        return false;
    };
    (first.is_alphabetic() || first == '%' || first == 'µ')
        && word
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, '/' | '%' | '-' | 'µ'))
        && !is_stopword(&word.to_lowercase())
}

/// Figures in one sentence: a number with a unit (or a counted noun), optionally a range
/// ("5 to 20 microseconds") and a rate ("per sequential step").
pub fn extract_figures(sentence: &str, source: &str) -> Vec<Figure> {
    let tokens: Vec<&str> = sentence.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (tok, tok_ends_clause) = clean(tokens[i]);
        let Some((mut number, _, suffix)) = split_number(tok) else {
            i += 1;
            continue;
        };
        if suffix.starts_with('.') {
            i += 1;
            continue;
        }
        let mut value = tok.to_string();
        let mut unit = String::new();
        let mut next = i + 1;
        let mut ended = tok_ends_clause;

        // "1 to 3 percent", "50-200 ms"
        if !ended && suffix.is_empty() && next + 1 < tokens.len() {
            let (joiner, _) = clean(tokens[next]);
            if matches!(joiner, "to" | "-" | "–") {
                let (upper, upper_ends) = clean(tokens[next + 1]);
                if let Some((hi, _, hi_suffix)) = split_number(upper) {
                    value = format!("{tok} to {upper}");
                    number = hi;
                    next += 2;
                    ended = upper_ends;
                    if !hi_suffix.is_empty() {
                        unit = hi_suffix.trim_start_matches('-').to_string();
                    }
                }
            }
        }

        let own_suffix = if unit.is_empty() { suffix } else { "" };
        if let Some(m) = multiplier(own_suffix) {
            number *= m;
        } else if let Some(rest) = own_suffix.strip_prefix('-') {
            if let Some((hi, _, hi_suffix)) = split_number(rest) {
                // "50-200": a range written as one token.
                number = hi;
                unit = hi_suffix.to_string();
            } else {
                unit = rest.to_string();
            }
        } else if !own_suffix.is_empty() {
            unit = own_suffix.to_string();
        }

        let wants_noun = unit.is_empty() || own_suffix.starts_with('-');
        if wants_noun && !ended && next < tokens.len() {
            let (word, word_ends) = clean(tokens[next]);
            if is_unit_word(word) {
                value = format!("{value} {word}");
                if unit.is_empty() {
                    unit = word.to_string();
                }
                next += 1;
                ended = word_ends;
            }
        }
        if unit.is_empty() {
            i = next.max(i + 1);
            continue;
        }
        // "per sequential step", "per second"
        if !ended && next + 1 < tokens.len() && clean(tokens[next]).0 == "per" {
            let mut phrase = vec!["per"];
            let mut j = next + 1;
            while j < tokens.len() && phrase.len() < 3 {
                let (w, w_ends) = clean(tokens[j]);
                let lower = w.to_lowercase();
                if !is_unit_word(w) || lower.ends_with("ing") || lower.ends_with("ed") {
                    break;
                }
                phrase.push(w);
                j += 1;
                if w_ends {
                    break;
                }
            }
            if phrase.len() > 1 {
                value = format!("{value} {}", phrase.join(" "));
                next = j;
            }
        }
        out.push(Figure {
            value,
            number,
            unit,
            context: sentence.trim().to_string(),
            source: source.to_string(),
        });
        i = next.max(i + 1);
    }
    out
}

/// The most frequent index terms of the passages, each shown in its most common surface form.
fn keywords(research: &ResearchOutput) -> Vec<Keyword> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut surfaces: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
    for p in &research.passages {
        for w in words(&p.text) {
            if is_stopword(&w) || w.chars().count() < 3 || !w.chars().any(char::is_alphabetic) {
                continue;
            }
            let s = stem(&w);
            *counts.entry(s.clone()).or_default() += 1;
            *surfaces.entry(s).or_default().entry(w).or_default() += 1;
        }
    }
    let mut ranked: Vec<Keyword> = counts
        .into_iter()
        .map(|(stem, count)| {
            let surface = surfaces[&stem]
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map_or(stem.clone(), |(w, _)| w.clone());
            Keyword {
                term: surface,
                count,
            }
        })
        .collect();
    ranked.sort_by(|a, b| b.count.cmp(&a.count).then(a.term.cmp(&b.term)));
    ranked.truncate(MAX_KEYWORDS);
    ranked
}

/// The chat prompt asking a model to pick findings; passages are numbered so the model can be
/// checked against them.
pub fn llm_messages(research: &ResearchOutput) -> (String, String) {
    let system = "You are a careful research analyst. Read the numbered passages and return \
                  only a JSON object {\"findings\": [{\"text\": string, \"source\": string}]} \
                  with 3 to 6 key findings about the topic. Each finding is one sentence \
                  grounded in a passage; \"source\" is that passage's file name exactly as given."
        .to_string();
    let mut user = format!("Topic: {}\n\nPassages:\n", research.topic);
    for (n, p) in research.passages.iter().enumerate() {
        user.push_str(&format!("[{}] ({}) {}\n", n + 1, p.source, p.text));
    }
    (system, user)
}

/// Replaces the offline findings with the model's, keeping only findings that cite a source
/// the research actually contains.
///
/// # Errors
/// A reason, when the reply has no usable findings (the caller keeps the offline ones).
pub fn apply_llm_findings(
    analysis: &mut AnalysisOutput,
    research: &ResearchOutput,
    reply: &str,
) -> Result<(), String> {
    let start = reply.find('{').ok_or("reply holds no JSON object")?;
    let end = reply.rfind('}').ok_or("reply holds no JSON object")?;
    if end < start {
        return Err("reply holds no JSON object".into());
    }
    let parsed: Value = serde_json::from_str(&reply[start..=end])
        .map_err(|e| format!("reply is not valid JSON: {e}"))?;
    let items = parsed
        .get("findings")
        .and_then(Value::as_array)
        .ok_or("reply has no \"findings\" array")?;
    let mut findings = Vec::new();
    for item in items {
        let text = item.get("text").and_then(Value::as_str).map(str::trim);
        let source = item.get("source").and_then(Value::as_str).map(str::trim);
        let (Some(text), Some(source)) = (text, source) else {
            continue;
        };
        let Some(passage) = research.passages.iter().find(|p| p.source == source) else {
            continue;
        };
        if text.is_empty() {
            continue;
        }
        findings.push(Finding {
            text: text.to_string(),
            source: source.to_string(),
            title: passage.title.clone(),
            score: 0.0,
        });
    }
    if findings.is_empty() {
        return Err("no finding in the reply cites a source of the research".into());
    }
    findings.truncate(MAX_FINDINGS);
    analysis.findings = findings;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{Corpus, DEFAULT_CORPUS_DIR};
    use crate::research::{Passage, ResearchRequest, Researcher};
    use serde_json::json;
    use std::path::Path;
    use std::sync::Arc;

    fn values(sentence: &str) -> Vec<String> {
        extract_figures(sentence, "x.md")
            .into_iter()
            .map(|f| f.value)
            .collect()
    }

    #[test]
    fn figures_carry_unit_and_rate() {
        assert_eq!(
            values(
                "AWS reports about 41 ms per sequential step with the Python SDK 2.0.1 on a 1024 MB function."
            ),
            vec!["41 ms per sequential step", "1024 MB"]
        );
        assert_eq!(
            values("Limits include 256 KB per checkpoint and executions of up to 366 days."),
            vec!["256 KB per checkpoint", "366 days"]
        );
        assert_eq!(
            values("DBOS reports 43K workflows per second on a 96-vCPU database server."),
            vec!["43K workflows per second", "96-vCPU database"]
        );
    }

    #[test]
    fn figures_handle_ranges_percentages_and_multipliers() {
        assert_eq!(
            values("An instance starts in roughly 5 to 20 microseconds."),
            vec!["5 to 20 microseconds"]
        );
        assert_eq!(
            values(
                "Epoch interruption costs about 1 to 3 percent, a 40x gain over 99.7% of cases."
            ),
            vec!["1 to 3 percent", "40x", "99.7%"]
        );
        let f = extract_figures("It sustains 20,000 commits per second.", "g.md");
        assert_eq!(f[0].value, "20,000 commits per second");
        assert_eq!(f[0].number, 20_000.0);
        assert_eq!(f[0].unit, "commits");
        assert_eq!(f[0].source, "g.md");
        let f = extract_figures("DBOS reports 43K workflows.", "d.md");
        assert_eq!(f[0].number, 43_000.0);
        assert_eq!(f[0].unit, "workflows");
    }

    #[test]
    fn measurements_are_listed_before_counts_and_dangling_openers_noticed() {
        let sentences = vec![Sentence {
            text: "A survey of 120 teams found tasks took 38 minutes.".into(),
            source: "s.md".into(),
            title: "S".into(),
            passage_score: 1.0,
            terms: vec![],
        }];
        let values: Vec<_> = extract_all_figures(&sentences)
            .into_iter()
            .map(|f| f.value)
            .collect();
        assert_eq!(values, vec!["38 minutes", "120 teams"]);
        assert!(opens_with_reference("They use it daily."));
        assert!(!opens_with_reference("Theory says so."));
    }

    #[test]
    fn bare_numbers_and_versions_are_not_figures() {
        assert!(values("Version 2.0.1 shipped in 2019 with 3 of them.").is_empty());
        assert!(values("There were 12.").is_empty());
        assert_eq!(values("Calls take 50-200 ms."), vec!["50-200 ms"]);
    }

    #[test]
    fn sentences_split_on_real_boundaries_only() {
        let s = split_sentences(
            "Latency is 1.5 ms. Tools, e.g. fsync, matter! Does it? Yes. J. Smith agreed. 3 runs failed.",
        );
        assert_eq!(
            s,
            vec![
                "Latency is 1.5 ms.",
                "Tools, e.g. fsync, matter!",
                "Does it?",
                "Yes.",
                "J. Smith agreed.",
                "3 runs failed."
            ]
        );
    }

    fn research(topic: &str) -> ResearchOutput {
        let r = Researcher::new(Arc::new(
            Corpus::load(Path::new(DEFAULT_CORPUS_DIR)).unwrap(),
        ));
        r.research(&ResearchRequest {
            topic: topic.into(),
            parameters: Parameters::default(),
        })
        .unwrap()
    }

    #[test]
    fn findings_are_on_topic_sentences_from_the_research() {
        let res = research("fsync latency and group commit throughput");
        let a = analyse(&res);
        assert!(a.findings.len() >= MIN_FINDINGS);
        for f in &a.findings {
            assert!(
                res.passages
                    .iter()
                    .any(|p| p.source == f.source && p.text.contains(&f.text)),
                "finding is not a sentence of a passage of its source: {:?}",
                f.text
            );
        }
        let best = &a.findings[0];
        let lower = best.text.to_lowercase();
        assert!(
            lower.contains("fsync") || lower.contains("commit"),
            "top finding is off-topic: {}",
            best.text
        );
        // Spread: findings come from more than one document.
        let sources: HashSet<_> = a.findings.iter().map(|f| &f.source).collect();
        assert!(sources.len() >= 2);
        assert!(!a.figures.is_empty());
        assert!(
            a.figures
                .iter()
                .all(|f| res.passages.iter().any(|p| p.source == f.source))
        );
        assert!(a.keywords.iter().any(|k| k.term == "fsync"));
        assert_eq!(a.generator, "offline");
    }

    #[test]
    fn analysis_is_deterministic() {
        let res = research("WebAssembly sandbox limits");
        assert_eq!(analyse(&res), analyse(&res));
    }

    #[test]
    fn accepts_research_directly_or_wrapped() {
        let res = research("retry backoff");
        let direct = serde_json::to_value(&res).unwrap();
        assert_eq!(parse_request(&direct).unwrap(), res);
        assert_eq!(parse_request(&json!({"research": direct})).unwrap(), res);
        assert!(matches!(
            parse_request(&json!({"topic": "x", "passages": []})),
            Err(AgentError::InvalidInput(_))
        ));
        assert!(matches!(
            parse_request(&json!({"topic": "x"})),
            Err(AgentError::InvalidInput(_))
        ));
    }

    #[test]
    fn llm_findings_are_checked_against_the_research() {
        let res = ResearchOutput {
            topic: "t".into(),
            parameters: Parameters::default(),
            query_terms: vec![],
            passages: vec![Passage {
                source: "a.md".into(),
                title: "A".into(),
                text: "Alpha takes 3 ms.".into(),
                score: 1.0,
            }],
            sources: vec![],
        };
        let mut a = analyse(&res);
        let reply = "Sure! {\"findings\": [{\"text\": \"Alpha is fast.\", \"source\": \"a.md\"}, {\"text\": \"Invented.\", \"source\": \"nope.md\"}]}";
        apply_llm_findings(&mut a, &res, reply).unwrap();
        assert_eq!(a.findings.len(), 1);
        assert_eq!(a.findings[0].title, "A");
        let mut b = analyse(&res);
        assert!(apply_llm_findings(&mut b, &res, "no json here").is_err());
        assert!(
            apply_llm_findings(
                &mut b,
                &res,
                "{\"findings\": [{\"text\": \"x\", \"source\": \"z.md\"}]}"
            )
            .is_err()
        );
        assert_eq!(b, analyse(&res), "offline findings survive a bad reply");
    }
}
