//! `aegis deploy [PATH]`: build a guest crate for `wasm32-wasip2` in release and upload the
//! component it makes (`POST /v1/components/{name}`).
//!
//! Which `.wasm` the build made is not guessed from folder names: `cargo build` is run with
//! `--message-format=json-render-diagnostics` and the crate's own `cdylib` artifact is read
//! from its messages, so a workspace's shared target folder, `CARGO_TARGET_DIR` or a
//! `[build] target-dir` all work. `cargo metadata` says first which package the folder is,
//! and whether it is a `cdylib` at all, so a wrong folder is refused before anything builds.

use super::client::{Body, Client, Connection};
use super::exit::{Failure, Outcome};
use super::output;
use reqwest::StatusCode;
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target a workflow component is built for.
const TARGET: &str = "wasm32-wasip2";

#[derive(clap::Args, Debug)]
pub struct DeployArgs {
    /// The guest crate: its folder or its Cargo.toml (default: the current folder).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The component's name (default: the crate's name).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

/// The crate `deploy` builds.
#[derive(Debug, PartialEq)]
pub struct Package {
    /// Cargo's id of the package, as its build messages name it.
    pub id: String,
    pub name: String,
    pub manifest: PathBuf,
}

/// The `Cargo.toml` that `path` (a folder or a manifest) names.
fn manifest_of(path: &Path) -> PathBuf {
    if path.file_name().is_some_and(|n| n == "Cargo.toml") {
        path.to_path_buf()
    } else {
        path.join("Cargo.toml")
    }
}

/// Reads which package `manifest` is from `cargo metadata`.
///
/// # Errors
/// A usage failure when there is no crate there or it is not a `cdylib`; a local failure when
/// cargo cannot run.
fn package(manifest: &Path) -> Outcome<Package> {
    if !manifest.is_file() {
        return Err(Failure::usage(format!(
            "{} does not exist: give the folder of a guest crate",
            manifest.display()
        )));
    }
    let out = Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(manifest)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Failure::local(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        return Err(Failure::local(format!(
            "cargo metadata failed for {} ({})",
            manifest.display(),
            out.status
        )));
    }
    let metadata: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Failure::local(format!("cargo metadata printed no JSON: {e}")))?;
    let manifest = manifest
        .canonicalize()
        .map_err(|e| Failure::usage(format!("{}: {e}", manifest.display())))?;
    find_package(&metadata, &manifest)
}

/// The package of `metadata` whose manifest is `manifest`, checked to be a `cdylib`.
///
/// # Errors
/// A usage failure naming the workspace's members when `manifest` is a workspace's own, and
/// saying what to add when the crate is not a `cdylib`.
pub fn find_package(metadata: &Value, manifest: &Path) -> Outcome<Package> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let Some(package) = packages
        .iter()
        .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest))
    else {
        let members: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
        return Err(Failure::usage(format!(
            "{} is a workspace, not a crate: give the folder of one of its members ({})",
            manifest.display(),
            members.join(", ")
        )));
    };
    let name = package["name"].as_str().unwrap_or_default().to_string();
    let cdylib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| {
            t["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k == "cdylib")
        });
    if !cdylib {
        return Err(Failure::usage(format!(
            "crate {name} is not a cdylib, so it builds no component: add \
             [lib] crate-type = [\"cdylib\"] to {}",
            manifest.display()
        )));
    }
    Ok(Package {
        id: package["id"].as_str().unwrap_or_default().to_string(),
        name,
        manifest: manifest.to_path_buf(),
    })
}

/// The `.wasm` that a build's JSON messages (`stdout`) say `package` made.
pub fn artifact(messages: impl BufRead, package: &Package) -> Option<PathBuf> {
    let mut found = None;
    for line in messages.lines().map_while(Result::ok) {
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let ours = message["reason"] == "compiler-artifact"
            && message["package_id"] == package.id.as_str()
            && message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        if !ours {
            continue;
        }
        found = message["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|f| f.ends_with(".wasm"))
            .map(PathBuf::from);
    }
    found
}

/// Builds `package` for [`TARGET`] in release, cargo's progress and diagnostics going to
/// stderr as usual; the `.wasm` it made.
///
/// # Errors
/// A local failure when the build fails or makes no `.wasm`.
fn build(package: &Package) -> Outcome<PathBuf> {
    let mut child = Command::new("cargo")
        .args(["build", "--release", "--lib", "--target", TARGET])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&package.manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Failure::local(format!("cannot run cargo: {e}")))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let wasm = artifact(std::io::BufReader::new(stdout), package);
    let status = child
        .wait()
        .map_err(|e| Failure::local(format!("cargo build: {e}")))?;
    if !status.success() {
        return Err(Failure::local(format!(
            "cargo build of {} for {TARGET} failed ({status}); is the target installed \
             (rustup target add {TARGET})?",
            package.name
        )));
    }
    wasm.ok_or_else(|| {
        Failure::local(format!(
            "cargo build of {} made no .wasm for {TARGET}",
            package.name
        ))
    })
}

