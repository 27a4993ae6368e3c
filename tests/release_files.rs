//! The files that only run on the forge (the release workflow, the composite Action, the
//! Dockerfile, the pipeline templates), checked here as far as they can be without it: the YAML
//! parses, the Action passes only flags that `preflight run --help` lists, it downloads only
//! what the release publishes, and the Dockerfile builds the way the README says.

mod binary;
mod hermetic;

use binary::preflight;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The one YAML document of a file.
fn yaml(path: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(docs.len(), 1, "{path} holds one YAML document");
    docs.remove(0)
}

/// The long flags (`--name`) that occur in a text.
fn long_flags(text: &str) -> Vec<String> {
    let mut flags = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("--") {
        let name: String = rest[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if !name.is_empty() {
            flags.push(format!("--{name}"));
        }
        rest = &rest[at + 2 + name.len()..];
    }
    flags
}

fn run_help() -> String {
    let out = preflight().args(["run", "--help"]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// A step of the Action, by name.
fn action_step<'a>(action: &'a Yaml, name: &str) -> &'a Yaml {
    action["runs"]["steps"]
        .as_vec()
        .expect("runs.steps is a list")
        .iter()
        .find(|s| s["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("action.yml has a step named {name:?}"))
}

#[test]
fn every_yaml_file_the_repository_ships_parses() {
    let mut files = vec![
        "action.yml".to_string(),
        ".github/workflows/release.yml".to_string(),
    ];
    for entry in std::fs::read_dir(repo("examples")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yml") || name.ends_with(".yaml") {
            files.push(format!("examples/{name}"));
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let docs =
            YamlLoader::load_from_str(&read(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!docs.is_empty(), "{file} is empty");
        assert!(docs.iter().all(|d| d.as_hash().is_some()), "{file}");
    }
}

#[test]
fn the_action_maps_its_inputs_to_flags_that_preflight_run_has() {
    let action = yaml("action.yml");
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let inputs = action["inputs"].as_hash().expect("inputs");
    let names: Vec<&str> = inputs.keys().filter_map(Yaml::as_str).collect();
    for wanted in [
        "version", "suite", "base-url", "json", "junit", "markdown", "args",
    ] {
        assert!(names.contains(&wanted), "action.yml has no input {wanted}");
    }
    assert_eq!(
        action["inputs"]["version"]["required"].as_bool(),
        Some(true)
    );

    let help = run_help();
    let step = action_step(&action, "Run preflight");
    let script = step["run"].as_str().expect("the step runs a script");
    assert!(
        script.contains("args=(run "),
        "the step runs `preflight run`"
    );
    let used = long_flags(script);
    assert!(!used.is_empty());
    for flag in &used {
        assert!(
            help.contains(&format!("{flag} ")),
            "action.yml passes {flag}, which `preflight run --help` does not list:\n{help}"
        );
    }
    // Each input named like a flag of `run` is passed as that flag, from that input.
    let env = step["env"]
        .as_hash()
        .expect("the step gets its inputs through env");
    for name in &names {
        let flag = format!("--{name}");
        if !help.contains(&format!("{flag} ")) {
            continue;
        }
        let var = env
            .iter()
            .find(|(_, v)| v.as_str() == Some(&format!("${{{{ inputs.{name} }}}}")))
            .and_then(|(k, _)| k.as_str())
            .unwrap_or_else(|| panic!("input {name} reaches the script through env"));
        assert!(
            script.contains(&format!("args+=({flag} \"${var}\")")),
            "input {name} is passed as {flag} \"${var}\":\n{script}"
        );
    }
    for flag in ["--base-url", "--json", "--junit", "--markdown"] {
        assert!(used.iter().any(|f| f == flag), "action.yml passes {flag}");
    }
}

#[test]
fn the_action_downloads_what_the_release_workflow_publishes_and_verifies_it() {
    let action = yaml("action.yml");
    let download = action_step(&action, "Download preflight")["run"]
        .as_str()
        .unwrap();
    assert!(download.contains("sha256sum -c") && download.contains("shasum -a 256 -c"));
    assert!(download.contains("releases/download/$VERSION/$archive"));
    assert!(download.contains("archive=\"preflight-$target.tar.gz\""));

    let release = yaml(".github/workflows/release.yml");
    let tags = release["on"]["push"]["tags"]
        .as_vec()
        .expect("on.push.tags");
    assert_eq!(tags, &vec![Yaml::String("v*".into())]);
    let built: Vec<&str> = release["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_vec()
        .expect("a build matrix")
        .iter()
        .map(|row| row["target"].as_str().unwrap())
        .collect();
    for target in [
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
    ] {
        assert!(built.contains(&target), "release.yml builds {target}");
        assert!(
            download.contains(&format!("target={target} ")),
            "action.yml downloads {target}"
        );
    }
    let text = read(".github/workflows/release.yml");
    assert!(text.contains("archive=\"preflight-${{ matrix.target }}.tar.gz\""));
    assert!(text.contains("shasum -a 256 \"$archive\" > \"$archive.sha256\""));
    assert!(text.contains("build --release --locked --target ${{ matrix.target }}"));
}

/// The README's build command and the binary it names, from its install section.
fn readme_build() -> (String, String) {
    let readme = read("README.md");
    let install = &readme[readme.find("\n## Install").expect("an install section")..];
    let install = &install[..install[1..].find("\n## ").map_or(install.len(), |i| i + 1)];
    let command = install
        .lines()
        .find(|l| l.starts_with("cargo build"))
        .expect("the install section has a `cargo build` line");
    let command = command.split('#').next().unwrap().trim().to_string();
    let binary = install
        .split('`')
        .find(|s| s.starts_with("target/") && s.ends_with("/preflight"))
        .expect("the install section names the binary it builds")
        .to_string();
    (command, binary)
}

#[test]
fn the_dockerfile_builds_the_way_the_readme_says() {
    let (command, binary) = readme_build();
    assert_eq!(command, "cargo build --release --locked");
    assert_eq!(binary, "target/release/preflight");

    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");
    assert_eq!(*froms[0], "FROM rust:1-slim AS build");
    let runtime = froms[1];
    assert!(
        runtime.contains("debian:stable-slim") || runtime.contains("distroless"),
        "{runtime}"
    );

    let build_stage = &lines[..lines.iter().position(|l| l == runtime).unwrap()];
    let runtime_stage = &lines[lines.iter().position(|l| l == runtime).unwrap()..];
    let workdir = build_stage
        .iter()
        .find_map(|l| l.strip_prefix("WORKDIR "))
        .expect("the build stage has a WORKDIR");
    assert!(
        build_stage.contains(&format!("RUN {command}").as_str()),
        "the build stage runs `{command}`: {build_stage:?}"
    );
    let copy = runtime_stage
        .iter()
        .find(|l| l.starts_with("COPY --from=build "))
        .expect("the runtime stage copies from the build stage");
    assert!(
        copy.contains(&format!(" {workdir}/{binary} ")),
        "it copies {workdir}/{binary}: {copy}"
    );
    assert!(runtime_stage.iter().any(|l| l.contains("ca-certificates")));
    let user = runtime_stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets a USER");
    assert!(user != "root" && user != "0", "non-root user: {user}");
    assert!(runtime_stage.contains(&"ENTRYPOINT [\"preflight\"]"));
}

#[test]
fn the_pipeline_templates_download_the_release_and_state_the_secret_rule() {
    let github = read("examples/github-actions.yml");
    assert!(!github.contains("cargo install"), "no build from source");
    let doc = yaml("examples/github-actions.yml");
    let action = yaml("action.yml");
    let step = doc["jobs"]["preflight"]["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.contains("/preflight@"))
        })
        .expect("the template uses the preflight Action");
    for (key, _) in step["with"].as_hash().unwrap() {
        let key = key.as_str().unwrap();
        assert!(
            !action["inputs"][key].is_badvalue(),
            "the template passes {key}, which action.yml has no input for"
        );
    }
    let gitlab = read("examples/gitlab-ci.yml");
    assert!(!gitlab.contains("cargo install"), "no build from source");
    assert!(gitlab.contains("sha256sum -c"));
    for template in [&github, &gitlab] {
        assert!(!template.contains("counts as set"));
        assert!(!template.contains("accepts an empty one"));
        assert!(template.contains("shorter than 8 characters"));
    }
}
