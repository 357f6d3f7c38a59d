//! The pipeline's input: validation, defaults, and the normalised record `init_workflow` keeps.
//!
//! The input is read from a plain JSON value rather than decoded by serde, so that every mistake
//! (a missing topic, a depth of 0, a timeout of half a second) becomes one clear
//! `Pipeline.InvalidInput` naming the field, instead of a generic decode error.

use std::time::Duration;

use aegis_sdk::Error;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The error type of every input problem.
pub const INVALID_INPUT: &str = "Pipeline.InvalidInput";

/// The longest topic accepted, in characters.
pub const MAX_TOPIC_CHARS: usize = 500;
/// The longest `console_url` accepted, in bytes.
const MAX_CONSOLE_URL: usize = 2048;
/// The longest agent name accepted, in characters.
const MAX_AGENT_NAME_CHARS: usize = 128;

/// `depth`: how many rounds of research (default, inclusive range).
const DEPTH: (u64, u64, u64) = (2, 1, 10);
/// `sources`: how many sources the researcher returns.
const SOURCES: (u64, u64, u64) = (5, 1, 100);
/// `word_limit`: the longest report, in words.
const WORD_LIMIT: (u64, u64, u64) = (500, 10, 50_000);

/// Timeouts, in seconds: the defaults of the brief, and the accepted range for overrides.
const RESEARCH_TIMEOUT: u64 = 4 * 3600;
const ANALYSIS_TIMEOUT: u64 = 2 * 3600;
const APPROVAL_TIMEOUT: u64 = 24 * 3600;
const WRITING_TIMEOUT: u64 = 3600;
const MIN_TIMEOUT: u64 = 1;
/// The host's limit for any durable wait.
const MAX_TIMEOUT: u64 = 366 * 86_400;

/// The normalised workflow record: what `init_workflow` checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The topic, trimmed.
    pub topic: String,
    /// Every parameter, defaults filled in.
    pub parameters: Parameters,
    /// When the pipeline started (ms since the Unix epoch, from the durable clock).
    pub started_at: u64,
}

/// The pipeline's parameters with defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameters {
    pub depth: u64,
    pub sources: u64,
    pub word_limit: u64,
    pub timeouts_seconds: Timeouts,
    pub agents: Agents,
    /// The host's web console (`<public url>/ui`), which `POST /workflows` fills in: the
    /// approval link a reviewer gets is its approval page for this run. Absent in records
    /// checkpointed before it existed, and when the run was started without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
}

/// Per-phase timeouts, in seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    pub research: u64,
    pub analysis: u64,
    pub approval: u64,
    pub writing: u64,
}

impl Timeouts {
    pub fn research(&self) -> Duration {
        Duration::from_secs(self.research)
    }

    pub fn analysis(&self) -> Duration {
        Duration::from_secs(self.analysis)
    }

    pub fn approval(&self) -> Duration {
        Duration::from_secs(self.approval)
    }

    pub fn writing(&self) -> Duration {
        Duration::from_secs(self.writing)
    }
}

/// The names of the agents each phase is dispatched to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agents {
    pub researcher: String,
    pub analyst: String,
    pub writer: String,
}

impl Request {
    /// Validates the workflow input and fills in the defaults.
    ///
    /// # Errors
    ///
    /// `Pipeline.InvalidInput`, naming the first field that is wrong.
    pub fn parse(input: &Value, started_at: u64) -> Result<Self, Error> {
        let input = input
            .as_object()
            .ok_or_else(|| invalid("the input must be a JSON object with a \"topic\""))?;
        let topic = parse_topic(input.get("topic"))?;
        let params = object(input.get("parameters"), "parameters")?;
        let timeouts = object(
            params.get("timeouts_seconds"),
            "parameters.timeouts_seconds",
        )?;
        let agents = object(params.get("agents"), "parameters.agents")?;
        let timeout = |name: &str, default: u64| {
            let field = format!("parameters.timeouts_seconds.{name}");
            integer(&timeouts, name, &field, (default, MIN_TIMEOUT, MAX_TIMEOUT))
        };
        let agent = |name: &str| agent_name(&agents, name);
        Ok(Self {
            topic,
            parameters: Parameters {
                depth: integer(&params, "depth", "parameters.depth", DEPTH)?,
                sources: integer(&params, "sources", "parameters.sources", SOURCES)?,
                word_limit: integer(&params, "word_limit", "parameters.word_limit", WORD_LIMIT)?,
                timeouts_seconds: Timeouts {
                    research: timeout("research", RESEARCH_TIMEOUT)?,
                    analysis: timeout("analysis", ANALYSIS_TIMEOUT)?,
                    approval: timeout("approval", APPROVAL_TIMEOUT)?,
                    writing: timeout("writing", WRITING_TIMEOUT)?,
                },
                agents: Agents {
                    researcher: agent("researcher")?,
                    analyst: agent("analyst")?,
                    writer: agent("writer")?,
                },
                console_url: console_url(params.get("console_url"))?,
            },
            started_at,
        })
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(INVALID_INPUT, message)
}

fn parse_topic(topic: Option<&Value>) -> Result<String, Error> {
    let topic = match topic {
        Some(Value::String(topic)) => topic.trim(),
        None | Some(Value::Null) => return Err(invalid("\"topic\" is required")),
        Some(_) => return Err(invalid("\"topic\" must be a string")),
    };
    if topic.is_empty() {
        return Err(invalid("\"topic\" must not be empty"));
    }
    let chars = topic.chars().count();
    if chars > MAX_TOPIC_CHARS {
        return Err(invalid(format!(
            "\"topic\" is {chars} characters long; the limit is {MAX_TOPIC_CHARS}"
        )));
    }
    if topic.chars().any(char::is_control) {
        return Err(invalid("\"topic\" must not contain control characters"));
    }
    Ok(topic.to_owned())
}

/// An optional object field: absent or `null` reads as empty.
fn object(value: Option<&Value>, field: &str) -> Result<Map<String, Value>, Error> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(invalid(format!("\"{field}\" must be an object"))),
    }
}

