//! The three roles and the one entry point that runs any of them on a JSON input.
//!
//! Protocol code never looks inside inputs or results: it hands the task's JSON to
//! [`Agents::run`] and gets JSON back, so the A2A generations and the simple dispatch form all
//! do exactly the same work. Validation is split from running so that a malformed input can be
//! refused synchronously (a JSON-RPC `-32602`, an HTTP 400) instead of becoming a failed task
//! that is only noticed when its push arrives.

use crate::analysis;
use crate::llm::LlmClient;
use crate::research::{self, Researcher};
use crate::writing;
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Researcher,
    Analyst,
    Writer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Researcher, Role::Analyst, Role::Writer];

    pub fn name(self) -> &'static str {
        match self {
            Role::Researcher => "researcher",
            Role::Analyst => "analyst",
            Role::Writer => "writer",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Role::Researcher => {
                "Ranks the documents and paragraphs of a local corpus by relevance to a topic \
                 (BM25) and returns the best passages with their sources."
            }
            Role::Analyst => {
                "Derives key findings, figures with their context, and keywords from a \
                 researcher's passages."
            }
            Role::Writer => {
                "Writes a markdown research report with a summary, findings, a figures table \
                 and numbered citations from an analyst's output."
            }
        }
    }

    /// A one-line account of a result, used as the completed task's status message.
    pub fn summarise(self, result: &Value) -> String {
        let count = |key: &str| {
            result
                .get(key)
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        };
        let topic = result.get("topic").and_then(Value::as_str).unwrap_or("");
        let n = |key: &str, noun: &str| {
            let c = count(key);
            format!("{c} {noun}{}", if c == 1 { "" } else { "s" })
        };
        match self {
            Role::Researcher => format!(
                "researched {topic:?}: {} from {}",
                n("passages", "passage"),
                n("sources", "source")
            ),
            Role::Analyst => format!(
                "analysed {topic:?}: {}, {}",
                n("findings", "finding"),
                n("figures", "figure")
            ),
            Role::Writer => format!(
                "wrote a {}-word report on {topic:?} with {}",
                result
                    .get("word_count")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                n("citations", "citation")
            ),
        }
    }

    /// An example input, shown in the agent card.
    pub fn example(self) -> &'static str {
        match self {
            Role::Researcher => {
                r#"{"topic": "durable execution", "parameters": {"depth": 2, "sources": 5}}"#
            }
            Role::Analyst => r#"{"research": <researcher output>}"#,
            Role::Writer => r#"{"topic": "...", "analysis": <analyst output>, "word_limit": 500}"#,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "researcher" => Ok(Role::Researcher),
            "analyst" => Ok(Role::Analyst),
            "writer" => Ok(Role::Writer),
            other => Err(format!(
                "unknown role {other:?} (expected researcher, analyst or writer)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The input cannot be used; retrying the same input will not help.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The input was fine but the work produced no usable result.
    #[error("{0}")]
    Failed(String),
}

impl AgentError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidInput(msg.into())
    }
    pub fn failed(msg: impl Into<String>) -> Self {
        Self::Failed(msg.into())
    }
}

/// Everything the roles need: the indexed corpus and, optionally, a language model.
pub struct Agents {
    researcher: Researcher,
    llm: Option<LlmClient>,
}

impl Agents {
    pub fn new(researcher: Researcher, llm: Option<LlmClient>) -> Self {
        Self { researcher, llm }
    }

    pub fn researcher(&self) -> &Researcher {
        &self.researcher
    }

    /// Checks that `input` is something `role` can work on.
    ///
    /// # Errors
    /// `InvalidInput` describing what is wrong.
    pub fn validate(role: Role, input: &Value) -> Result<(), AgentError> {
        match role {
            Role::Researcher => research::parse_request(input).map(|_| ()),
            Role::Analyst => analysis::parse_request(input).map(|_| ()),
            Role::Writer => writing::parse_request(input).map(|_| ()),
        }
    }

