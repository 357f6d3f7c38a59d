//! The handlers of AWS's durable-execution conformance suite
//! (`aws-durable-execution-conformance-tests`), written on the Aegis SDK.
//!
//! One component, uploaded under many function names: `conformance-<id>` runs the handler of
//! requirement `<id>` (`conformance-1-1` runs 1-1). The function name comes from
//! [`aegis_sdk::function_name`]. Each handler follows the requirement's `handler` and
//! `invocations` prose (`test_requirements/<suite>/<id>.yaml` in the suite's package); the
//! harness, `tests/conformance/run.py`, uploads the component and runs AWS's validator.
//!
//! The dispatch table in [`dispatch`] is the list of handled requirements: the harness reads the
//! `"<id>" =>` lines of this file to know which function names to upload, so keep one arm per line.
//! Requirements the SDK cannot express yet have no handler (see the harness's report).
//!
//! The plugin suite (10-x) also registers plugins, chosen by the function name as the handler
//! is: [`plugins`] is evaluated at the start of every activation.

use std::time::Duration;

use std::cell::RefCell;

use aegis_sdk::plugin::{
    AttemptEndInfo, AttemptInfo, InvocationEndInfo, InvocationInfo, OperationInfo, OperationKind,
};
use aegis_sdk::{
    BatchConfig, BatchResult, CallbackOptions, Completion, CompletionReason, Ctx, Error,
    HookResult, InvokeOptions, Nesting, Plugin, Polling, RetryPolicy, StepOptions, WaitDecision,
    branch, serdes, workflow,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

/// The prefix of every conformance function name.
const PREFIX: &str = "conformance-";

/// A long timeout for callbacks whose requirement sets none (AWS's default is no timeout).
const NO_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The requirement id this function runs, from its name (`conformance-<id>`).
fn requirement() -> Option<String> {
    let name = aegis_sdk::function_name()?;
    name.strip_prefix(PREFIX).map(str::to_owned)
}

async fn run(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let name = aegis_sdk::function_name().unwrap_or_default();
    let Some(id) = name.strip_prefix(PREFIX) else {
        return Err(Error::new(
            "Conformance.UnknownFunction",
            format!("function {name:?} is not named {PREFIX}<requirement id>"),
        ));
    };
    dispatch(id, ctx, input).await
}

workflow!(run, plugins = plugins());

/// The plugins of the requirement this function runs: the plugin suite's instrumentation, each
/// plugin logging the hooks its requirement names.
fn plugins() -> Vec<Box<dyn Plugin>> {
    let confplugin = |hooks| Box::new(ConfPlugin::new("CONFPLUGIN", hooks)) as Box<dyn Plugin>;
    match requirement().as_deref() {
        Some("10-1" | "10-6" | "10-7") => vec![confplugin(Hooks::Invocation)],
        Some("10-2") => vec![confplugin(Hooks::Operation)],
        Some("10-3") => vec![confplugin(Hooks::Attempt)],
        Some("10-4") => vec![Box::new(ConfPlugin::faulty("CONFPLUGIN-FAULTY"))],
        Some("10-5") => vec![
            Box::new(ConfPlugin::new("CONFPLUGIN-A", Hooks::Invocation)),
            Box::new(ConfPlugin::new("CONFPLUGIN-B", Hooks::Invocation)),
        ],
        _ => Vec::new(),
    }
}

/// Runs the handler of requirement `id`.
async fn dispatch(id: &str, ctx: Ctx, input: Value) -> Result<Value, Error> {
    match id {
        // step
        "1-1" => step_basic(ctx, input).await,
        "1-2" => step_named(ctx, input).await,
        "1-3" => step_sequential(ctx).await,
        "1-4" => step_complex_result(ctx, input).await,
        "1-5" => step_null_result(ctx).await,
        "1-6" => step_custom_serdes(ctx, input).await,
        "1-7" => step_logger(ctx, input).await,
        "1-8" => step_then_wait(ctx).await,
        "1-9" => step_replay_skips_success(ctx).await,
        "1-10" => step_replay_rethrows_failure(ctx).await,
        "1-11" => step_retry_then_success(ctx).await,
        "1-12" => step_retry_exhausted(ctx).await,
        "1-13" => step_default_retry(ctx).await,
        "1-14" => step_custom_backoff(ctx).await,
        "1-15" => step_retry_on_transient(ctx).await,
        "1-16" => step_no_retry_on_transient(ctx).await,
        "1-17" => step_at_most_once_crash(ctx, input).await,
        "1-18" => step_at_most_once_crash_then_retry(ctx, input).await,
        "1-19" => step_permanent_error(ctx).await,
        "1-20" => step_error_caught(ctx).await,
        // wait
        "2-1" => wait_seconds(ctx, "wait", 2).await,
        "2-2" => wait_seconds(ctx, "custom_wait_name", 2).await,
        "2-3" => wait_sequential(ctx).await,
        "2-4" => wait_seconds(ctx, "wait", 60).await,
        "2-5" => wait_seconds(ctx, "wait", 3600).await,
        // child
        "3-1" => child_basic(ctx, input).await,
        "3-2" => child_named(ctx, input).await,
        "3-3" => child_two_steps(ctx, input).await,
        "3-4" => child_step_fails(ctx).await,
        "3-5" => child_error_caught(ctx, input).await,
        "3-6" => child_nested(ctx, input).await,
        "3-7" => child_step_retry(ctx, input).await,
        "3-8" => child_step_retry_exhausted(ctx).await,
        "3-9" => child_then_wait(ctx, input).await,
        "3-10" => child_step_and_wait(ctx, input).await,
        "3-11" => child_large_result_then_wait(ctx, input).await,
        "3-12" => child_step_crashes_once(ctx, input).await,
        "3-13" => child_wait_then_step(ctx, input).await,
        "3-14" => child_custom_serdes(ctx, input).await,
        "3-15" => child_fails_directly(ctx).await,
        "3-16" => child_null(ctx).await,
        "3-17" => child_logger_then_wait(ctx, input).await,
        "3-18" => child_then_step_and_wait(ctx, input).await,
        // callback
        "4-1" => callback_basic(ctx, input).await,
        "4-2" => callback_basic(ctx, json!("approval")).await,
        "4-3" => callback_with(ctx, input, CallbackOptions::timeout(secs(5))).await,
        "4-4" => callback_with(ctx, input, heartbeat(5)).await,
        "4-5" => callback_with(ctx, input, heartbeat(10)).await,
        "4-6" => callback_basic(ctx, input).await,
        "4-7" => callback_step_then_await(ctx, input, NO_TIMEOUT).await,
        "4-8" => callback_step_then_await(ctx, input, secs(5)).await,
        "4-9" | "4-10" => callback_wait_then_await(ctx, input, NO_TIMEOUT, 5).await,
        "4-11" => callback_wait_then_await(ctx, input, secs(3), 6).await,
        "4-12" => callback_await_then_wait(ctx, input).await,
        "4-13" => callback_failure_caught(ctx, input, NO_TIMEOUT).await,
        "4-14" => callback_failure_caught(ctx, input, secs(3)).await,
        "4-15" => callback_typed_date(ctx, input).await,
        "4-16" => callback_number(ctx, input).await,
        "4-17" => callbacks_in_turn(ctx, input).await,
        "4-18" => callbacks_both_then(ctx, input, false).await,
        "4-19" => callbacks_both_then(ctx, input, true).await,
        // invoke: the targets ("echo" answers its input, "fail" fails), then the handlers
        "echo" => Ok(input),
        "fail" => Err(Error::new(
            "Conformance.TargetError",
            "the target function failed",
        )),
        "5-1" | "5-3" | "5-4" => invoke_echo(ctx, input).await,
        "5-2" => invoke_named(ctx, input).await,
        "5-5" => invoke_fails(ctx).await,
        "5-6" => invoke_fails_caught(ctx).await,
        "5-7" => invoke_large(ctx).await,
        "5-8" => invoke_with_tenant(ctx, input).await,
        "5-9" => invoke_then_wait(ctx).await,
        "5-10" => invoke_fails_then_wait(ctx).await,
        "5-11" => step_then_invoke(ctx).await,
        "5-12" => invoke_then_step(ctx).await,
        "5-13" => invoke_in_child(ctx).await,
        "5-14" => invokes_in_turn(ctx).await,
        "5-15" => invoke_payload_serdes(ctx, input).await,
        "5-16" => invoke_result_serdes(ctx, input).await,
        // wait_for_condition
        "6-1" => condition_count(ctx, "count", 0, int(&input)).await,
        "6-2" => condition_immediate(ctx).await,
        "6-3" => condition_count(ctx, "poll-status", 0, int(&input)).await,
        "6-4" => condition_count(ctx, "count", 5, int(&input)).await,
        "6-5" => condition_fixed_delay(ctx, int(&input)).await,
        "6-6" => condition_exhausted(ctx).await,
        "6-7" => condition_check_throws(ctx).await,
        "6-8" => match condition_check_throws(ctx).await {
            Ok(value) => Ok(value),
            Err(_) => Ok(json!("recovered")),
        },
        "6-9" => condition_object(ctx).await,
        "6-10" => condition_null(ctx).await,
        "6-11" => condition_custom_serdes(ctx).await,
        "6-12" => condition_then_step(ctx, int(&input)).await,
        "6-13" => condition_twice(ctx).await,
        // wait_for_callback
        "7-1" | "7-4" | "7-15" => wfc_basic(ctx, &text(&input), forever()).await,
        "7-2" => wfc_basic(ctx, "approval", forever()).await,
        "7-3" => wfc_basic(ctx, "", forever()).await,
        "7-5" => wfc_basic(ctx, &text(&input), CallbackOptions::timeout(secs(3))).await,
        "7-6" => wfc_caught(ctx, &text(&input), forever(), "recovered").await,
        "7-7" => wfc_submitter_always_fails(ctx, &text(&input)).await,
        "7-8" => wfc_in_child(ctx, input).await,
        "7-9" => wfc_two(ctx).await,
        "7-10" => wfc_after_wait_and_step(ctx, input).await,
        "7-11" => wfc_json_field(ctx, input).await,
        "7-12" => wfc_basic(ctx, &text(&input), heartbeat(5)).await,
        "7-13" => wfc_basic(ctx, &text(&input), heartbeat(10)).await,
        "7-14" => {
            let options = CallbackOptions::timeout(secs(3));
            wfc_caught(ctx, &text(&input), options, "timed-out-handled").await
        }
        // parallel (without max-concurrency the SDK's batches poll items round-robin in index
        // order and check the completion rule before each, which for items that finish in their
        // first poll records the same history as max-concurrency 1)
        "8-1" => parallel_steps(ctx).await,
        "8-2" => parallel_values(ctx, vec![json!("alpha"), json!("beta")]).await,
        "8-3" => parallel_values(ctx, vec![json!("one"), json!("two")]).await,
        "8-4" => parallel_values(ctx, vec![json!("hello"), json!(42), json!({"k": "v"})]).await,
        "8-5" => parallel_values(ctx, vec![]).await,
        "8-6" => parallel_outcomes(ctx, &[true, false, true], Completion::all(), FULL).await,
        "8-7" => parallel_rethrow(ctx).await,
        "8-8" => parallel_outcomes(ctx, &[true; 4], Completion::min_successful(2), MIN).await,
        "8-9" => {
            let completion = Completion::tolerated_failures(1);
            parallel_outcomes(ctx, &[true, false, true], completion, FULL).await
        }
        "8-10" => {
            let completion = Completion::tolerated_failures(1);
            parallel_outcomes(ctx, &[false; 3], completion, TOLERANCE).await
        }
        "8-11" => parallel_values(ctx, vec![json!("r0"), json!("r1"), json!("r2")]).await,
        "8-12" => parallel_flat(ctx).await,
        "8-13" => {
            let config = one_at_a_time(Completion::tolerated_failure_percentage(25.0));
            parallel_outcomes(ctx, &[false, false, true, true], config, TOLERANCE).await
        }
        "8-14" => parallel_with_wait(ctx).await,
        "8-15" => parallel_item_serdes(ctx).await,
        "8-16" => {
            let completion = Completion::tolerated_failures(3);
            parallel_outcomes(ctx, &[false; 3], completion, FULL).await
        }
        "8-17" => {
            let completion = Completion::min_successful(3);
            parallel_outcomes(ctx, &[true, false, true], completion, FULL).await
        }
        "8-18" => {
            let completion = Completion {
                min_successful: Some(3),
                ..Completion::tolerated_failures(1)
            };
            parallel_outcomes(ctx, &[false, false, true, true], completion, TOLERANCE).await
        }
        "8-20" => {
            let completion = Completion::tolerated_failures(1);
            parallel_outcomes(ctx, &[true, false, true], completion, ACCESSORS).await
        }
        "8-19" => parallel_zero_concurrency(ctx).await,
        "8-21" => parallel_nested(ctx).await,
        "8-22" => {
            let config = one_at_a_time(Completion::tolerated_failure_percentage(25.0));
            parallel_outcomes(ctx, &[false, true, true, true], config, FULL).await
        }
        // map (the same remark on max-concurrency)
        "9-1" => map_greet(ctx, input).await,
        "9-2" => map_double(ctx, input).await,
        "9-3" => map_plus_index(ctx, input).await,
        "9-4" => map_greet(ctx, input).await,
        "9-5" => map_outcomes(ctx, &[true, false, true], Completion::all(), FULL).await,
        "9-6" => map_rethrow(ctx).await,
        "9-7" => map_outcomes(ctx, &[true; 4], Completion::min_successful(2), MIN).await,
        "9-8" => {
            let completion = Completion::tolerated_failures(1);
            map_outcomes(ctx, &[true, false, true], completion, FULL).await
        }
        "9-9" => {
            let completion = Completion::tolerated_failures(1);
            map_outcomes(ctx, &[false; 3], completion, TOLERANCE).await
        }
        "9-10" => {
            let config = one_at_a_time(Completion::tolerated_failure_percentage(25.0));
            map_outcomes(ctx, &[false, false, true, true], config, TOLERANCE).await
        }
        "9-11" => map_constant(ctx).await,
        "9-12" => map_flat(ctx).await,
        "9-13" => map_named_items(ctx, input).await,
        "9-14" => map_item_serdes(ctx).await,
        "9-15" => map_with_wait(ctx).await,
        "9-16" => map_large_result(ctx).await,
        "9-17" => map_then_wait(ctx).await,
        "9-18" => map_failure_then_wait(ctx).await,
        "9-19" => map_operation_serdes(ctx, "op-serde", false).await,
        "9-20" => map_operation_serdes(ctx, "op-serde-replay", true).await,
        // plugin (the plugins are registered by `plugins`)
        "10-1" => plugin_greet(ctx, input).await,
        "10-2" => step_basic(ctx, input).await,
        "10-3" => step_retry_then_success(ctx).await,
        "10-4" => step_basic(ctx, input).await,
        "10-5" => step_basic(ctx, input).await,
        "10-6" => wait_seconds(ctx, "wait", 2).await,
        "10-7" => step_permanent_error(ctx).await,
        _ => Err(Error::new(
            "Conformance.NoHandler",
            format!("no handler for requirement {id}"),
        )),
    }
}

// ---- helpers ----

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A callback with no timeout to speak of.
fn forever() -> CallbackOptions {
    CallbackOptions::timeout(NO_TIMEOUT)
}

/// A callback with this heartbeat timeout (and no overall timeout to speak of).
fn heartbeat(n: u64) -> CallbackOptions {
    forever().heartbeat_timeout(secs(n))
}

/// The input as a string (a JSON string's content, else its JSON text).
fn text(input: &Value) -> String {
    match input {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `i`th element of an array input, as a string.
fn nth(input: &Value, i: usize) -> String {
    text(input.get(i).unwrap_or(&Value::Null))
}

fn no_retry() -> StepOptions {
    StepOptions::default()
}

fn failure(message: &str) -> Error {
    Error::new("Conformance.StepError", message)
}

/// A string that serialises in upper case: the custom serialiser ("serdes") of 1-6 and 3-14.
struct Upper(String);

impl Serialize for Upper {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_uppercase())
    }
}

impl<'de> Deserialize<'de> for Upper {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Upper)
    }
}