/// An optional integer in `min..=max`, `default` when absent or `null`. Integral floats (`3.0`)
/// are accepted, since JSON producers disagree on how to spell numbers.
fn integer(
    map: &Map<String, Value>,
    name: &str,
    field: &str,
    (default, min, max): (u64, u64, u64),
) -> Result<u64, Error> {
    let out_of_range = || {
        invalid(format!(
            "\"{field}\" must be an integer between {min} and {max}"
        ))
    };
    let value = match map.get(name) {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= max as f64)
                    .map(|f| f as u64)
            })
            .ok_or_else(out_of_range)?,
        Some(_) => return Err(out_of_range()),
    };
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(format!(
            "\"{field}\" must be an integer between {min} and {max}, not {value}"
        )))
    }
}

/// An optional `parameters.console_url`: an `http(s)` URL without spaces, its trailing slash
/// dropped.
fn console_url(value: Option<&Value>) -> Result<Option<String>, Error> {
    let bad = || {
        invalid(format!(
            "\"parameters.console_url\" must be an http(s) URL of at most {MAX_CONSOLE_URL} bytes"
        ))
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(url)) => {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() <= MAX_CONSOLE_URL
                && !url.chars().any(|c| c.is_whitespace() || c.is_control());
            if ok {
                Ok(Some(url.trim_end_matches('/').to_owned()))
            } else {
                Err(bad())
            }
        }
        Some(_) => Err(bad()),
    }
}

