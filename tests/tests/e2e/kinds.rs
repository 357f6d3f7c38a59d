//! What the crash, two-host and DynamoDB fault tests run: a mix of step, sleep and callback
//! executions, each knowing its workflow, its input and the result it must end with. Each test
//! picks its own mix.

use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub enum Kind {
    /// `steps3` on a string: three steps appending `-a-b-c`.
    Steps3(String),
    /// `many_steps` with this many steps.
    ManySteps(u64),
    /// A durable sleep of this many seconds (a timer).
    Sleep(u64),
    /// A callback named `approval`, answered by the test.
    Callback,
}

impl Kind {
    pub fn workflow(&self) -> &'static str {
        match self {
            Kind::Steps3(_) => "steps3",
            Kind::ManySteps(_) => "many_steps",
            Kind::Sleep(_) => "sleep",
            Kind::Callback => "callback",
        }
    }

    pub fn input(&self) -> Value {
        match self {
            Kind::Steps3(s) => json!(s),
            Kind::ManySteps(n) => json!({"steps": n}),
            Kind::Sleep(n) => json!({"seconds": n}),
            Kind::Callback => json!({"timeout_seconds": 600, "heartbeat_seconds": null}),
        }
    }

    /// The result, given the value delivered to its callback.
    pub fn expected(&self, delivered: &Value) -> Value {
        match self {
            Kind::Steps3(s) => json!(format!("{s}-a-b-c")),
            Kind::ManySteps(n) => json!({"steps": n, "sum": n * (n - 1) / 2}),
            Kind::Sleep(n) => json!({"slept": n}),
            Kind::Callback => json!({"callback": delivered}),
        }
    }

    /// How many steps succeed in the execution, when it has steps.
    pub fn steps(&self) -> Option<usize> {
        match self {
            Kind::Steps3(_) => Some(3),
            Kind::ManySteps(n) => Some(*n as usize),
            Kind::Sleep(_) | Kind::Callback => None,
        }
    }
}
