//! Agents configured by the research pipeline's `*_AGENT_ARN` variables: each names a Bedrock
//! AgentCore runtime, and adds that agent unless one of its name is configured already.

use super::layers::Layer;
use figment::Figment;
use figment::value::{Dict, Value};

/// Environment variables that configure a Bedrock AgentCore agent by its runtime ARN (region
/// from `AWS_REGION`, else the ARN's), unless an agent of that name is configured already.
pub const AGENT_ARN_ENV: &[(&str, &str)] = &[
    ("RESEARCHER_AGENT_ARN", "researcher"),
    ("ANALYST_AGENT_ARN", "analyst"),
    ("WRITER_AGENT_ARN", "writer"),
];

/// The agent an `*_AGENT_ARN` variable configures, if `var` is one.
pub(super) fn arn_variable(var: &str) -> Option<&'static str> {
    AGENT_ARN_ENV
        .iter()
        .find(|(name, _)| *name == var)
        .map(|(_, agent)| *agent)
}

/// Adds a `bedrock` agent for each `(agent, arn)` whose agent the file and `AEGIS_AGENTS` left
/// out, in `region` if one is given (else the ARN's).
pub(super) fn add_arn_agents(
    mut figment: Figment,
    arns: Vec<(&'static str, String)>,
    region: Option<&str>,
) -> Figment {
    for (agent, arn) in arns {
        if figment.contains(&format!("agents.{agent}")) {
            continue;
        }
        let mut table = Dict::new();
        table.insert("protocol".into(), Value::from("bedrock"));
        table.insert("agent_runtime_arn".into(), Value::from(arn));
        if let Some(region) = region {
            table.insert("region".into(), Value::from(region));
        }
        let mut agents = Dict::new();
        agents.insert(agent.to_string(), table.into());
        let mut root = Dict::new();
        root.insert("agents".into(), agents.into());
        let name = AGENT_ARN_ENV
            .iter()
            .find(|(_, a)| *a == agent)
            .map_or(agent, |(var, _)| *var);
        figment = figment.merge(Layer::new(
            format!("environment variable {name}"),
            root.into(),
        ));
    }
    figment
}