    /// Runs `role` on `input`. Offline work is deterministic for a given corpus and input; with
    /// a model configured the analyst's findings and the writer's prose come from the model,
    /// falling back to the offline result (noted in `llm_fallback`) when the model fails.
    ///
    /// # Errors
    /// `InvalidInput` or `Failed`.
    pub async fn run(&self, role: Role, input: &Value) -> Result<Value, AgentError> {
        let value = match role {
            Role::Researcher => {
                let req = research::parse_request(input)?;
                to_value(&self.researcher.research(&req)?)
            }
            Role::Analyst => {
                let research = analysis::parse_request(input)?;
                let mut out = analysis::analyse(&research);
                if let Some(llm) = &self.llm {
                    let (system, user) = analysis::llm_messages(&research);
                    let outcome = match llm.complete(&system, &user).await {
                        Ok(reply) => analysis::apply_llm_findings(&mut out, &research, &reply),
                        Err(e) => Err(e.to_string()),
                    };
                    match outcome {
                        Ok(()) => out.generator = llm.generator(),
                        Err(reason) => {
                            tracing::warn!(%reason, "analyst: model unusable, offline findings kept");
                            out.llm_fallback = Some(reason);
                        }
                    }
                }
                to_value(&out)
            }
            Role::Writer => {
                let req = writing::parse_request(input)?;
                let mut report = None;
                let mut fallback = None;
                if let Some(llm) = &self.llm {
                    let (system, user) = writing::llm_messages(&req);
                    let outcome = match llm.complete(&system, &user).await {
                        Ok(prose) => writing::write_report_with_prose(&req, &prose),
                        Err(e) => Err(e.to_string()),
                    };
                    match outcome {
                        Ok(mut r) => {
                            r.generator = llm.generator();
                            report = Some(r);
                        }
                        Err(reason) => {
                            tracing::warn!(%reason, "writer: model unusable, offline report written");
                            fallback = Some(reason);
                        }
                    }
                }
                let mut report = report.unwrap_or_else(|| writing::write_report(&req));
                if report.llm_fallback.is_none() {
                    report.llm_fallback = fallback;
                }
                to_value(&report)
            }
        };
        Ok(value)
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("agent outputs are plain data and always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::{Corpus, DEFAULT_CORPUS_DIR};
    use crate::llm::LlmConfig;
    use axum::Router;
    use axum::routing::post;
    use serde_json::json;
    use std::path::Path;
    use std::sync::Arc;

    fn agents(llm: Option<LlmClient>) -> Agents {
        let corpus = Arc::new(Corpus::load(Path::new(DEFAULT_CORPUS_DIR)).unwrap());
        Agents::new(Researcher::new(corpus), llm)
    }

    #[tokio::test]
    async fn the_three_roles_chain_into_a_report() {
        let a = agents(None);
        let research = a
            .run(
                Role::Researcher,
                &json!({"topic": "human approval timeouts", "parameters": {"depth": 2, "sources": 4, "word_limit": 400}}),
            )
            .await
            .unwrap();
        assert_eq!(research["sources"].as_array().unwrap().len(), 4);
        let analysis = a
            .run(Role::Analyst, &json!({"research": research}))
            .await
            .unwrap();
        assert!(!analysis["findings"].as_array().unwrap().is_empty());
        assert_eq!(analysis["parameters"]["word_limit"], 400);
        let report = a
            .run(
                Role::Writer,
                &json!({"topic": "human approval timeouts", "analysis": analysis}),
            )
            .await
            .unwrap();
        let md = report["report_markdown"].as_str().unwrap();
        assert!(md.contains("[1]"));
        assert_eq!(report["word_limit"], 400);
        assert!(report["word_count"].as_u64().unwrap() <= 400);
        assert_eq!(report["generator"], "offline");
    }

    #[test]
    fn summaries_count_the_result() {
        let r = json!({"topic": "t", "passages": [1], "sources": [1, 2]});
        assert_eq!(
            Role::Researcher.summarise(&r),
            "researched \"t\": 1 passage from 2 sources"
        );
        let w = json!({"topic": "t", "word_count": 120, "citations": [1, 2, 3]});
        assert_eq!(
            Role::Writer.summarise(&w),
            "wrote a 120-word report on \"t\" with 3 citations"
        );
    }

    #[test]
    fn validation_is_per_role() {
        assert!(Agents::validate(Role::Researcher, &json!({"topic": "x"})).is_ok());
        assert!(Agents::validate(Role::Analyst, &json!({"topic": "x"})).is_err());
        assert!(Agents::validate(Role::Writer, &json!({"topic": "x"})).is_err());
        assert_eq!("Writer".parse::<Role>().unwrap(), Role::Writer);
        assert!("poet".parse::<Role>().is_err());
    }

    /// A loopback OpenAI-compatible server that answers every completion with `reply`.
    async fn fake_model(reply: &'static str) -> String {
        let app = Router::new().route(
            "/v1/chat/completions",
            post(move || async move {
                axum::Json(
                    json!({"choices": [{"message": {"role": "assistant", "content": reply}}]}),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/v1")
    }

    fn llm(base_url: String) -> Option<LlmClient> {
        Some(LlmClient::new(LlmConfig {
            base_url,
            api_key: None,
            model: "tiny".into(),
        }))
    }

    #[tokio::test]
    async fn model_writes_when_configured_and_offline_logic_covers_failures() {
        let offline = agents(None);
        let research = offline
            .run(Role::Researcher, &json!({"topic": "group commit fsync"}))
            .await
            .unwrap();
        let analysis = offline
            .run(Role::Analyst, &json!({"research": research}))
            .await
            .unwrap();
        let source = analysis["findings"][0]["source"]
            .as_str()
            .unwrap()
            .to_string();

        // Writer prose from the model, with our references around it.
        let with_model = agents(llm(fake_model(
            "## Summary\n\nBatching fsyncs raises throughput [1].",
        )
        .await));
        let report = with_model
            .run(Role::Writer, &json!({"analysis": analysis}))
            .await
            .unwrap();
        assert_eq!(report["generator"], "llm:tiny");
        let md = report["report_markdown"].as_str().unwrap();
        assert!(md.contains("Batching fsyncs raises throughput [1]."));
        assert_eq!(report["citations"][0]["source"], source.as_str());

        // A model that cites nothing: offline report, reason recorded.
        let useless = agents(llm(fake_model("I cannot help with that.").await));
        let report = useless
            .run(Role::Writer, &json!({"analysis": analysis}))
            .await
            .unwrap();
        assert_eq!(report["generator"], "offline");
        assert!(
            report["llm_fallback"]
                .as_str()
                .unwrap()
                .contains("cites no source")
        );

        // Analyst findings from the model, checked against the research.
        let analyst_model = agents(llm(fake_model(
            r#"{"findings": [{"text": "One fsync can serve a whole batch of writers.", "source": "group-commit.md"}]}"#,
        )
        .await));
        let modelled = analyst_model
            .run(Role::Analyst, &json!({"research": research}))
            .await
            .unwrap();
        assert_eq!(modelled["generator"], "llm:tiny");
        assert_eq!(modelled["findings"].as_array().unwrap().len(), 1);
        assert_eq!(modelled["figures"], analysis["figures"]);

        // An unreachable model: offline analysis.
        let unreachable = agents(llm("http://127.0.0.1:9/v1".into()));
        let analysis2 = unreachable
            .run(Role::Analyst, &json!({"research": research}))
            .await
            .unwrap();
        assert_eq!(analysis2["generator"], "offline");
        assert!(analysis2["llm_fallback"].is_string());
        assert_eq!(analysis2["findings"], analysis["findings"]);
    }
}