/// The input as an integer (0 when it is not one).
fn int(input: &Value) -> i64 {
    input.as_i64().unwrap_or_default()
}

// ---- step (1-x) ----

async fn step_basic(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let name = text(&input);
    ctx.step("greet", move |_| Ok(json!(format!("Hello, {name}!"))))
        .await
}

async fn step_named(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let name = text(&input);
    ctx.step("custom_step_name", move |_| {
        Ok(json!(format!("Hello, {name}!")))
    })
    .await
}

async fn step_sequential(ctx: Ctx) -> Result<Value, Error> {
    let first: String = ctx.step("step_one", |_| Ok("first".to_owned())).await?;
    let second: String = ctx
        .step("step_two", move |_| Ok(format!("{first}_second")))
        .await?;
    Ok(json!(second))
}

async fn step_complex_result(ctx: Ctx, input: Value) -> Result<Value, Error> {
    ctx.step("build_response", move |_| {
        let tags = input["tags"].as_array().cloned().unwrap_or_default();
        Ok(json!({
            "user": {"name": input["name"], "tags": tags},
            "count": tags.len(),
        }))
    })
    .await
}

async fn step_null_result(ctx: Ctx) -> Result<Value, Error> {
    ctx.step("do_nothing", |_| Ok(())).await?;
    Ok(Value::Null)
}

