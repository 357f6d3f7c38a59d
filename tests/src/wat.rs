//! Hostile workflow components written by hand in WebAssembly text, for attacks that no Rust
//! guest can express: one component with many core instances, each with its own memory.
//!
//! Each component implements the `aegis:workflow/workflow-component` world exactly as
//! `wit-component` lays it out (it imports the `aegis:workflow/types@0.1.0` types and exports the
//! instance `aegis:workflow/workflow@0.1.0` through a small shim component), so the host accepts
//! it at upload and instantiates it. Only the core modules differ: they are [`WORKFLOW`]'s
//! `$Main` (which lifts `run`) plus whatever the attack needs. The text is built here, with the
//! attack's sizes as parameters, and compiled with the `wat` crate.

use anyhow::{Context as _, Result};

/// The component around the attack: `{modules}` holds the attack's core modules and instances
/// and must define a core instance `$main` of a module exporting `memory`, `realloc` and `run`
/// (`run(input_ptr, input_len) -> outcome_ptr`, the canonical ABI of
/// `run: func(input: payload) -> run-outcome`).
const WORKFLOW: &str = r#"(component
  (type $types-type (instance
    (type $string string)
    (export "payload" (type $payload (eq $string)))
    (type $option (option $payload))
    (type $record (record (field "error-type" string) (field "error-message" string) (field "error-data" $option)))
    (export "error-info" (type (eq $record)))
  ))
  (import "aegis:workflow/types@0.1.0" (instance $types (type $types-type)))
  (alias export $types "payload" (type $payload))
  (alias export $types "error-info" (type $error-info))
  (type $run-outcome (variant (case "completed" $payload) (case "failed" $error-info) (case "suspended")))

{modules}

  (alias core export $main "memory" (core memory $memory))
  (alias core export $main "realloc" (core func $realloc))
  (alias core export $main "run" (core func $run-core))
  (func $run (param "input" $payload) (result $run-outcome)
    (canon lift (core func $run-core) (memory $memory) (realloc $realloc) string-encoding=utf8))

  (component $shim
    (type $string string)
    (import "import-type-payload" (type $payload (eq $string)))
    (type $option (option $payload))
    (type $record (record (field "error-type" string) (field "error-message" string) (field "error-data" $option)))
    (import "import-type-error-info" (type $error-info (eq $record)))
    (type $variant (variant (case "completed" $payload) (case "failed" $error-info) (case "suspended")))
    (import "import-type-run-outcome" (type $run-outcome (eq $variant)))
    (type $run-type (func (param "input" $payload) (result $run-outcome)))
    (import "import-func-run" (func $run (type $run-type)))
    (export $payload-out "payload" (type $payload))
    (export $error-info-out "error-info" (type $error-info))
    (type $variant-out (variant (case "completed" $payload-out) (case "failed" $error-info-out) (case "suspended")))
    (export $run-outcome-out "run-outcome" (type $variant-out))
    (type $run-out (func (param "input" $payload-out) (result $run-outcome-out)))
    (export "run" (func $run) (func (type $run-out)))
  )
  (instance $workflow (instantiate $shim
    (with "import-func-run" (func $run))
    (with "import-type-payload" (type $payload))
    (with "import-type-error-info" (type $error-info))
    (with "import-type-run-outcome" (type $run-outcome))
  ))
  (export "aegis:workflow/workflow@0.1.0" (instance $workflow))
)
"#;

