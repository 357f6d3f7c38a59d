//! The agent card served at `{base}/.well-known/agent-card.json` (and the older
//! `/.well-known/agent.json`).
//!
//! One card serves both generations: it has the v0.3 top-level `url`, `protocolVersion` and
//! `preferredTransport`, and the v1.0 `supportedInterfaces` list with one JSON-RPC interface per
//! protocol version. Clients of either generation ignore the other's fields.

use crate::agent::Role;
use serde_json::{Value, json};

pub fn agent_card(role: Role, base_url: &str) -> Value {
    json!({
        "name": format!("Aegis demo {role}"),
        "description": role.description(),
        "version": env!("CARGO_PKG_VERSION"),
        "url": base_url,
        "protocolVersion": "0.3.0",
        "preferredTransport": "JSONRPC",
        "supportedInterfaces": [
            {"url": base_url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": base_url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"}
        ],
        "capabilities": {
            "streaming": false,
            "pushNotifications": true,
            "extendedAgentCard": false
        },
        "defaultInputModes": ["application/json", "text/plain"],
        "defaultOutputModes": ["application/json", "text/markdown"],
        "skills": [{
            "id": role.name(),
            "name": role.name(),
            "description": role.description(),
            "tags": ["aegis", "research-pipeline", role.name(), "offline"],
            "examples": [role.example()]
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_names_the_role_and_both_interfaces() {
        let card = agent_card(Role::Analyst, "http://127.0.0.1:5/analyst");
        assert_eq!(card["name"], "Aegis demo analyst");
        assert_eq!(card["url"], "http://127.0.0.1:5/analyst");
        assert_eq!(card["capabilities"]["pushNotifications"], true);
        let versions: Vec<_> = card["supportedInterfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["protocolVersion"].as_str().unwrap())
            .collect();
        assert_eq!(versions, vec!["1.0", "0.3"]);
        assert_eq!(card["skills"][0]["id"], "analyst");
    }
}