async fn step_custom_serdes(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let value = text(&input);
    let Upper(result) = ctx.step("return_input", move |_| Ok(Upper(value))).await?;
    Ok(json!(result))
}

/// 1-7: the step body logs through the context's logger as it starts and as it ends.
async fn step_logger(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let name = text(&input);
    let log = ctx.clone();
    ctx.step("greet", move |_| {
        log.info(&format!("Greeting step started for: {name}"));
        let greeting = format!("Hello, {name}!");
        log.info(&format!("Greeting step completed with: {greeting}"));
        Ok(json!(greeting))
    })
    .await
}

/// 1-17: an at-most-once step with no retry logs the input, then crashes the runtime. Run
/// again, the host finds the attempt interrupted and fails it, and the execution fails.
async fn step_at_most_once_crash(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let name = text(&input);
    let log = ctx.clone();
    ctx.step_with(
        "at_most_once_flaky_step",
        no_retry().at_most_once(),
        move |_| -> Result<Value, Error> {
            log.info(&name);
            std::process::exit(1);
        },
    )
    .await
}

/// 1-18: an at-most-once step with a retry policy logs the input, then crashes the runtime on
/// its first attempt. Run again, the host fails the interrupted attempt under the policy and
/// schedules a second attempt, which logs again and succeeds.
async fn step_at_most_once_crash_then_retry(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let name = text(&input);
    let log = ctx.clone();
    let options = StepOptions::retry(RetryPolicy::fixed(3, secs(1))).at_most_once();
    ctx.step_with("at_most_once_retry_step", options, move |attempt| {
        log.info(&name);
        if attempt == 1 {
            std::process::exit(1);
        }
        Ok(json!("succeeded on second attempt"))
    })
    .await
}

async fn step_then_wait(ctx: Ctx) -> Result<Value, Error> {
    let result: String = ctx.step("compute", |_| Ok("computed".to_owned())).await?;
    ctx.wait("wait", secs(2)).await?;
    Ok(json!(result))
}

async fn step_replay_skips_success(ctx: Ctx) -> Result<Value, Error> {
    let log = ctx.clone();
    let result: String = ctx
        .step("compute", move |_| {
            log.info("step executed");
            Ok("cached_value".to_owned())
        })
        .await?;
    ctx.wait("wait", secs(1)).await?;
    Ok(json!(result))
}

async fn step_replay_rethrows_failure(ctx: Ctx) -> Result<Value, Error> {
    let log = ctx.clone();
    let caught = ctx
        .step_with("fail", no_retry(), move |_| -> Result<(), Error> {
            log.info("step executed");
            Err(failure("permanent failure"))
        })
        .await
        .err();
    ctx.wait("wait", secs(1)).await?;
    Ok(json!({"caught": caught.map(|e| e.message)}))
}

async fn step_retry_then_success(ctx: Ctx) -> Result<Value, Error> {
    let options = StepOptions::retry(RetryPolicy::fixed(3, secs(1)));
    ctx.step_with("unreliable", options, |attempt| {
        if attempt == 1 {
            Err(failure("attempt 1 fails"))
        } else {
            Ok(json!("Operation succeeded"))
        }
    })
    .await
}

async fn step_retry_exhausted(ctx: Ctx) -> Result<Value, Error> {
    let options = StepOptions::retry(RetryPolicy::fixed(4, secs(1)));
    ctx.step_with("always_fail", options, |attempt| -> Result<Value, Error> {
        Err(failure(&format!("attempt {attempt} fails")))
    })
    .await
}

/// Fails on attempts 1 and 2, succeeds on 3.
fn fails_twice(attempt: u32) -> Result<Value, Error> {
    if attempt < 3 {
        Err(failure(&format!("attempt {attempt} fails")))
    } else {
        Ok(json!({"attempt": attempt}))
    }
}

async fn step_default_retry(ctx: Ctx) -> Result<Value, Error> {
    // AWS's default strategy: 6 attempts, 5 s initial delay, 60 s cap, 2x backoff, full jitter.
    // (A step of the SDK has no retry unless it asks; this one asks for AWS's default.)
    let options = StepOptions::retry(RetryPolicy::aws_default());
    ctx.step_with("unreliable", options, fails_twice).await
}

async fn step_custom_backoff(ctx: Ctx) -> Result<Value, Error> {
    let policy = RetryPolicy::exponential(5, secs(2)).backoff_rate(3.0);
    ctx.step_with("unreliable", StepOptions::retry(policy), fails_twice)
        .await
}

async fn step_retry_on_transient(ctx: Ctx) -> Result<Value, Error> {
    let policy = RetryPolicy::fixed(3, secs(1)).retry_on(["TransientError"]);
    ctx.step_with("transient", StepOptions::retry(policy), |attempt| {
        if attempt == 1 {
            Err(Error::new("TransientError", "transient failure"))
        } else {
            Ok(json!("recovered"))
        }
    })
    .await
}

async fn step_no_retry_on_transient(ctx: Ctx) -> Result<Value, Error> {
    // A strategy that retries other errors, but not TransientError.
    let policy = RetryPolicy::fixed(3, secs(1)).retry_on(["PermanentlyRetryableError"]);
    ctx.step_with(
        "transient",
        StepOptions::retry(policy),
        |_| -> Result<Value, Error> { Err(Error::new("TransientError", "transient failure")) },
    )
    .await
}

async fn step_permanent_error(ctx: Ctx) -> Result<Value, Error> {
    ctx.step_with("failing", no_retry(), |_| -> Result<Value, Error> {
        Err(failure("always fails"))
    })
    .await
}