/// The functions every `$Main` module has: a bump allocator for the input string (`realloc`,
/// growing the memory when needed) and `completed`, which writes the outcome `completed(text)`
/// for the text at `ptr`/`len` at address 16 and returns that address.
const MAIN_HELPERS: &str = r#"
    (global $heap (mut i32) (i32.const 4096))
    (func (export "realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $ptr i32)
      (local $end i32)
      (local.set $ptr
        (i32.and
          (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $ptr) (local.get $size)))
      (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
        (then
          (if (i32.eq
                (memory.grow
                  (i32.sub
                    (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                    (memory.size)))
                (i32.const -1))
            (then unreachable))))
      (if (i32.ne (local.get $old_size) (i32.const 0))
        (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
      (global.set $heap (local.get $end))
      (local.get $ptr))
    (func $completed (param $ptr i32) (param $len i32) (result i32)
      (i32.store8 (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (local.get $ptr))
      (i32.store (i32.const 24) (local.get $len))
      (i32.const 16))
"#;

fn component(modules: &str) -> String {
    WORKFLOW.replace("{modules}", modules)
}

fn compile(text: &str, what: &str) -> Result<Vec<u8>> {
    wat::parse_str(text).with_context(|| format!("compiling the {what} component"))
}

/// A JSON string literal as a WAT data string (the text has no quotes or backslashes).
fn json_text(text: &str) -> String {
    assert!(
        text.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '),
        "plain text only: {text:?}"
    );
    format!("\\\"{text}\\\"")
}

/// The text of [`multi_memory_bomb`].
pub fn multi_memory_bomb_text(memories: u32, mib_each: u32) -> String {
    let pages = mib_each * 16;
    let result = json_text(&format!("inflated {memories} memories of {mib_each} MiB"));
    let result_len = result.len() - 2; // each \" is one byte
    let mut modules = format!(
        r#"
  ;; One memory that `inflate` grows by {pages} pages ({mib_each} MiB) and fills, so the pages
  ;; are really used. A refused grow traps.
  (core module $Bomb
    (memory (export "memory") 0)
    (func (export "inflate")
      (local $old i32)
      (local.set $old (memory.grow (i32.const {pages})))
      (if (i32.eq (local.get $old) (i32.const -1)) (then unreachable))
      (memory.fill
        (i32.mul (local.get $old) (i32.const 65536))
        (i32.const 1)
        (i32.const {bytes})))
  )
"#,
        bytes = pages * 65536,
    );
    for i in 0..memories {
        modules.push_str(&format!("  (core instance $bomb{i} (instantiate $Bomb))\n"));
    }
    modules.push_str("  (core module $Main\n");
    for i in 0..memories {
        modules.push_str(&format!(
            "    (import \"bomb{i}\" \"inflate\" (func $inflate{i}))\n"
        ));
    }
    modules.push_str("    (memory (export \"memory\") 1)\n");
    modules.push_str(MAIN_HELPERS);
    modules.push_str(&format!(
        "    (data (i32.const 1024) \"{result}\")\n    (func (export \"run\") (param i32 i32) (result i32)\n"
    ));
    for i in 0..memories {
        modules.push_str(&format!("      (call $inflate{i})\n"));
    }
    modules.push_str(&format!(
        "      (call $completed (i32.const 1024) (i32.const {result_len})))\n  )\n"
    ));
    modules.push_str("  (core instance $main (instantiate $Main\n");
    for i in 0..memories {
        modules.push_str(&format!("    (with \"bomb{i}\" (instance $bomb{i}))\n"));
    }
    modules.push_str("  ))\n");
    component(&modules)
}

/// A workflow component whose memory is spread over `memories` core instances (plus the main
/// one), each with its own linear memory that `run` grows by `mib_each` MiB and fills. With
/// `mib_each` under a per-memory cap, only a cap that counts all of an instance's memories
/// together stops it; on a host that lets it through, the execution succeeds with
/// `"inflated N memories of M MiB"`.
///
/// # Errors
/// When the text does not compile (a bug in this module).
pub fn multi_memory_bomb(memories: u32, mib_each: u32) -> Result<Vec<u8>> {
    compile(
        &multi_memory_bomb_text(memories, mib_each),
        "multi-memory bomb",
    )
}

/// The text of [`many_instances`].
pub fn many_instances_text(instances: u32) -> String {
    let mut modules = String::from(
        r#"
  ;; A module that takes one memory slot and one table slot of the host's pool.
  (core module $Hog
    (memory (export "memory") 1)
    (table (export "table") 1 funcref)
  )
"#,
    );
    for i in 0..instances {
        modules.push_str(&format!("  (core instance $hog{i} (instantiate $Hog))\n"));
    }
    modules.push_str("  (core module $Main\n    (memory (export \"memory\") 1)\n");
    modules.push_str(MAIN_HELPERS);
    // `run` spins, so the instances (and their pool slots) are held until the CPU deadline.
    modules.push_str(
        r#"    (data (i32.const 1024) "\"spun\"")
    (func (export "run") (param i32 i32) (result i32)
      (loop $spin (br $spin))
      (call $completed (i32.const 1024) (i32.const 6)))
  )
  (core instance $main (instantiate $Main))
"#,
    );
    component(&modules)
}

/// A workflow component made of `instances` core instances, each with its own memory and table
/// (so it asks the host's pool for `instances + 1` memories and `instances` tables), whose `run`
/// then spins until the CPU deadline stops it, holding every slot meanwhile. Without
/// per-component limits, a few of these take the whole pool from every other tenant.
///
/// # Errors
/// When the text does not compile (a bug in this module).
pub fn many_instances(instances: u32) -> Result<Vec<u8>> {
    compile(&many_instances_text(instances), "many-instances")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(bytes: &[u8]) -> wasmparser::types::Types {
        let mut validator =
            wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::default());
        validator
            .validate_all(bytes)
            .unwrap_or_else(|e| panic!("invalid component: {e}"))
    }

    #[test]
    fn the_multi_memory_bomb_is_a_valid_component() {
        let types = validate(&multi_memory_bomb(3, 2).unwrap());
        // The bombs, the main module and the shim's: every core instance is there.
        assert!(types.as_ref().core_instance_count() >= 4);
    }

    #[test]
    fn many_instances_is_a_valid_component() {
        let types = validate(&many_instances(5).unwrap());
        assert!(types.as_ref().core_instance_count() >= 6);
    }

    #[test]
    fn the_result_text_is_measured_in_bytes() {
        let text = multi_memory_bomb_text(2, 1);
        let expected = "\\\"inflated 2 memories of 1 MiB\\\"";
        assert!(text.contains(expected), "{text}");
        // 28 characters and two quotes.
        assert!(text.contains("(i32.const 1024) (i32.const 30)"), "{text}");
    }
}
