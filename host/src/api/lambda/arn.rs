//! The names the Lambda surface shows and reads: a function is a workflow, its qualifier a
//! version, and an execution is named by an ARN that ends with its execution id.
//!
//! An execution ARN is `arn:aws:lambda:<region>:<account>:function:<workflow>:<version>
//! /durable-execution/<name>/<execution id>` (the pattern of the service model's
//! `DurableExecutionArn`). The host finds an execution by the id alone; the rest of the ARN
//! must agree with it, or the execution is not found, as an ARN of another function would be.

use crate::config::LambdaConfig;
use crate::ids::valid_name;

// The formatting lives with the `[lambda]` section, below the API, because the executions
// service needs it too: it hands each activation its execution's ARN.
pub use crate::config::{durable_name, execution_arn, function_arn};

/// What an execution ARN names.
#[derive(Debug, PartialEq, Eq)]
pub struct ExecutionArn {
    pub workflow: String,
    pub execution_id: String,
}

/// Reads an execution ARN; `None` when it is not one of this host's (another shape, region or
/// account), which the caller answers as a missing execution.
pub fn parse_execution_arn(config: &LambdaConfig, arn: &str) -> Option<ExecutionArn> {
    let (function, rest) = arn.split_once("/durable-execution/")?;
    let (name, id) = rest.split_once('/')?;
    if !valid_name(name) || !valid_name(id) {
        return None;
    }
    let function = parse_function(config, function).ok()?;
    Some(ExecutionArn {
        workflow: function.name,
        execution_id: id.to_string(),
    })
}

pub use crate::config::{FunctionRef, version};

/// Reads a `FunctionName` (see [`LambdaConfig::parse_function`]).
///
/// # Errors
/// Why it is not a function of this host: the message says what was expected.
pub fn parse_function(config: &LambdaConfig, raw: &str) -> Result<FunctionRef, String> {
    config.parse_function(raw)
}

/// The qualifier of a request: the one in `FunctionName` or the `Qualifier` parameter, which
/// must agree when both are given.
///
/// # Errors
/// When they disagree.
pub fn qualifier(function: &FunctionRef, param: Option<&str>) -> Result<Option<u32>, String> {
    match (function.qualifier.as_deref(), param) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "the qualifier in FunctionName ({a:?}) and the Qualifier parameter ({b:?}) differ"
        )),
        (a, b) => version(a.or(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ComponentDigest, ExecutionId, TenantId};
    use crate::store::{ExecutionRecord, ExecutionStatus};

    fn record(name: &str) -> ExecutionRecord {
        ExecutionRecord {
            id: ExecutionId::from_raw("ex_0123abcd"),
            tenant: TenantId::default_tenant(),
            name: name.into(),
            workflow: "echo".into(),
            version: 3,
            digest: ComponentDigest::of(b""),
            input: "{}".into(),
            status: ExecutionStatus::Running,
            result: None,
            error: None,
            created_at: 0,
            updated_at: 0,
            timeout_at: None,
            wake_seq: 0,
        }
    }

    #[test]
    fn an_execution_arn_has_the_service_models_shape_and_reads_back() {
        let config = LambdaConfig::default();
        let arn = execution_arn(&config, &record("order-7"));
        assert_eq!(
            arn,
            "arn:aws:lambda:us-east-1:000000000000:function:echo:3/durable-execution/order-7/ex_0123abcd"
        );
        assert_eq!(
            parse_execution_arn(&config, &arn),
            Some(ExecutionArn {
                workflow: "echo".into(),
                execution_id: "ex_0123abcd".into()
            })
        );
        // A name /v1 allows but the ARN pattern does not: the id stands in for it.
        assert!(execution_arn(&config, &record("order 7!")).ends_with("/ex_0123abcd/ex_0123abcd"));
    }

    #[test]
    fn arns_of_other_regions_accounts_or_shapes_are_not_this_hosts() {
        let config = LambdaConfig::default();
        for arn in [
            "arn:aws:lambda:eu-west-1:000000000000:function:echo:3/durable-execution/n/ex_1",
            "arn:aws:lambda:us-east-1:111111111111:function:echo:3/durable-execution/n/ex_1",
            "arn:aws:lambda:us-east-1:000000000000:function:echo:3/durable-execution/n",
            "arn:aws:lambda:us-east-1:000000000000:function:echo:3/durable-execution/n/ex_1/x",
            "ex_1",
        ] {
            assert_eq!(parse_execution_arn(&config, arn), None, "{arn}");
        }
    }

    #[test]
    fn a_function_is_named_by_name_partial_arn_or_arn_with_a_qualifier() {
        let config = LambdaConfig::default();
        let read = |raw| parse_function(&config, raw);
        let named = |name: &str, q: Option<&str>| {
            Ok(FunctionRef {
                name: name.into(),
                qualifier: q.map(str::to_string),
            })
        };
        assert_eq!(read("echo"), named("echo", None));
        assert_eq!(read("echo:$LATEST"), named("echo", Some("$LATEST")));
        assert_eq!(read("000000000000:function:echo"), named("echo", None));
        assert_eq!(
            read("arn:aws:lambda:us-east-1:000000000000:function:echo:2"),
            named("echo", Some("2"))
        );
        assert!(read("arn:aws:lambda:us-east-1:999999999999:function:echo").is_err());
        assert!(read("has space").is_err());
        assert!(read("a:b:c:d:e").is_err());
    }

    #[test]
    fn qualifiers_are_latest_or_versions_and_must_agree() {
        assert_eq!(version(None), Ok(None));
        assert_eq!(version(Some("$LATEST")), Ok(None));
        assert_eq!(version(Some("12")), Ok(Some(12)));
        for bad in ["prod", "0", "012", "-1", ""] {
            assert!(version(Some(bad)).is_err(), "{bad}");
        }
        let f = FunctionRef {
            name: "echo".into(),
            qualifier: Some("2".into()),
        };
        assert_eq!(qualifier(&f, Some("2")), Ok(Some(2)));
        assert!(qualifier(&f, Some("3")).is_err());
        assert_eq!(qualifier(&f, None), Ok(Some(2)));
    }
}