async fn step_error_caught(ctx: Ctx) -> Result<Value, Error> {
    let first = ctx
        .step_with("failing", no_retry(), |_| -> Result<String, Error> {
            Err(failure("always fails"))
        })
        .await;
    let fallback = first.unwrap_or_else(|_| "fallback".to_owned());
    let result: String = ctx
        .step("continue", move |_| Ok(format!("{fallback}_result")))
        .await?;
    Ok(json!(result))
}

// ---- wait (2-x) ----

async fn wait_seconds(ctx: Ctx, name: &str, n: u64) -> Result<Value, Error> {
    ctx.wait(name, secs(n)).await?;
    Ok(Value::Null)
}

async fn wait_sequential(ctx: Ctx) -> Result<Value, Error> {
    ctx.wait("wait-1", secs(2)).await?;
    ctx.wait("wait-2", secs(2)).await?;
    Ok(json!({"completedWaits": 2}))
}

// ---- child (3-x) ----

/// A step that returns `value`.
async fn echo(ctx: &Ctx, name: &str, value: Value) -> Result<Value, Error> {
    ctx.step(name, move |_| Ok(value)).await
}

async fn child_basic(ctx: Ctx, input: Value) -> Result<Value, Error> {
    ctx.child("child", |c| async move { echo(&c, "echo", input).await })
        .await
}

/// 3-12: the step inside the child exits the guest (a Lambda crash) the first time its body runs;
/// run again after the crash, it returns the input.
async fn child_step_crashes_once(ctx: Ctx, input: Value) -> Result<Value, Error> {
    ctx.child("child", |c| async move {
        c.step("step", move |_| {
            if !aegis_sdk::step_resumed() {
                std::process::exit(1);
            }
            Ok(input)
        })
        .await
    })
    .await
}

async fn child_named(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let name = text(&input["name"]);
    let value = input["value"].clone();
    ctx.child(&name, |c| async move { echo(&c, "echo", value).await })
        .await
}

async fn child_two_steps(ctx: Ctx, input: Value) -> Result<Value, Error> {
    ctx.child("child", |c| async move {
        let first = echo(&c, "first", input).await?;
        echo(&c, "second", first).await
    })
    .await
}

async fn child_step_fails(ctx: Ctx) -> Result<Value, Error> {
    ctx.child("child", |c| async move {
        c.step_with("failing", no_retry(), |_| -> Result<Value, Error> {
            Err(failure("child step fails"))
        })
        .await
    })
    .await
}

async fn child_error_caught(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let _caught = ctx
        .child("child", |c| async move {
            c.step_with("failing", no_retry(), |_| -> Result<Value, Error> {
                Err(failure("child step fails"))
            })
            .await
        })
        .await;
    echo(&ctx, "recovery", input).await
}

async fn child_nested(ctx: Ctx, input: Value) -> Result<Value, Error> {
    ctx.child("outer", |outer| async move {
        let value = echo(&outer, "outer_step", input).await?;
        outer
            .child("inner", |inner| async move {
                echo(&inner, "inner_step", value).await
            })
            .await
    })
    .await
}

async fn child_step_retry(ctx: Ctx, input: Value) -> Result<Value, Error> {
    ctx.child("child", |c| async move {
        let options = StepOptions::retry(RetryPolicy::fixed(3, secs(1)));
        c.step_with("unreliable", options, move |attempt| {
            if attempt == 1 {
                Err(failure("attempt 1 fails"))
            } else {
                Ok(input)
            }
        })
        .await
    })
    .await
}

async fn child_step_retry_exhausted(ctx: Ctx) -> Result<Value, Error> {
    ctx.child("child", |c| async move {
        let options = StepOptions::retry(RetryPolicy::fixed(2, secs(1)));
        c.step_with("always_fail", options, |attempt| -> Result<Value, Error> {
            Err(failure(&format!("attempt {attempt} fails")))
        })
        .await
    })
    .await
}

async fn child_then_wait(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let result = ctx
        .child("child", |c| async move { echo(&c, "echo", input).await })
        .await?;
    ctx.wait("wait", secs(1)).await?;
    Ok(result)
}

/// 3-17: the child only logs the input and returns it; the wait after it replays the workflow,
/// and the finished child's body does not run (nor log) again.
async fn child_logger_then_wait(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let result = ctx
        .child("child", |c| async move {
            c.info(&text(&input));
            Ok(input)
        })
        .await?;
    ctx.wait("wait", secs(1)).await?;
    Ok(result)
}

/// 3-11: the child's result (over 256 KiB) is not kept, so the replay after the wait runs the
/// child's body again to rebuild it (ReplayChildren). The body prints the input to stdout, which
/// (unlike `log`, which stays quiet while replaying) shows every run: the suite's "replay
/// logging enabled".
async fn child_large_result_then_wait(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let large: String = ctx
        .child("child", |c| async move {
            println!("{}", text(&input));
            let small: String = c.step("small", |_| Ok("x".to_owned())).await?;
            Ok(small.repeat(300 * 1024))
        })
        .await?;
    ctx.wait("wait", secs(1)).await?;
    Ok(json!(large.len()))
}

async fn child_step_and_wait(ctx: Ctx, input: Value) -> Result<Value, Error> {
    ctx.child("child", |c| async move {
        let value = echo(&c, "echo", input).await?;
        c.wait("wait", secs(1)).await?;
        Ok(value)
    })
    .await
}

async fn child_wait_then_step(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let value = ctx
        .child("child", |c| async move {
            c.wait("wait", secs(1)).await?;
            Ok(input)
        })
        .await?;
    echo(&ctx, "after", value).await
}

/// 3-14: the child's result is recorded through a custom serdes, as upper-case text (not
/// JSON), and read back as it was recorded.
async fn child_custom_serdes(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let upper = serdes(
        |value| Ok(value.as_str().unwrap_or_default().to_uppercase()),
        |text| Ok(Value::String(text.to_owned())),
    );
    let result: String = ctx
        .child_with("child", upper, |c| async move {
            c.step("echo", move |_| Ok(text(&input))).await
        })
        .await?;
    Ok(json!(result))
}

async fn child_fails_directly(ctx: Ctx) -> Result<Value, Error> {
    ctx.child("child", |_c| async move {
        Err::<Value, _>(Error::new(
            "Conformance.ChildError",
            "thrown in the child body",
        ))
    })
    .await
}

async fn child_null(ctx: Ctx) -> Result<Value, Error> {
    ctx.child("child", |_c| async move { Ok(Value::Null) })
        .await
}

async fn child_then_step_and_wait(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let value = ctx
        .child("child", |c| async move {
            let value = echo(&c, "inner", input).await?;
            c.wait("inner_wait", secs(1)).await?;
            Ok(value)
        })
        .await?;
    let value = echo(&ctx, "outer", value).await?;
    ctx.wait("outer_wait", secs(1)).await?;
    Ok(value)
}

// ---- callback (4-x) ----

async fn callback_basic(ctx: Ctx, input: Value) -> Result<Value, Error> {
    callback_with(ctx, input, forever()).await
}

async fn callback_with(ctx: Ctx, input: Value, options: CallbackOptions) -> Result<Value, Error> {
    let callback = ctx.create_callback(&text(&input), options);
    callback.result().await
}

async fn callback_step_then_await(
    ctx: Ctx,
    input: Value,
    timeout: Duration,
) -> Result<Value, Error> {
    let callback = ctx.create_callback(&text(&input), CallbackOptions::timeout(timeout));
    ctx.step("between", |_| Ok("done".to_owned())).await?;
    callback.result().await
}

async fn callback_wait_then_await(
    ctx: Ctx,
    input: Value,
    timeout: Duration,
    wait: u64,
) -> Result<Value, Error> {
    let callback = ctx.create_callback(&text(&input), CallbackOptions::timeout(timeout));
    ctx.wait("wait", secs(wait)).await?;
    callback.result().await
}

