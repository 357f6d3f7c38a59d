//! The researcher: finds the documents and passages of the corpus that bear on a topic.
//!
//! Paragraphs are the retrieval unit (a whole document is too coarse to quote), but sources are
//! chosen per document: a document's score is its best two paragraph scores plus a title match,
//! so one on-topic document with several relevant paragraphs outranks a document that mentions
//! the topic once in passing. The indexes are built once per corpus and shared by all requests.

use crate::agent::AgentError;
use crate::corpus::{Corpus, tokenize};
use crate::rank::Bm25;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

pub const DEFAULT_DEPTH: usize = 2;
pub const DEFAULT_SOURCES: usize = 5;
const MAX_DEPTH: usize = 10;
const MAX_SOURCES: usize = 20;
/// How many of a document's best paragraphs count towards its score.
const PARAGRAPHS_PER_DOC_SCORE: usize = 2;
/// Weight of the title match relative to one paragraph match.
const TITLE_WEIGHT: f64 = 1.0;

/// The pipeline parameters, as the workflow's users send them (`depth`, `sources`,
/// `word_limit`). They travel with the research so the analyst and writer see them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameters {
    pub depth: usize,
    pub sources: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_limit: Option<usize>,
}

impl Default for Parameters {
    fn default() -> Self {
        Self {
            depth: DEFAULT_DEPTH,
            sources: DEFAULT_SOURCES,
            word_limit: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResearchRequest {
    pub topic: String,
    pub parameters: Parameters,
}

/// One quoted paragraph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    pub source: String,
    pub title: String,
    pub text: String,
    #[serde(default)]
    pub score: f64,
}

/// One selected document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRef {
    pub source: String,
    pub title: String,
    #[serde(default)]
    pub score: f64,
}

/// The researcher's result; also the analyst's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResearchOutput {
    pub topic: String,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub query_terms: Vec<String>,
    pub passages: Vec<Passage>,
    #[serde(default)]
    pub sources: Vec<SourceRef>,
}

/// Reads `{"topic": str, "parameters": {"depth"?, "sources"?, "word_limit"?}}`.
///
/// # Errors
/// `InvalidInput` naming the offending field.
pub fn parse_request(input: &Value) -> Result<ResearchRequest, AgentError> {
    let obj = input
        .as_object()
        .ok_or_else(|| AgentError::invalid("researcher input must be a JSON object"))?;
    let topic = obj
        .get("topic")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AgentError::invalid("researcher input needs a non-empty string \"topic\"")
        })?;
    let parameters = parse_parameters(obj.get("parameters"))?;
    Ok(ResearchRequest {
        topic: topic.to_string(),
        parameters,
    })
}

/// Reads the `parameters` object; absent or null fields take their defaults.
///
/// # Errors
/// `InvalidInput` when a field is present but not a positive integer.
pub fn parse_parameters(value: Option<&Value>) -> Result<Parameters, AgentError> {
    let mut params = Parameters::default();
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(params);
    };
    let obj = value
        .as_object()
        .ok_or_else(|| AgentError::invalid("\"parameters\" must be an object"))?;
    if let Some(depth) = positive_int(obj, "depth")? {
        params.depth = depth.min(MAX_DEPTH);
    }
    if let Some(sources) = positive_int(obj, "sources")? {
        params.sources = sources.min(MAX_SOURCES);
    }
    params.word_limit = positive_int(obj, "word_limit")?;
    Ok(params)
}