/// An optional agent name (`parameters.agents.<role>`), the role itself by default.
fn agent_name(agents: &Map<String, Value>, role: &str) -> Result<String, Error> {
    let bad = || {
        invalid(format!(
            "\"parameters.agents.{role}\" must be a non-empty agent name of at most \
             {MAX_AGENT_NAME_CHARS} characters, without spaces or control characters"
        ))
    };
    match agents.get(role) {
        None | Some(Value::Null) => Ok(role.to_owned()),
        Some(Value::String(name)) => {
            let ok = !name.is_empty()
                && name.chars().count() <= MAX_AGENT_NAME_CHARS
                && !name.chars().any(|c| c.is_whitespace() || c.is_control());
            if ok { Ok(name.clone()) } else { Err(bad()) }
        }
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(input: Value) -> Result<Request, Error> {
        Request::parse(&input, 42)
    }

    fn rejects(input: Value, needle: &str) {
        let error = parse(input.clone()).expect_err(&format!("{input} should be rejected"));
        assert!(error.is(INVALID_INPUT), "{error}");
        assert!(error.message.contains(needle), "{error} lacks {needle:?}");
    }

    #[test]
    fn fills_in_the_defaults() {
        let request = parse(json!({"topic": "  durable execution "})).unwrap();
        assert_eq!(
            request,
            Request {
                topic: "durable execution".into(),
                parameters: Parameters {
                    depth: 2,
                    sources: 5,
                    word_limit: 500,
                    timeouts_seconds: Timeouts {
                        research: 4 * 3600,
                        analysis: 2 * 3600,
                        approval: 24 * 3600,
                        writing: 3600,
                    },
                    agents: Agents {
                        researcher: "researcher".into(),
                        analyst: "analyst".into(),
                        writer: "writer".into(),
                    },
                    console_url: None,
                },
                started_at: 42,
            }
        );
        assert_eq!(
            request.parameters.timeouts_seconds.approval(),
            Duration::from_secs(86_400)
        );
        // A null `parameters` is the same as none.
        assert_eq!(
            parse(json!({"topic": "x", "parameters": null}))
                .unwrap()
                .parameters
                .depth,
            2
        );
    }

    #[test]
    fn takes_every_override() {
        let request = parse(json!({
            "topic": "wasm",
            "parameters": {
                "depth": 3, "sources": 7.0, "word_limit": 400,
                "timeouts_seconds": {"research": 5, "analysis": 6, "approval": 1, "writing": 8},
                "agents": {"researcher": "r2", "analyst": "bedrock-analyst", "writer": "w"},
                "unknown": "ignored"
            }
        }))
        .unwrap();
        let p = request.parameters;
        assert_eq!((p.depth, p.sources, p.word_limit), (3, 7, 400));
        let t = p.timeouts_seconds;
        assert_eq!(
            (t.research, t.analysis, t.approval, t.writing),
            (5, 6, 1, 8)
        );
        assert_eq!(p.agents.researcher, "r2");
        assert_eq!(p.agents.analyst, "bedrock-analyst");
        assert_eq!(p.agents.writer, "w");
    }

    #[test]
    fn the_record_round_trips() {
        let request = parse(json!({"topic": "t", "parameters": {"depth": 4}})).unwrap();
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), request);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["parameters"]["timeouts_seconds"]["writing"], 3600);
        assert_eq!(value["started_at"], 42);
    }

    #[test]
    fn rejects_bad_topics() {
        rejects(json!("just a string"), "JSON object");
        rejects(json!({}), "\"topic\" is required");
        rejects(json!({"topic": null}), "\"topic\" is required");
        rejects(json!({"topic": 7}), "must be a string");
        rejects(json!({"topic": "   "}), "must not be empty");
        rejects(json!({"topic": "a\u{0}b"}), "control characters");
        rejects(json!({"topic": "x".repeat(501)}), "501 characters");
        // 500 characters (multi-byte ones count once) is fine.
        assert!(parse(json!({"topic": "é".repeat(500)})).is_ok());
    }

    #[test]
    fn rejects_out_of_range_parameters() {
        rejects(
            json!({"topic": "t", "parameters": []}),
            "\"parameters\" must be an object",
        );
        rejects(
            json!({"topic": "t", "parameters": {"depth": 0}}),
            "parameters.depth",
        );
        rejects(json!({"topic": "t", "parameters": {"depth": 11}}), "not 11");
        rejects(
            json!({"topic": "t", "parameters": {"depth": -1}}),
            "parameters.depth",
        );
        rejects(
            json!({"topic": "t", "parameters": {"depth": 2.5}}),
            "parameters.depth",
        );
        rejects(
            json!({"topic": "t", "parameters": {"depth": "2"}}),
            "parameters.depth",
        );
        rejects(
            json!({"topic": "t", "parameters": {"sources": 0}}),
            "parameters.sources",
        );
        rejects(
            json!({"topic": "t", "parameters": {"word_limit": 5}}),
            "parameters.word_limit",
        );
        rejects(
            json!({"topic": "t", "parameters": {"word_limit": 1e30}}),
            "parameters.word_limit",
        );
    }

    #[test]
    fn timeouts_must_be_at_least_a_second() {
        for phase in ["research", "analysis", "approval", "writing"] {
            let field = format!("parameters.timeouts_seconds.{phase}");
            for bad in [
                json!(0),
                json!(0.5),
                json!(-3),
                json!("60"),
                json!(400 * 86_400),
            ] {
                let input = json!({"topic": "t", "parameters": {"timeouts_seconds": {phase: bad}}});
                rejects(input, &field);
            }
        }
        rejects(
            json!({"topic": "t", "parameters": {"timeouts_seconds": 5}}),
            "\"parameters.timeouts_seconds\" must be an object",
        );
    }

    #[test]
    fn rejects_bad_agent_names() {
        for bad in [
            json!(""),
            json!("two words"),
            json!(3),
            json!("x".repeat(129)),
        ] {
            let input = json!({"topic": "t", "parameters": {"agents": {"writer": bad}}});
            rejects(input, "parameters.agents.writer");
        }
        rejects(
            json!({"topic": "t", "parameters": {"agents": "x"}}),
            "parameters.agents",
        );
    }

    #[test]
    fn the_console_url_is_an_http_url() {
        let url = |v: Value| parse(json!({"topic": "x", "parameters": {"console_url": v}}));
        assert_eq!(
            url(json!("https://aegis.example/ui/"))
                .unwrap()
                .parameters
                .console_url,
            Some("https://aegis.example/ui".into())
        );
        assert_eq!(url(Value::Null).unwrap().parameters.console_url, None);
        for bad in [
            json!("javascript:alert(1)"),
            json!("http://a b"),
            json!(3),
            json!("ftp://x"),
        ] {
            let e = url(bad.clone()).unwrap_err();
            assert!(e.message.contains("parameters.console_url"), "{bad}: {e:?}");
        }
        // A record checkpointed before the field existed still reads.
        let old = json!({"topic": "x", "started_at": 1, "parameters": {"depth": 2, "sources": 5,
            "word_limit": 500, "timeouts_seconds": {"research": 1, "analysis": 1, "approval": 1,
            "writing": 1}, "agents": {"researcher": "r", "analyst": "a", "writer": "w"}}});
        let record: Request = serde_json::from_value(old).unwrap();
        assert_eq!(record.parameters.console_url, None);
    }
}