async fn callback_await_then_wait(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let callback = ctx.create_callback(&text(&input), forever());
    let result: Value = callback.result().await?;
    ctx.wait("wait", secs(2)).await?;
    Ok(result)
}

async fn callback_failure_caught(
    ctx: Ctx,
    input: Value,
    timeout: Duration,
) -> Result<Value, Error> {
    let callback = ctx.create_callback(&text(&input), CallbackOptions::timeout(timeout));
    let message = match callback.result::<Value>().await {
        Ok(_) => "no error".to_owned(),
        Err(e) => format!("caught: {}", e.message),
    };
    ctx.wait("wait", secs(2)).await?;
    Ok(json!(message))
}

/// The callback payload of 4-15, with its timestamp deserialised into epoch seconds.
#[derive(Serialize, Deserialize)]
struct Received {
    id: String,
    message: String,
    #[serde(deserialize_with = "epoch_seconds")]
    timestamp: i64,
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` as seconds since the epoch.
fn epoch_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_rfc3339_utc(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("not a UTC timestamp: {text}")))
}

fn parse_rfc3339_utc(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let time = time.split('.').next()?;
    let mut t = time.split(':').map(str::parse::<i64>);
    let (h, min, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + s)
}

async fn callback_typed_date(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let callback = ctx.create_callback(&text(&input), forever());
    let received: Received = callback.result().await?;
    Ok(json!({"received": received}))
}

async fn callback_number(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let callback = ctx.create_callback(&text(&input), forever());
    let count: i64 = callback.result().await?;
    Ok(json!({"count": count, "doubled": count * 2}))
}

async fn callbacks_in_turn(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let a: Value = ctx
        .create_callback(&nth(&input, 0), forever())
        .result()
        .await?;
    let b: Value = ctx
        .create_callback(&nth(&input, 1), forever())
        .result()
        .await?;
    Ok(json!([a, b]))
}

async fn callbacks_both_then(ctx: Ctx, input: Value, b_first: bool) -> Result<Value, Error> {
    let a = ctx.create_callback(&nth(&input, 0), forever());
    let b = ctx.create_callback(&nth(&input, 1), forever());
    let (ra, rb): (Value, Value) = if b_first {
        let rb = b.result().await?;
        (a.result().await?, rb)
    } else {
        let ra = a.result().await?;
        (ra, b.result().await?)
    };
    Ok(json!([ra, rb]))
}

// ---- invoke (5-x) ----

/// The target that answers its input.
const ECHO: &str = "conformance-echo";
/// The target that fails.
const FAIL: &str = "conformance-fail";

async fn invoke_echo(ctx: Ctx, input: Value) -> Result<Value, Error> {
    ctx.invoke("invoke", ECHO, &input).await
}

async fn invoke_named(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let name = text(&input["name"]);
    ctx.invoke(&name, ECHO, &input["payload"]).await
}

async fn invoke_fails(ctx: Ctx) -> Result<Value, Error> {
    ctx.invoke("invoke", FAIL, &Value::Null).await
}

async fn invoke_fails_caught(ctx: Ctx) -> Result<Value, Error> {
    match ctx.invoke::<Value, _>("invoke", FAIL, &Value::Null).await {
        Ok(value) => Ok(value),
        Err(e) => Ok(json!({"fallback": true, "error": e.error_type})),
    }
}

/// 5-7: a payload near the limit (200 KiB of the host's 256 KiB).
async fn invoke_large(ctx: Ctx) -> Result<Value, Error> {
    let large = "x".repeat(200 * 1024);
    let echoed: String = ctx.invoke("invoke", ECHO, &large).await?;
    Ok(json!({"length": echoed.len()}))
}

async fn invoke_with_tenant(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let options = InvokeOptions::default().tenant_id(text(&input["tenantId"]));
    ctx.invoke_with("invoke", ECHO, &input["payload"], options)
        .await
}

async fn invoke_then_wait(ctx: Ctx) -> Result<Value, Error> {
    let result: Value = ctx.invoke("invoke", ECHO, "cached").await?;
    ctx.wait("wait", secs(1)).await?;
    Ok(result)
}

async fn invoke_fails_then_wait(ctx: Ctx) -> Result<Value, Error> {
    let caught = ctx
        .invoke::<Value, _>("invoke", FAIL, &Value::Null)
        .await
        .is_err();
    ctx.wait("wait", secs(1)).await?;
    Ok(json!({"caught": caught}))
}

async fn step_then_invoke(ctx: Ctx) -> Result<Value, Error> {
    let made: String = ctx.step("make", |_| Ok("from step".to_owned())).await?;
    ctx.invoke("invoke", ECHO, &made).await
}

async fn invoke_then_step(ctx: Ctx) -> Result<Value, Error> {
    let result: String = ctx.invoke("invoke", ECHO, "from invoke").await?;
    ctx.step("process", move |_| Ok(result.to_uppercase()))
        .await
        .map(Value::String)
}

async fn invoke_in_child(ctx: Ctx) -> Result<Value, Error> {
    ctx.child("child", |c| async move {
        c.invoke::<Value, _>("invoke", ECHO, "in child").await
    })
    .await
}

async fn invokes_in_turn(ctx: Ctx) -> Result<Value, Error> {
    let first: String = ctx.invoke("first", ECHO, "one").await?;
    let second: String = ctx.invoke("second", ECHO, "two").await?;
    Ok(json!([first, second]))
}

/// 5-15: the payload goes through a custom serialiser (upper case).
async fn invoke_payload_serdes(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let payload = Upper(text(&input["data"]));
    ctx.invoke("invoke", ECHO, &payload).await
}

/// 5-16's custom result deserialiser: the serialised result in upper case. AWS's serdes reads
/// the raw payload (`"hello"`, quotes and all), so the handler returns `"HELLO"` with quotes.
struct Uppercased(String);

impl<'de> Deserialize<'de> for Uppercased {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(|raw| Uppercased(raw.to_string().to_uppercase()))
    }
}

async fn invoke_result_serdes(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let Uppercased(result) = ctx.invoke("invoke", ECHO, &input).await?;
    Ok(json!(result))
}

// ---- wait_for_condition (6-x) ----

/// Continue every second while the state is below `threshold`.
fn below(threshold: i64) -> impl Fn(&i64, u32) -> Result<WaitDecision, Error> {
    move |state, _attempt| {
        Ok(if *state >= threshold {
            WaitDecision::Stop
        } else {
            WaitDecision::after(secs(1))
        })
    }
}

async fn condition_count(ctx: Ctx, name: &str, from: i64, to: i64) -> Result<Value, Error> {
    let count = ctx
        .wait_for_condition(name, from, below(to), |n, _attempt| Ok(n + 1))
        .await?;
    Ok(json!(count))
}

async fn condition_immediate(ctx: Ctx) -> Result<Value, Error> {
    let state = ctx
        .wait_for_condition("immediate", 5_i64, below(5), |n, _attempt| Ok(n))
        .await?;
    Ok(json!(state))
}

async fn condition_fixed_delay(ctx: Ctx, threshold: i64) -> Result<Value, Error> {
    let strategy = Polling::fixed(secs(2), move |n: &i64| *n < threshold);
    let count = ctx
        .wait_for_condition("fixed", 0_i64, strategy, |n, _attempt| Ok(n + 1))
        .await?;
    Ok(json!(count))
}

async fn condition_exhausted(ctx: Ctx) -> Result<Value, Error> {
    let strategy = Polling::fixed(secs(1), |_: &i64| true).max_attempts(3);
    let count = ctx
        .wait_for_condition("never", 0_i64, strategy, |n, _attempt| Ok(n + 1))
        .await?;
    Ok(json!(count))
}

async fn condition_check_throws(ctx: Ctx) -> Result<Value, Error> {
    let stop = |_: &Value, _attempt: u32| -> Result<WaitDecision, Error> { Ok(WaitDecision::Stop) };
    ctx.wait_for_condition("throws", Value::Null, stop, |_, _attempt| {
        Err(failure("check function failed"))
    })
    .await
}

#[derive(Serialize, Deserialize)]
struct Job {
    status: String,
    attempts: u32,
}

async fn condition_object(ctx: Ctx) -> Result<Value, Error> {
    let initial = Job {
        status: "PENDING".into(),
        attempts: 0,
    };
    let pending = |job: &Job, _attempt: u32| -> Result<WaitDecision, Error> {
        Ok(if job.status == "PENDING" {
            WaitDecision::after(secs(1))
        } else {
            WaitDecision::Stop
        })
    };
    let job = ctx
        .wait_for_condition("job", initial, pending, |job: Job, _attempt| {
            let attempts = job.attempts + 1;
            let status = if attempts >= 2 { "DONE" } else { "PENDING" };
            Ok(Job {
                status: status.into(),
                attempts,
            })
        })
        .await?;
    Ok(json!({"status": job.status, "attempts": job.attempts}))
}

async fn condition_null(ctx: Ctx) -> Result<Value, Error> {
    let stop = |_: &Value, _attempt: u32| -> Result<WaitDecision, Error> { Ok(WaitDecision::Stop) };
    ctx.wait_for_condition("null", Value::Null, stop, |_, _attempt| Ok(Value::Null))
        .await
}

/// A string state that is checkpointed with an `ENC:` prefix: the custom serialiser of 6-11.
struct Encoded(String);

impl Serialize for Encoded {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("ENC:{}", self.0))
    }
}

impl<'de> Deserialize<'de> for Encoded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Encoded(
            text.strip_prefix("ENC:").unwrap_or(&text).to_owned(),
        ))
    }
}

async fn condition_custom_serdes(ctx: Ctx) -> Result<Value, Error> {
    let long_enough = |state: &Encoded, _attempt: u32| -> Result<WaitDecision, Error> {
        Ok(if state.0.len() >= 2 {
            WaitDecision::Stop
        } else {
            WaitDecision::after(secs(1))
        })
    };
    let initial = Encoded(String::new());
    let Encoded(state) = ctx
        .wait_for_condition("append", initial, long_enough, |state, _attempt| {
            Ok(Encoded(state.0 + "x"))
        })
        .await?;
    Ok(json!(state))
}

async fn condition_then_step(ctx: Ctx, threshold: i64) -> Result<Value, Error> {
    let count = ctx
        .wait_for_condition("count", 0_i64, below(threshold), |n, _attempt| Ok(n + 1))
        .await?;
    let result: i64 = ctx.step("multiply", move |_| Ok(count * 10)).await?;
    Ok(json!(result))
}

async fn condition_twice(ctx: Ctx) -> Result<Value, Error> {
    let first = ctx
        .wait_for_condition("first", 0_i64, below(2), |n, _attempt| Ok(n + 1))
        .await?;
    let second = ctx
        .wait_for_condition("second", first, below(4), |n, _attempt| Ok(n + 1))
        .await?;
    Ok(json!(second))
}

// ---- wait_for_callback (7-x) ----

async fn wfc_basic(ctx: Ctx, name: &str, options: CallbackOptions) -> Result<Value, Error> {
    ctx.wait_for_callback(name, options, |_callback_id| Ok(()))
        .await
}

async fn wfc_submitter_always_fails(ctx: Ctx, name: &str) -> Result<Value, Error> {
    // Two attempts, one second apart; the callback is never completed.
    let retry = StepOptions::retry(RetryPolicy::fixed(2, secs(1)));
    ctx.wait_for_callback_with(name, forever(), retry, |_callback_id| {
        Err(failure("submitter failure"))
    })
    .await
}

async fn wfc_caught(
    ctx: Ctx,
    name: &str,
    options: CallbackOptions,
    recovery: &str,
) -> Result<Value, Error> {
    match wfc_basic(ctx, name, options).await {
        Ok(value) => Ok(value),
        Err(_) => Ok(json!(recovery)),
    }
}

async fn wfc_in_child(ctx: Ctx, input: Value) -> Result<Value, Error> {
    ctx.child("wrapper", |c| async move {
        wfc_basic(c, &text(&input), forever()).await
    })
    .await
}

async fn wfc_two(ctx: Ctx) -> Result<Value, Error> {
    let _first = wfc_basic(ctx.clone(), "first", forever()).await?;
    wfc_basic(ctx, "second", forever()).await
}

async fn wfc_after_wait_and_step(ctx: Ctx, input: Value) -> Result<Value, Error> {
    ctx.wait("wait", secs(1)).await?;
    ctx.step("fixed", |_| Ok(json!({"data": "fixed"}))).await?;
    wfc_basic(ctx, &text(&input), forever()).await
}

async fn wfc_json_field(ctx: Ctx, input: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    struct Status {
        status: String,
    }
    let status: Status = ctx
        .wait_for_callback(&text(&input), forever(), |_| Ok(()))
        .await?;
    Ok(json!(status.status))
}

// ---- parallel (8-x) and map (9-x) ----

/// The projection the batch requirements return: the `keys` of `{completionReason, status,
/// successCount, failureCount, totalCount, hasFailure, errorCount}`, where the total counts the
/// items that finished.
fn projection<T>(batch: &BatchResult<T>, keys: &[&str]) -> Value {
    let reason = match batch.completion_reason {
        CompletionReason::AllCompleted => "ALL_COMPLETED",
        CompletionReason::MinSuccessfulReached => "MIN_SUCCESSFUL_REACHED",
        CompletionReason::FailureToleranceExceeded => "FAILURE_TOLERANCE_EXCEEDED",
    };
    let (succeeded, failed) = (batch.success_count(), batch.failure_count());
    let all = json!({
        "completionReason": reason,
        "status": if failed > 0 { "FAILED" } else { "SUCCEEDED" },
        "successCount": succeeded,
        "failureCount": failed,
        "totalCount": succeeded + failed,
        "hasFailure": failed > 0,
        "errorCount": batch.failed().count(),
    });
    keys.iter()
        .map(|&k| (k.to_owned(), all[k].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The keys of each projection the requirements ask for.
const FULL: &[&str] = &[
    "completionReason",
    "status",
    "successCount",
    "failureCount",
    "totalCount",
];
const MIN: &[&str] = &["completionReason", "successCount", "totalCount"];
const TOLERANCE: &[&str] = &[
    "completionReason",
    "successCount",
    "failureCount",
    "totalCount",
];
const ACCESSORS: &[&str] = &["hasFailure", "successCount", "failureCount", "errorCount"];

/// An item that returns `"ok"` or fails.
fn outcome(ok: bool) -> Result<Value, Error> {
    if ok {
        Ok(json!("ok"))
    } else {
        Err(Error::new("Conformance.ItemError", "the item fails"))
    }
}

async fn parallel_steps(ctx: Ctx) -> Result<Value, Error> {
    let branches = ["task-1", "task-2"]
        .into_iter()
        .map(|task| branch(move |c: Ctx| async move { echo(&c, "task", json!(task)).await }))
        .collect();
    let batch = ctx
        .parallel("parallel", branches, Completion::all())
        .await?;
    Ok(json!(batch.into_values()?))
}

async fn parallel_values(ctx: Ctx, values: Vec<Value>) -> Result<Value, Error> {
    let branches = values
        .into_iter()
        .map(|value| branch(move |_c: Ctx| async move { Ok(value) }))
        .collect();
    let batch = ctx
        .parallel("parallel", branches, Completion::all())
        .await?;
    Ok(json!(batch.into_values()?))
}

async fn parallel_outcomes(
    ctx: Ctx,
    oks: &[bool],
    config: impl Into<BatchConfig>,
    keys: &[&str],
) -> Result<Value, Error> {
    let branches = oks
        .iter()
        .map(|&ok| branch(move |_c: Ctx| async move { outcome(ok) }))
        .collect();
    let batch = ctx.parallel("parallel", branches, config).await?;
    Ok(projection(&batch, keys))
}

/// A batch that runs its items one at a time under `completion`.
fn one_at_a_time(completion: Completion) -> BatchConfig {
    BatchConfig::new().completion(completion).max_concurrency(1)
}

/// 8-19: a max concurrency of 0 is refused before the batch starts, and the error is not caught.
async fn parallel_zero_concurrency(ctx: Ctx) -> Result<Value, Error> {
    let branches = ["b0", "b1"]
        .into_iter()
        .map(|value| branch(move |_c: Ctx| async move { Ok(json!(value)) }))
        .collect();
    let config = BatchConfig::new().max_concurrency(0);
    let batch = ctx.parallel("bad-concurrency", branches, config).await?;
    Ok(json!(batch.into_values()?))
}

async fn parallel_rethrow(ctx: Ctx) -> Result<Value, Error> {
    let branches = [false, true]
        .into_iter()
        .map(|ok| branch(move |_c: Ctx| async move { outcome(ok) }))
        .collect();
    let batch = ctx
        .parallel("parallel", branches, Completion::all())
        .await?;
    Ok(json!(batch.into_values()?))
}

async fn parallel_with_wait(ctx: Ctx) -> Result<Value, Error> {
    let branches = vec![
        branch(|c: Ctx| async move { echo(&c, "b0", json!("b0")).await }),
        branch(|c: Ctx| async move {
            c.wait("wait", secs(2)).await?;
            Ok(json!("b1"))
        }),
    ];
    let batch = ctx
        .parallel("parallel", branches, Completion::all())
        .await?;
    Ok(json!(batch.into_values()?))
}

/// A value recorded in the envelope `{"wrapped": v}` and read back as `v`: the custom item
/// serialiser of 8-15 and 9-14.
struct Wrapped(Value);

impl Serialize for Wrapped {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        json!({"wrapped": self.0}).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Wrapped {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut envelope = Value::deserialize(deserializer)?;
        match envelope.get_mut("wrapped") {
            Some(value) => Ok(Wrapped(value.take())),
            None => Err(serde::de::Error::custom("not a {\"wrapped\": v} envelope")),
        }
    }
}

async fn parallel_item_serdes(ctx: Ctx) -> Result<Value, Error> {
    let branches = ["x", "y"]
        .into_iter()
        .map(|v| branch(move |_c: Ctx| async move { Ok(Wrapped(json!(v))) }))
        .collect();
    let batch = ctx
        .parallel("parallel", branches, Completion::all())
        .await?;
    let values: Vec<Value> = batch.into_values()?.into_iter().map(|w| w.0).collect();
    Ok(json!(values))
}

async fn parallel_nested(ctx: Ctx) -> Result<Value, Error> {
    let outer = vec![branch(|c: Ctx| async move {
        let inner = ["i1", "i2"]
            .into_iter()
            .map(|v| branch(move |c: Ctx| async move { echo(&c, "step", json!(v)).await }))
            .collect();
        let batch = c.parallel("inner", inner, Completion::all()).await?;
        Ok(json!(batch.into_values()?))
    })];
    let batch = ctx.parallel("outer", outer, Completion::all()).await?;
    Ok(json!(batch.into_values()?))
}

fn items(input: &Value) -> Vec<Value> {
    input.as_array().cloned().unwrap_or_default()
}

async fn map_greet(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let batch = ctx
        .map(
            "map",
            items(&input),
            |c, item: Value| async move {
                let name = text(&item);
                c.step("greet", move |_| Ok(json!(format!("Hello, {name}!"))))
                    .await
            },
            Completion::all(),
        )
        .await?;
    Ok(json!(batch.into_values()?))
}

async fn map_double(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let batch = ctx
        .map(
            "map",
            items(&input),
            |_c, item: Value| async move { Ok(json!(item.as_i64().unwrap_or(0) * 2)) },
            Completion::all(),
        )
        .await?;
    Ok(json!(batch.into_values()?))
}

async fn map_plus_index(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let indexed: Vec<(usize, Value)> = items(&input).into_iter().enumerate().collect();
    let batch = ctx
        .map(
            "map",
            indexed,
            |_c, (index, item): (usize, Value)| async move {
                Ok(json!(item.as_i64().unwrap_or(0) + index as i64))
            },
            Completion::all(),
        )
        .await?;
    Ok(json!(batch.into_values()?))
}

async fn map_outcomes(
    ctx: Ctx,
    oks: &[bool],
    config: impl Into<BatchConfig>,
    keys: &[&str],
) -> Result<Value, Error> {
    let batch = ctx
        .map(
            "map",
            oks.to_vec(),
            |_c, ok: bool| async move { outcome(ok) },
            config,
        )
        .await?;
    Ok(projection(&batch, keys))
}

/// 9-13: each iteration named from its item and index; the map returns item × 10 in order.
async fn map_named_items(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let items: Vec<i64> = serde_json::from_value(input)
        .map_err(|e| Error::new("Conformance.BadInput", e.to_string()))?;
    let names: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(index, item)| format!("item-{item}-at-{index}"))
        .collect();
    let config = BatchConfig::new()
        .max_concurrency(1)
        .item_namer(move |index| names[index].clone());
    let batch = ctx
        .map(
            "named-items",
            items,
            |_c, item: i64| async move { Ok(item * 10) },
            config,
        )
        .await?;
    Ok(json!(batch.into_values()?))
}

async fn map_rethrow(ctx: Ctx) -> Result<Value, Error> {
    let batch = ctx
        .map(
            "map",
            vec![false, true],
            |_c, ok: bool| async move { outcome(ok) },
            Completion::all(),
        )
        .await?;
    Ok(json!(batch.into_values()?))
}

async fn map_constant(ctx: Ctx) -> Result<Value, Error> {
    let batch = ctx
        .map(
            "map",
            vec!["r0", "r1", "r2"],
            |_c, item: &str| async move { Ok(json!(item)) },
            Completion::all(),
        )
        .await?;
    Ok(json!(batch.into_values()?))
}

/// 9-14: each item's result is recorded through a custom serdes as `wrapped:<value>`.
async fn map_item_serdes(ctx: Ctx) -> Result<Value, Error> {
    let wrapped = serdes(
        |value| Ok(format!("wrapped:{}", value.as_str().unwrap_or_default())),
        |text| {
            text.strip_prefix("wrapped:")
                .map(|s| Value::String(s.to_owned()))
                .ok_or_else(|| Error::new("Conformance.Serdes", format!("not wrapped: {text}")))
        },
    );
    let config = BatchConfig::new().max_concurrency(1).item_serdes(wrapped);
    let batch = ctx
        .map(
            "serdes",
            vec!["x", "y"],
            |_c, item: &str| async move { Ok(item.to_uppercase()) },
            config,
        )
        .await?;
    Ok(json!(batch.into_values()?))
}

/// 9-19 and 9-20's operation-level serdes: the whole map result as `OPSERDE:` and the items'
/// results joined with commas, read back into the batch result's JSON form.
fn opserde() -> std::rc::Rc<dyn aegis_sdk::Serdes> {
    serdes(
        |batch| {
            let items = batch["items"].as_array().cloned().unwrap_or_default();
            let results: Vec<&str> = items
                .iter()
                .map(|item| item["result"].as_str().unwrap_or_default())
                .collect();
            Ok(format!("OPSERDE:{}", results.join(",")))
        },
        |text| {
            let joined = text
                .strip_prefix("OPSERDE:")
                .ok_or_else(|| Error::new("Conformance.Serdes", format!("not OPSERDE: {text}")))?;
            let items: Vec<Value> = joined
                .split(',')
                .map(|result| json!({"status": "succeeded", "result": result}))
                .collect();
            Ok(json!({"completion_reason": "all_completed", "items": items}))
        },
    )
}

async fn map_operation_serdes(ctx: Ctx, name: &str, then_wait: bool) -> Result<Value, Error> {
    let config = BatchConfig::new().max_concurrency(1).serdes(opserde());
    let batch = ctx
        .map(
            name,
            vec!["x", "y"],
            |_c, item: &str| async move { Ok(item.to_uppercase()) },
            config,
        )
        .await?;
    if then_wait {
        ctx.wait("wait", secs(1)).await?;
    }
    Ok(json!(batch.into_values()?))
}

async fn map_with_wait(ctx: Ctx) -> Result<Value, Error> {
    let batch = ctx
        .map(
            "map",
            vec![0, 1],
            |c, index: u32| async move {
                if index == 1 {
                    c.wait("wait", secs(1)).await?;
                }
                echo(&c, "step", json!(format!("r{index}"))).await
            },
            Completion::all(),
        )
        .await?;
    Ok(json!(batch.into_values()?))
}

/// Four items of about 70 KB each: the map's result (about 280 KB) is over what a context keeps,
/// so the Map context replays its children instead of keeping it.
async fn map_large_result(ctx: Ctx) -> Result<Value, Error> {
    let batch = ctx
        .map(
            "large",
            vec![0, 1, 2, 3],
            |_c, index: usize| async move { Ok(format!("{index}").repeat(70 * 1024)) },
            BatchConfig::new().max_concurrency(1),
        )
        .await?;
    Ok(json!({"successCount": batch.success_count(), "totalCount": batch.results.len()}))
}

/// Branches in virtual contexts: their steps are recorded directly under the parallel context.
async fn parallel_flat(ctx: Ctx) -> Result<Value, Error> {
    let branches = ["fa", "fb"]
        .into_iter()
        .map(|value| branch(move |c| async move { echo(&c, "step", json!(value)).await }))
        .collect();
    let config = BatchConfig::new().max_concurrency(1).nesting(Nesting::Flat);
    let batch = ctx.parallel("flat", branches, config).await?;
    Ok(json!(batch.into_values()?))
}

/// Items in virtual contexts: their steps are recorded directly under the map context.
async fn map_flat(ctx: Ctx) -> Result<Value, Error> {
    let config = BatchConfig::new().max_concurrency(1).nesting(Nesting::Flat);
    let batch = ctx
        .map(
            "flat",
            vec!["fa", "fb"],
            |c, item: &str| async move { echo(&c, "step", json!(item)).await },
            config,
        )
        .await?;
    Ok(json!(batch.into_values()?))
}

async fn map_then_wait(ctx: Ctx) -> Result<Value, Error> {
    let batch = ctx
        .map(
            "map",
            vec!["a", "b"],
            |_c, item: &str| async move { Ok(json!(item.to_uppercase())) },
            Completion::all(),
        )
        .await?;
    ctx.wait("wait", secs(1)).await?;
    Ok(json!(batch.into_values()?))
}

async fn map_failure_then_wait(ctx: Ctx) -> Result<Value, Error> {
    let batch = ctx
        .map(
            "map",
            vec![true, false],
            |_c, ok: bool| async move { outcome(ok) },
            Completion::tolerated_failures(1),
        )
        .await?;
    ctx.wait("wait", secs(1)).await?;
    Ok(projection(&batch, FULL))
}

// ---- plugin (10-x) ----

/// 10-1: the greeting step, its body logging that it runs.
async fn plugin_greet(ctx: Ctx, input: Value) -> Result<Value, Error> {
    let name = text(&input);
    let log = ctx.clone();
    ctx.step("greet", move |_| {
        log.info(&format!("Greeting step running for: {name}"));
        Ok(json!(format!("Hello, {name}!")))
    })
    .await
}

/// Which hooks a [`ConfPlugin`] logs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hooks {
    /// invocation-start (`first`) and invocation-end (`status`).
    Invocation,
    /// operation-start (`op`) and operation-end (`op`, `status`), steps only.
    Operation,
    /// attempt-start (`n`, `op`) and attempt-end (`n`, `outcome`, `op`), steps only.
    Attempt,
    /// Every hook, with the plugin and hook names alone (10-4, whose hooks then fail).
    All,
}

/// The suite's instrumentation plugin: writes a JSON object per hook to plain stdout (the
/// execution's log), each carrying the `durableExecutionArn` it was told at invocation start,
/// which is what CloudWatch's execution-scoped search (the harness's log stub) selects on.
struct ConfPlugin {
    name: &'static str,
    hooks: Hooks,
    /// Fails every hook after logging it (10-4).
    faulty: bool,
    arn: RefCell<String>,
}

impl ConfPlugin {
    fn new(name: &'static str, hooks: Hooks) -> Self {
        Self {
            name,
            hooks,
            faulty: false,
            arn: RefCell::new(String::new()),
        }
    }

    fn faulty(name: &'static str) -> Self {
        Self {
            faulty: true,
            ..Self::new(name, Hooks::All)
        }
    }

    /// Logs `hook` with `fields` when this plugin logs `kind` hooks; then fails if faulty.
    fn emit(&self, kind: Hooks, hook: &str, fields: Value) -> HookResult {
        if self.hooks != kind && self.hooks != Hooks::All {
            return Ok(());
        }
        let mut record = json!({
            "plugin": self.name,
            "hook": hook,
            "durableExecutionArn": *self.arn.borrow(),
        });
        if self.hooks != Hooks::All
            && let (Some(record), Value::Object(fields)) = (record.as_object_mut(), fields)
        {
            record.extend(fields);
        }
        println!("{record}");
        if self.faulty {
            return Err(format!("{} fails its {hook} hook on purpose", self.name).into());
        }
        Ok(())
    }
}

impl Plugin for ConfPlugin {
    fn on_invocation_start(&self, info: &InvocationInfo) -> HookResult {
        *self.arn.borrow_mut() = info.execution_arn.clone().unwrap_or_default();
        let fields = json!({"first": info.is_first_invocation});
        self.emit(Hooks::Invocation, "invocation-start", fields)
    }

    fn on_invocation_end(&self, info: &InvocationEndInfo) -> HookResult {
        let fields = json!({"status": info.status.as_str()});
        self.emit(Hooks::Invocation, "invocation-end", fields)
    }

    fn on_operation_start(&self, info: &OperationInfo) -> HookResult {
        if info.kind != OperationKind::Step {
            return Ok(());
        }
        self.emit(Hooks::Operation, "operation-start", json!({"op": info.id}))
    }

    fn on_operation_end(&self, info: &OperationInfo) -> HookResult {
        if info.kind != OperationKind::Step {
            return Ok(());
        }
        let fields = json!({"op": info.id, "status": info.status.as_str()});
        self.emit(Hooks::Operation, "operation-end", fields)
    }

    fn on_attempt_start(&self, info: &AttemptInfo) -> HookResult {
        if info.kind != OperationKind::Step {
            return Ok(());
        }
        let fields = json!({"n": info.attempt, "op": info.id});
        self.emit(Hooks::Attempt, "attempt-start", fields)
    }

    fn on_attempt_end(&self, info: &AttemptEndInfo) -> HookResult {
        if info.kind != OperationKind::Step {
            return Ok(());
        }
        let fields = json!({"n": info.attempt, "outcome": info.outcome.as_str(), "op": info.id});
        self.emit(Hooks::Attempt, "attempt-end", fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_4_15_timestamp() {
        assert_eq!(
            parse_rfc3339_utc("2026-01-01T00:00:00.000Z"),
            Some(1_767_225_600)
        );
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:01Z"), Some(1));
    }
}