/// `aegis deploy`.
///
/// # Errors
/// The build's or the upload's failure.
pub async fn deploy(args: DeployArgs) -> Outcome {
    let client = Client::of(&args.conn)?;
    let manifest = manifest_of(&args.path);
    let package = tokio::task::block_in_place(|| package(&manifest))?;
    let wasm = tokio::task::block_in_place(|| build(&package))?;
    let bytes = std::fs::read(&wasm)
        .map_err(|e| Failure::local(format!("cannot read {}: {e}", wasm.display())))?;
    let name = args.name.unwrap_or_else(|| package.name.clone());
    let answer = client
        .post(&["v1", "components", &name], Body::Wasm(bytes))
        .await?;
    if args.conn.json {
        return output::json(&answer.body);
    }
    output::print(&(uploaded(&answer.body, answer.status) + "\n"))
}

/// What `deploy` says of the upload's answer.
pub fn uploaded(component: &Value, status: StatusCode) -> String {
    let what = format!(
        "{} version {} ({}, {})",
        output::text(&component["name"]),
        output::text(&component["version"]),
        output::text(&component["digest"]),
        component["size"]
            .as_u64()
            .map_or_else(|| "-".to_string(), output::size),
    );
    if status == StatusCode::OK {
        format!("unchanged: {what} has these bytes already")
    } else {
        format!("deployed {what}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::exit::Class;
    use serde_json::json;

    fn metadata() -> Value {
        json!({"packages": [
            {"name": "steps3", "id": "path+file:///g/fixtures/steps3#0.1.0",
             "manifest_path": "/g/fixtures/steps3/Cargo.toml",
             "targets": [{"kind": ["cdylib"], "name": "steps3"}]},
            {"name": "aegis-sdk", "id": "path+file:///g/sdk#aegis-sdk@0.1.0",
             "manifest_path": "/g/sdk/Cargo.toml",
             "targets": [{"kind": ["lib"], "name": "aegis_sdk"}]}
        ]})
    }

    #[test]
    fn the_package_is_the_one_whose_manifest_was_given() {
        let p = find_package(&metadata(), Path::new("/g/fixtures/steps3/Cargo.toml")).unwrap();
        assert_eq!(p.name, "steps3");
        assert_eq!(p.id, "path+file:///g/fixtures/steps3#0.1.0");
    }

    #[test]
    fn a_workspace_root_names_its_members() {
        let err = find_package(&metadata(), Path::new("/g/Cargo.toml")).unwrap_err();
        assert_eq!(err.class, Class::Usage);
        assert!(
            err.message.contains("is a workspace, not a crate"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("(steps3, aegis-sdk)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_crate_that_is_not_a_cdylib_is_refused_with_the_fix() {
        let err = find_package(&metadata(), Path::new("/g/sdk/Cargo.toml")).unwrap_err();
        assert_eq!(err.class, Class::Usage);
        assert!(
            err.message.contains("crate-type = [\"cdylib\"]"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_wasm_is_read_from_the_build_messages() {
        let package =
            find_package(&metadata(), Path::new("/g/fixtures/steps3/Cargo.toml")).unwrap();
        let messages = [
            json!({"reason": "compiler-artifact", "package_id": "path+file:///g/sdk#aegis-sdk@0.1.0",
                   "target": {"kind": ["lib"]}, "filenames": ["/t/libaegis_sdk.rlib"]}),
            json!({"reason": "compiler-message", "package_id": "path+file:///g/fixtures/steps3#0.1.0"}),
            json!({"reason": "compiler-artifact", "package_id": "path+file:///g/fixtures/steps3#0.1.0",
                   "target": {"kind": ["cdylib"]},
                   "filenames": ["/t/wasm32-wasip2/release/steps3.wasm"]}),
            json!({"reason": "build-finished", "success": true}),
        ]
        .iter()
        .map(|m| m.to_string() + "\n")
        .collect::<String>();
        let text = format!("not json\n{messages}");
        assert_eq!(
            artifact(text.as_bytes(), &package),
            Some(PathBuf::from("/t/wasm32-wasip2/release/steps3.wasm"))
        );
        assert_eq!(artifact(&b""[..], &package), None);
    }

    #[test]
    fn a_path_is_a_folder_or_its_manifest() {
        assert_eq!(
            manifest_of(Path::new("g/steps3")),
            PathBuf::from("g/steps3/Cargo.toml")
        );
        assert_eq!(
            manifest_of(Path::new("g/steps3/Cargo.toml")),
            PathBuf::from("g/steps3/Cargo.toml")
        );
    }

    #[test]
    fn the_upload_says_whether_it_made_a_version() {
        let c = json!({"name": "steps3", "version": 2, "digest": "sha256:ab", "size": 2048});
        assert_eq!(
            uploaded(&c, StatusCode::CREATED),
            "deployed steps3 version 2 (sha256:ab, 2.0 KiB)"
        );
        assert!(uploaded(&c, StatusCode::OK).starts_with("unchanged: steps3 version 2"));
    }
}
