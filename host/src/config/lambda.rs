//! The `[lambda]` section: how the AWS Lambda durable-functions surface (`api/lambda/`) names
//! the host's workflows and executions, and how long a synchronous Invoke may wait. The ARN
//! formats are here, not in the API, because guests see their execution's ARN too (the
//! executions service hands it to each activation).

use crate::ids::valid_name;
use crate::store::ExecutionRecord;
use serde::Deserialize;

/// The `[lambda]` section. AWS clients check the shape of the ARNs they are given, so the
/// surface shows Lambda ARNs: `arn:aws:lambda:<region>:<account_id>:function:<workflow>:
/// <version>`, and `.../durable-execution/<name>/<execution id>` for an execution. Neither
/// value routes anything: the tenant comes from the request's key, and an ARN naming another
/// region or account is simply not found.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LambdaConfig {
    /// The region in the ARNs shown. Default `us-east-1`.
    pub region: String,
    /// The 12-digit account in the ARNs shown. Default `000000000000`.
    pub account_id: String,
    /// How long a synchronous (`RequestResponse`) Invoke waits for its execution to end, in
    /// seconds, before it answers that the execution goes on. AWS waits at most 15 minutes.
    /// Default 900.
    pub invoke_wait_seconds: u64,
}

impl Default for LambdaConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            invoke_wait_seconds: 900,
        }
    }
}

impl LambdaConfig {
    /// Reads a `FunctionName` (of a request, or of a chained invoke): a workflow's name, a
    /// partial ARN (`<account>:function:<name>`) or a function ARN of this host's region and
    /// account, each perhaps ending with `:<qualifier>`.
    ///
    /// # Errors
    /// Why it is not a function of this host: the message says what was expected.
    pub fn parse_function(&self, raw: &str) -> Result<FunctionRef, String> {
        parse_function(self, raw)
    }

    /// Checks the values against the shapes AWS clients expect of an ARN.
    ///
    /// # Errors
    /// A region that is not of the form `xx-name-1`, an account that is not 12 digits, or a
    /// wait outside 1..=900 seconds.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_region(&self.region) {
            return Err(format!(
                "lambda.region must look like an AWS region (such as us-east-1), got {:?}",
                self.region
            ));
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "lambda.account_id must be 12 digits, got {:?}",
                self.account_id
            ));
        }
        if !(1..=900).contains(&self.invoke_wait_seconds) {
            return Err(format!(
                "lambda.invoke_wait_seconds must be between 1 and 900, got {}",
                self.invoke_wait_seconds
            ));
        }
        Ok(())
    }
}

/// The ARN of version `version` of `workflow` (a number, or `$LATEST` for a chained invoke's
/// child started without one).
pub fn function_arn(
    config: &LambdaConfig,
    workflow: &str,
    version: impl std::fmt::Display,
) -> String {
    format!(
        "arn:aws:lambda:{}:{}:function:{workflow}:{version}",
        config.region, config.account_id
    )
}

/// The ARN of an execution.
pub fn execution_arn(config: &LambdaConfig, record: &ExecutionRecord) -> String {
    let function = function_arn(config, &record.workflow, record.version);
    durable_execution_arn(&function, durable_name(record), record.id.as_str())
}

/// The ARN of the execution `id`, named `name`, of the function whose ARN is `function`.
pub fn durable_execution_arn(function: &str, name: &str, id: &str) -> String {
    format!("{function}/durable-execution/{name}/{id}")
}

/// The execution's name as AWS shows it (`DurableExecutionName`, `[a-zA-Z0-9-_]{1,64}`): its
/// name, or its id when it has none or its name (given through `/v1`, which allows more) does
/// not fit that pattern.
pub fn durable_name(record: &ExecutionRecord) -> &str {
    if valid_name(&record.name) {
        &record.name
    } else {
        record.id.as_str()
    }
}

/// `[a-z]{2}(-[a-z]+)+-\d`, the shape of every AWS region name (`us-east-1`, `us-gov-west-1`).
fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() == 1
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(LambdaConfig::default().validate(), Ok(()));
    }

    #[test]
    fn regions_accounts_and_waits_are_checked() {
        for region in ["us-east-1", "eu-central-2", "us-gov-west-1"] {
            assert!(valid_region(region), "{region}");
        }
        for region in [
            "",
            "us",
            "us-east",
            "US-east-1",
            "us-east-12",
            "us--1",
            "u-east-1",
        ] {
            assert!(!valid_region(region), "{region}");
        }
        let with = |f: fn(&mut LambdaConfig)| {
            let mut c = LambdaConfig::default();
            f(&mut c);
            c.validate()
        };
        assert!(with(|c| c.account_id = "12345678901".into()).is_err());
        assert!(with(|c| c.account_id = "12345678901a".into()).is_err());
        assert!(with(|c| c.invoke_wait_seconds = 0).is_err());
        assert!(with(|c| c.invoke_wait_seconds = 901).is_err());
        assert!(
            with(|c| c.region = "moon".into())
                .unwrap_err()
                .contains("lambda.region")
        );
    }
}

/// A function as a request names it: its name, a partial ARN (`<account>:function:<name>`) or a
/// full ARN, each perhaps ending with `:<qualifier>`.
#[derive(Debug, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: String,
    pub qualifier: Option<String>,
}

fn parse_function(config: &LambdaConfig, raw: &str) -> Result<FunctionRef, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (name, qualifier) = match parts.as_slice() {
        [name] => (*name, None),
        [name, qualifier] => (*name, Some(*qualifier)),
        [account, "function", name, rest @ ..] if rest.len() <= 1 => {
            check_account(config, account, raw)?;
            (*name, rest.first().copied())
        }
        [
            "arn",
            _partition,
            "lambda",
            region,
            account,
            "function",
            name,
            rest @ ..,
        ] if rest.len() <= 1 => {
            if *region != config.region {
                return Err(format!(
                    "function {raw:?} is in region {region:?}; this host serves {:?}",
                    config.region
                ));
            }
            check_account(config, account, raw)?;
            (*name, rest.first().copied())
        }
        _ => {
            return Err(format!(
                "{raw:?} is not a function name, a partial ARN (<account>:function:<name>) or a \
                 function ARN"
            ));
        }
    };
    if !valid_name(name) {
        return Err(format!(
            "function name {name:?} must be 1-64 letters, digits, '-' or '_'"
        ));
    }
    Ok(FunctionRef {
        name: name.to_string(),
        qualifier: qualifier.map(str::to_string),
    })
}

fn check_account(config: &LambdaConfig, account: &str, raw: &str) -> Result<(), String> {
    if account == config.account_id {
        Ok(())
    } else {
        Err(format!(
            "function {raw:?} is in account {account:?}; this host serves {:?}",
            config.account_id
        ))
    }
}

/// The version a qualifier names: `$LATEST` (or none) is the latest, digits are a version.
///
/// # Errors
/// An alias or any other qualifier: the host has versions, not aliases.
pub fn version(qualifier: Option<&str>) -> Result<Option<u32>, String> {
    match qualifier {
        None | Some("$LATEST") => Ok(None),
        Some(q) => q
            .parse::<u32>()
            .ok()
            .filter(|v| *v > 0 && !q.starts_with('0'))
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "qualifier {q:?} is neither $LATEST nor a version number (the host has no \
                     aliases)"
                )
            }),
    }
}