/// A positive integer field; integral floats (`3.0`) and numeric strings (`"3"`) are accepted
/// because JSON producers disagree on how to spell numbers.
pub fn positive_int(
    obj: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<usize>, AgentError> {
    let bad = || AgentError::invalid(format!("\"{field}\" must be a positive integer"));
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let v = n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .ok_or_else(bad)?;
            if v == 0 {
                return Err(bad());
            }
            Ok(Some(usize::try_from(v).unwrap_or(usize::MAX)))
        }
        Some(Value::String(s)) => match s.trim().parse::<usize>() {
            Ok(v) if v > 0 => Ok(Some(v)),
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

/// The corpus with its paragraph and title indexes.
pub struct Researcher {
    corpus: Arc<Corpus>,
    paragraphs: Bm25,
    /// `(document, paragraph)` of each entry of `paragraphs`.
    paragraph_refs: Vec<(usize, usize)>,
    titles: Bm25,
}

impl Researcher {
    pub fn new(corpus: Arc<Corpus>) -> Self {
        let mut docs = Vec::new();
        let mut refs = Vec::new();
        for (d, doc) in corpus.documents.iter().enumerate() {
            for (p, para) in doc.paragraphs.iter().enumerate() {
                docs.push(para.tokens.clone());
                refs.push((d, p));
            }
        }
        let titles: Vec<Vec<String>> = corpus
            .documents
            .iter()
            .map(|d| tokenize(&d.title))
            .collect();
        Self {
            paragraphs: Bm25::new(&docs),
            paragraph_refs: refs,
            titles: Bm25::new(&titles),
            corpus,
        }
    }

    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    /// Ranks the corpus for `request.topic`.
    ///
    /// # Errors
    /// `InvalidInput` when the topic has no searchable words; `Failed` when nothing in the
    /// corpus matches it (an empty research bundle would only fail later, less clearly).
    pub fn research(&self, request: &ResearchRequest) -> Result<ResearchOutput, AgentError> {
        let query = tokenize(&request.topic);
        if query.is_empty() {
            return Err(AgentError::invalid(format!(
                "topic {:?} has no searchable words",
                request.topic
            )));
        }
        let n_docs = self.corpus.documents.len();
        // Paragraph scores grouped by document.
        let mut per_doc: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n_docs];
        for (flat, score) in self.paragraphs.rank(&query) {
            let (d, p) = self.paragraph_refs[flat];
            per_doc[d].push((p, score));
        }
        let mut doc_scores: Vec<(usize, f64)> = (0..n_docs)
            .map(|d| {
                let best: f64 = per_doc[d]
                    .iter()
                    .take(PARAGRAPHS_PER_DOC_SCORE)
                    .map(|(_, s)| s)
                    .sum();
                (d, best + TITLE_WEIGHT * self.titles.score(d, &query))
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        if doc_scores.is_empty() {
            return Err(AgentError::failed(format!(
                "no document in the corpus ({} documents) matches the topic {:?}",
                n_docs, request.topic
            )));
        }
        doc_scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        doc_scores.truncate(request.parameters.sources);

        let mut passages = Vec::new();
        let mut sources = Vec::new();
        for (d, doc_score) in doc_scores {
            let doc = &self.corpus.documents[d];
            sources.push(SourceRef {
                source: doc.source.clone(),
                title: doc.title.clone(),
                score: round4(doc_score),
            });
            let mut chosen: Vec<(usize, f64)> = per_doc[d]
                .iter()
                .copied()
                .take(request.parameters.depth)
                .collect();
            // A document chosen for its title alone still contributes its opening paragraphs.
            let mut next = 0;
            while chosen.len() < request.parameters.depth && next < doc.paragraphs.len() {
                if !chosen.iter().any(|(p, _)| *p == next) {
                    chosen.push((next, 0.0));
                }
                next += 1;
            }
            for (p, score) in chosen {
                passages.push(Passage {
                    source: doc.source.clone(),
                    title: doc.title.clone(),
                    text: doc.paragraphs[p].text.clone(),
                    score: round4(score),
                });
            }
        }
        let mut query_terms = Vec::new();
        for term in query {
            if !query_terms.contains(&term) {
                query_terms.push(term);
            }
        }
        Ok(ResearchOutput {
            topic: request.topic.clone(),
            parameters: request.parameters,
            query_terms,
            passages,
            sources,
        })
    }
}

/// Scores are reported to four decimals: enough to order, short enough to read.
pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::DEFAULT_CORPUS_DIR;
    use serde_json::json;
    use std::path::{Path, PathBuf};

    fn shipped() -> Researcher {
        Researcher::new(Arc::new(
            Corpus::load(Path::new(DEFAULT_CORPUS_DIR)).unwrap(),
        ))
    }

    fn small() -> Researcher {
        let texts = vec![
            (
                "fruit.md".to_string(),
                "# Fruit\n\nBananas and apples are fruit.\n\nPears too.".to_string(),
            ),
            (
                "fsync.md".to_string(),
                "# Storage and fsync\n\nAn fsync takes 2 ms on a SATA SSD.\n\nGroup commit shares one fsync.\n\nUnrelated closing words.".to_string(),
            ),
            (
                "wasm.md".to_string(),
                "# WebAssembly\n\nGuests run with fuel. An fsync is never called by a guest.".to_string(),
            ),
        ];
        Researcher::new(Arc::new(Corpus::from_texts(PathBuf::from("/mem"), texts)))
    }

    #[test]
    fn parses_parameters_with_defaults_and_limits() {
        let req = parse_request(&json!({"topic": " fsync ", "parameters": {"depth": 3, "sources": "50", "word_limit": 400.0}})).unwrap();
        assert_eq!(req.topic, "fsync");
        assert_eq!(
            req.parameters,
            Parameters {
                depth: 3,
                sources: MAX_SOURCES,
                word_limit: Some(400)
            }
        );
        let req = parse_request(&json!({"topic": "x"})).unwrap();
        assert_eq!(req.parameters, Parameters::default());
        for bad in [
            json!({}),
            json!({"topic": ""}),
            json!({"topic": 3}),
            json!({"topic": "x", "parameters": {"depth": 0}}),
            json!({"topic": "x", "parameters": {"sources": -1}}),
            json!({"topic": "x", "parameters": {"depth": "many"}}),
            json!({"topic": "x", "parameters": []}),
            json!("just a string"),
        ] {
            assert!(
                matches!(parse_request(&bad), Err(AgentError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn ranks_the_relevant_document_first_and_quotes_its_best_paragraphs() {
        let r = small();
        let out = r
            .research(&ResearchRequest {
                topic: "fsync storage".into(),
                parameters: Parameters {
                    depth: 2,
                    sources: 5,
                    word_limit: None,
                },
            })
            .unwrap();
        let sources: Vec<_> = out.sources.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(sources, vec!["fsync.md", "wasm.md"]);
        assert_eq!(out.passages[0].source, "fsync.md");
        assert!(out.passages[0].text.contains("fsync"));
        assert!(out.passages.iter().all(|p| p.source != "fruit.md"));
        // depth 2 from fsync.md, and wasm.md has one paragraph only.
        assert_eq!(out.passages.len(), 3);
        assert_eq!(out.query_terms, vec!["fsync", "storage"]);
    }

    #[test]
    fn respects_sources_and_depth() {
        let r = shipped();
        let out = r
            .research(&ResearchRequest {
                topic: "durable workflow execution replay".into(),
                parameters: Parameters {
                    depth: 1,
                    sources: 3,
                    word_limit: None,
                },
            })
            .unwrap();
        assert_eq!(out.sources.len(), 3);
        assert_eq!(out.passages.len(), 3);
        for w in out.sources.windows(2) {
            assert!(w[0].score >= w[1].score);
        }
    }

    #[test]
    fn shipped_corpus_answers_pipeline_topics_sensibly() {
        let r = shipped();
        let cases = [
            (
                "fsync latency on storage devices",
                "storage-fsync-latency.md",
            ),
            (
                "WebAssembly sandbox fuel and memory limits",
                "webassembly-sandboxing.md",
            ),
            (
                "human approval reviewer response times",
                "human-in-the-loop-approval.md",
            ),
            ("group commit throughput", "group-commit.md"),
            ("retry backoff jitter", "retry-policies.md"),
        ];
        for (topic, expected) in cases {
            let out = r
                .research(&ResearchRequest {
                    topic: topic.into(),
                    parameters: Parameters::default(),
                })
                .unwrap();
            assert_eq!(out.sources[0].source, expected, "topic {topic:?}");
        }
    }

    #[test]
    fn deterministic_for_the_same_input() {
        let r = shipped();
        let req = ResearchRequest {
            topic: "durable execution of AI agent workflows".into(),
            parameters: Parameters::default(),
        };
        assert_eq!(r.research(&req).unwrap(), r.research(&req).unwrap());
    }

    #[test]
    fn unmatched_topics_fail_clearly() {
        let r = small();
        let err = r
            .research(&ResearchRequest {
                topic: "quantum chromodynamics".into(),
                parameters: Parameters::default(),
            })
            .unwrap_err();
        assert!(matches!(err, AgentError::Failed(ref m) if m.contains("no document")));
        let err = r
            .research(&ResearchRequest {
                topic: "the and of".into(),
                parameters: Parameters::default(),
            })
            .unwrap_err();
        assert!(matches!(err, AgentError::InvalidInput(_)));
    }
}
