//! Reading a cancelled transaction. DynamoDB cancels the whole transaction and gives one reason
//! per item; each item of a [`Plan`] carries a [`Meaning`], so a failed condition can be told
//! apart: one the batch asked for (the commit fails with `ConditionFailed`) from a lost race
//! (the commit reads the execution again and retries).

use super::Plan;

/// What a failed condition on an item means.
#[derive(Clone, Debug)]
pub enum Meaning {
    /// The execution item: its version moved (a race) or it stopped running.
    Execution,
    /// A condition of the batch did not hold.
    Business(String),
    /// Another writer got there first: read again and retry.
    Race,
}

/// How a cancelled transaction should be handled.
pub enum Verdict {
    ConditionFailed(String),
    /// Re-read the execution and try again.
    Retry,
    Fatal(String),
}

impl Plan {
    /// Reads the cancellation reasons (one per item, in order).
    pub fn why(&self, reasons: &[Option<String>]) -> Verdict {
        let mut verdict = Verdict::Retry;
        for (i, code) in reasons.iter().enumerate() {
            let Some(code) = code else { continue };
            match code.as_str() {
                "ConditionalCheckFailed" => match self.meanings.get(i) {
                    Some(Meaning::Business(m)) => return Verdict::ConditionFailed(m.clone()),
                    Some(Meaning::Execution | Meaning::Race) | None => {}
                },
                "TransactionConflict"
                | "ThrottlingError"
                | "ProvisionedThroughputExceeded"
                | "RequestLimitExceeded" => {}
                other => verdict = Verdict::Fatal(format!("item {i} refused: {other}")),
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_with(meanings: Vec<Meaning>) -> Plan {
        Plan {
            writes: Vec::new(),
            meanings,
            ..Plan::default()
        }
    }

    #[test]
    fn cancellation_reasons_separate_conditions_from_races() {
        let plan = plan_with(vec![
            Meaning::Execution,
            Meaning::Business("operation 1 is not Pending".into()),
            Meaning::Race,
        ]);
        let code = |c: &str| Some(c.to_string());
        assert!(matches!(
            plan.why(&[None, code("ConditionalCheckFailed"), None]),
            Verdict::ConditionFailed(m) if m.contains("operation 1")
        ));
        assert!(matches!(
            plan.why(&[code("ConditionalCheckFailed"), None, None]),
            Verdict::Retry
        ));
        assert!(matches!(
            plan.why(&[None, None, code("TransactionConflict")]),
            Verdict::Retry
        ));
        assert!(matches!(
            plan.why(&[code("ValidationError"), None, None]),
            Verdict::Fatal(_)
        ));
    }
}
